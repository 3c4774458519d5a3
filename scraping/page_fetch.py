"""The browser side of a crawl: a worker thread per browser loads a page and reads its product and links.

Workers never touch the database: each turns a ``PageJob`` into a ``PageOutcome`` and hands it to the
main thread through the results queue, so all writes stay on one connection.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from scraping.browser import BrowserPool, BrowserSession, BrowserUnavailable, PageLoadError, PageSnapshot
from scraping.download import ByteBudget, ByteBudgetExceeded
from scraping.extract import ProductRecord, extract_product, find_links
from scraping.models import PageStatus
from scraping.options import CrawlOptions
from scraping.politeness import HostThrottle
from scraping.profiles import SiteProfile, profile_for
from scraping.robots import RobotsCache
from scraping.safety import AddressPolicy, UnsafeURL

logger = logging.getLogger(__name__)

DEFAULT_LINK_SELECTOR = "a[href]"
DEFAULT_NEXT_SELECTOR = "a[rel~=next], link[rel~=next]"
# Where Chromium shows a navigation it could not complete (a redirect loop, a refused connection).
BROWSER_ERROR_PAGE = "chrome-error:"


def without_fragment(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


@dataclass
class PageJob:
    url: str
    depth: int
    page_id: int | None = None


@dataclass
class PageOutcome:
    """What a browser worker learned about one page."""

    job: PageJob
    status: str
    final_url: str = ""
    http_status: int | None = None
    error: str = ""
    record: ProductRecord | None = None
    links: list[tuple[str, int]] = field(default_factory=list)
    load_seconds: float | None = None
    extract_seconds: float | None = None
    attempts: int = 0


class PageFetcher:
    """Turns a job into an outcome: address policy, robots.txt, politeness, retried load, extraction, links."""

    def __init__(
        self,
        options: CrawlOptions,
        *,
        policy: AddressPolicy,
        robots: RobotsCache,
        budget: ByteBudget,
        profiles: list[SiteProfile],
        page_throttle: HostThrottle,
        image_throttle: HostThrottle,
        stopping: threading.Event,
    ) -> None:
        self.options = options
        self.policy = policy
        self.robots = robots
        self.budget = budget
        self.profiles = profiles
        self.page_throttle = page_throttle
        self.image_throttle = image_throttle
        self.stopping = stopping

    def fetch(self, job: PageJob, session: BrowserSession) -> PageOutcome:
        outcome = PageOutcome(job=job, status=PageStatus.FAILED)
        try:
            self.policy.check_url(job.url)
        except UnsafeURL as exc:
            outcome.status, outcome.error = PageStatus.REFUSED, str(exc)
            return outcome
        verdict = self.robots.verdict(job.url)
        if not verdict.allowed:
            outcome.status, outcome.error = PageStatus.REFUSED, verdict.reason
            return outcome
        host = urlsplit(job.url).hostname or ""
        self.page_throttle.set_host_delay(host, verdict.crawl_delay)
        self.image_throttle.set_host_delay(host, verdict.crawl_delay)
        snapshot = self._load(job, session, host, outcome)
        if snapshot is None:
            return outcome
        outcome.final_url = snapshot.final_url
        outcome.http_status = snapshot.status
        outcome.load_seconds = round(snapshot.load_seconds, 3)
        if snapshot.final_url.startswith(BROWSER_ERROR_PAGE):
            # A failed navigation the browser did not report as one: never "no product", always retryable.
            outcome.final_url = ""
            outcome.error = f"{job.url} could not be loaded (the browser ended on its error page)"
            return outcome
        if without_fragment(snapshot.final_url) != job.url:
            try:
                self.policy.check_url(snapshot.final_url)
            except UnsafeURL as exc:
                outcome.status, outcome.error = PageStatus.REFUSED, f"redirected: {exc}"
                return outcome
        try:
            self.budget.take(len(snapshot.html.encode("utf-8", "replace")))
        except ByteBudgetExceeded as exc:
            outcome.error = str(exc)
            return outcome
        started = time.monotonic()
        profile = profile_for(snapshot.final_url, self.profiles)
        outcome.record = extract_product(
            snapshot.html, snapshot.final_url, profile=profile, rendered_sizes=snapshot.rendered_sizes
        )
        if self.options.follow and job.depth < self.options.max_depth:
            outcome.links = self._links(snapshot.html, snapshot.final_url, job.depth, profile)
        outcome.extract_seconds = round(time.monotonic() - started, 3)
        outcome.status = PageStatus.OK if outcome.record is not None else PageStatus.NO_PRODUCT
        return outcome

    def _load(self, job: PageJob, session: BrowserSession, host: str, outcome: PageOutcome) -> PageSnapshot | None:
        """The rendered page, tried again with backoff while the failure is retryable; None: ``outcome`` says why."""
        while True:
            outcome.attempts += 1
            started = time.monotonic()
            try:
                with self.page_throttle.request(host):
                    started = time.monotonic()
                    return session.load(job.url)
            except PageLoadError as exc:
                outcome.load_seconds = round(time.monotonic() - started, 3)
                outcome.http_status = exc.status
                if exc.refused:  # the browser's guard stopped a redirect to an address the policy refuses
                    outcome.status, outcome.error = PageStatus.REFUSED, str(exc)
                    outcome.final_url = _web_url(exc.final_url)
                    return None
                if exc.retryable and outcome.attempts <= self.options.page_retries and not self.stopping.is_set():
                    time.sleep(self.options.retry_backoff * 2 ** (outcome.attempts - 1))
                    continue
                tries = f" (gave up after {outcome.attempts} tries)" if outcome.attempts > 1 else ""
                outcome.error = f"{exc}{tries}"
                return None

    def _links(self, html: str, url: str, depth: int, profile: SiteProfile | None) -> list[tuple[str, int]]:
        """Next pages of a listing keep its depth; product (or other) links go one level deeper."""
        next_selector = self.options.next_selector or (profile and profile.next_page) or DEFAULT_NEXT_SELECTOR
        link_selector = self.options.link_selector or (profile and profile.product_links) or DEFAULT_LINK_SELECTOR
        links = [(link, depth) for link in find_links(html, url, next_selector)]
        listed = {link for link, _ in links}
        links += [(link, depth + 1) for link in find_links(html, url, link_selector) if link not in listed]
        return links


def _web_url(url: str | None) -> str:
    return url[:2000] if url and url.startswith(("http://", "https://")) else ""


def browser_worker(pool: BrowserPool, fetcher: PageFetcher, jobs: queue.Queue, results: queue.Queue) -> None:
    """Thread body: fetch jobs until a None arrives; ("page", outcome) per job, ("fatal", error) if no browser."""
    session = pool.acquire()
    try:
        while True:
            job = jobs.get()
            if job is None:
                return
            try:
                outcome = fetcher.fetch(job, session)
            except BrowserUnavailable as exc:
                results.put(("fatal", exc))
                return
            except Exception as exc:
                logger.exception("crawling %s failed unexpectedly", job.url)
                outcome = PageOutcome(job=job, status=PageStatus.FAILED, error=f"internal error: {exc!r}")
            results.put(("page", outcome))
    finally:
        pool.release(session)
