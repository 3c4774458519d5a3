"""One crawl run: browsers load pages, a thread pool fetches photos, and only the main thread writes.

Browser workers and image downloads are pure I/O (no database); they hand their results to the main
thread through one queue. The main thread owns the frontier, the caps, the run record and every catalog
write, so database work stays on one connection and needs no locking.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from django.utils import timezone

from catalog import selectors as catalog_selectors
from catalog.services import InvalidImage, InvalidProduct
from scraping import services
from scraping.browser import BrowserConfig, BrowserPool, BrowserSession, BrowserUnavailable, PageLoadError
from scraping.download import (
    ByteBudget,
    ByteBudgetExceeded,
    DownloadedImage,
    FetchError,
    ImageDownloader,
    SafeHttpClient,
)
from scraping.extract import ProductRecord, extract_product, find_links
from scraping.models import CrawlRun, PageStatus, RunStatus
from scraping.options import CrawlOptions, OptionsError
from scraping.politeness import HostThrottle
from scraping.profiles import ProfileError, load_profiles, profile_for
from scraping.robots import RobotsCache
from scraping.safety import AddressPolicy, UnsafeURL

logger = logging.getLogger(__name__)

DEFAULT_LINK_SELECTOR = "a[href]"
DEFAULT_NEXT_SELECTOR = "a[rel~=next], link[rel~=next]"


class CrawlError(RuntimeError):
    """The run cannot go on (no browser, unusable profiles); the message says what to fix."""


def open_browser_pool(options: CrawlOptions) -> BrowserPool:
    return BrowserPool(
        BrowserConfig(
            binary=options.chromium_binary,
            driver_path=options.chromedriver_path,
            user_agent=options.user_agent,
            page_timeout=options.page_timeout,
            scroll_max_seconds=options.scroll_max_seconds,
        )
    )


def _without_fragment(url: str) -> str:
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


@dataclass
class PageState:
    """A page whose product is stored and whose photos are still downloading."""

    outcome: PageOutcome
    product: object = None
    product_state: str | None = None  # "new" / "updated" (or "would be new" in a dry run)
    warnings: list[str] = field(default_factory=list)
    pending: int = 0
    images_started: float | None = None
    images_new: int = 0
    images_duplicate: int = 0
    images_failed: int = 0
    image_errors: list[dict] = field(default_factory=list)


class Reporter:
    """What the crawl tells its caller while it runs; the command shows a progress bar and JSON lines."""

    def pages_planned(self, total: int) -> None:
        """The number of pages the run expects to visit grew to ``total``."""

    def page_done(self, result: dict) -> None:
        """A page is finished (with its photos); ``result`` is its JSON-ready report."""


@dataclass
class CrawlSummary:
    run_id: int | None
    dry_run: bool
    counters: dict
    stop_reason: str
    elapsed: float

    def lines(self) -> list[str]:
        c = self.counters
        head = "Dry run (nothing stored)" if self.dry_run else f"Crawl run {self.run_id}"
        lines = [
            f"{head} finished in {self.elapsed:.1f}s"
            + (f"; stopped early: {self.stop_reason}" if self.stop_reason else ""),
            f"pages: {c['pages_ok']} ok, {c['pages_failed']} failed, {c['pages_no_product']} without product, "
            f"{c['pages_refused']} refused, {c['pages_skipped']} skipped",
        ]
        if self.dry_run:
            lines.append(f"products: {c['products_new']} would be new, {c['products_updated']} would be updated")
        else:
            lines.append(f"products: {c['products_new']} new, {c['products_updated']} updated")
            lines.append(
                f"images: {c['images_new']} new, {c['images_duplicate']} duplicate, {c['images_failed']} failed "
                f"({c['bytes_downloaded']:,} bytes downloaded)"
            )
        return lines


class Crawler:
    """Runs one crawl; pass ``run`` to record it (not in a dry run) and ``browser_pool`` to reuse browsers."""

    def __init__(
        self,
        options: CrawlOptions,
        *,
        run: CrawlRun | None = None,
        reporter: Reporter | None = None,
        browser_pool: BrowserPool | None = None,
    ) -> None:
        if run is None and not options.dry_run:
            raise ValueError("a crawl that stores products needs a CrawlRun to record it")
        self.options = options
        self.reporter = reporter or Reporter()
        self.recorder = services.RunRecorder(run) if run is not None and not options.dry_run else None
        self.run = run
        self._own_pool = browser_pool is None
        self.pool = browser_pool
        try:
            self.profiles = load_profiles(options.profiles_file)
            self.policy = AddressPolicy.build(
                allow_private=options.allow_private, allowed_networks=options.allowed_networks
            )
        except (ProfileError, ValueError) as exc:
            raise CrawlError(str(exc)) from exc
        self.budget = ByteBudget(options.max_bytes)
        self.client = SafeHttpClient(
            policy=self.policy, user_agent=options.user_agent, timeout=options.image_timeout, budget=self.budget
        )
        self.robots = RobotsCache(
            client=self.client, user_agent=options.user_agent, ignore_hosts=options.ignore_robots_hosts
        )
        self.page_throttle = HostThrottle(delay=options.delay, per_host=options.host_concurrency)
        self.image_throttle = HostThrottle(delay=options.delay, per_host=options.host_concurrency)
        self.downloader = ImageDownloader(
            client=self.client,
            throttle=self.image_throttle,
            max_bytes=options.image_max_bytes,
            retries=options.image_retries,
            backoff=options.retry_backoff,
        )
        self.counters = dict.fromkeys(services.RUN_COUNTERS, 0)
        self._jobs: queue.Queue[PageJob | None] = queue.Queue()
        self._results: queue.Queue[tuple[str, object]] = queue.Queue()
        self._frontier: deque[tuple[str, int]] = deque()
        self._seen: set[str] = set()
        self._in_flight_pages = 0
        self._pages_started = 0
        self._pending_downloads = 0
        self._url_waiters: dict[str, list[PageState]] = {}
        self._stop = threading.Event()
        self._stop_reason = ""
        self._started = 0.0

    # --- main thread ------------------------------------------------------------------------------

    def crawl(self, seeds, *, done_urls=()) -> CrawlSummary:
        """Crawl ``seeds`` (URLs, or (URL, depth) pairs); ``done_urls`` are known finished and not visited."""
        self._started = time.monotonic()
        self._seen.update(done_urls)
        for seed in seeds:
            url, depth = seed if isinstance(seed, tuple) else (seed, 0)
            self._enqueue(url, depth)
        if self.pool is None:
            self.pool = open_browser_pool(self.options)
        executor = ThreadPoolExecutor(max_workers=2 * self.options.concurrency, thread_name_prefix="crawl-image")
        workers = [
            threading.Thread(target=self._worker, name=f"crawl-browser-{n}", daemon=True)
            for n in range(self.options.concurrency)
        ]
        status, error = RunStatus.FAILED, ""
        try:
            if self.recorder:
                self.recorder.start()
            for worker in workers:
                worker.start()
            self._loop(executor)
            status = RunStatus.FINISHED
        except KeyboardInterrupt:
            error = "interrupted"
            raise
        except Exception as exc:
            error = str(exc) or exc.__class__.__name__
            raise
        finally:
            self._stop.set()
            for _worker in workers:
                self._jobs.put(None)
            executor.shutdown(wait=True, cancel_futures=True)
            for worker in workers:
                worker.join(timeout=self.options.page_timeout + self.options.scroll_max_seconds + 10)
            if self._own_pool:
                self.pool.close()
            self.counters["bytes_downloaded"] = self.budget.used
            if self.recorder:
                self.recorder.finish(counters=self.counters, status=status, stop_reason=self._stop_reason, error=error)
        return CrawlSummary(
            run_id=self.run.pk if self.run is not None else None,
            dry_run=self.options.dry_run,
            counters=dict(self.counters),
            stop_reason=self._stop_reason,
            elapsed=time.monotonic() - self._started,
        )

    def _loop(self, executor: ThreadPoolExecutor) -> None:
        while True:
            self._dispatch()
            idle = self._in_flight_pages == 0 and self._pending_downloads == 0
            if idle and (not self._frontier or self._stop_reason):
                break
            try:
                kind, payload = self._results.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind == "fatal":
                raise CrawlError(str(payload))
            if kind == "page":
                self._in_flight_pages -= 1
                self._handle_page(payload, executor)
            elif kind == "image":
                self._pending_downloads -= 1
                self._handle_image(*payload)
        if not self._stop_reason and self.budget.exhausted:
            self._stop_reason = self._check_caps()  # photos were cut off even though no page was
        if self._frontier:
            left = list(self._frontier)
            self._frontier.clear()
            self.counters["pages_skipped"] += len(left)
            if self.recorder:
                self.recorder.pages_skipped(left, self._stop_reason)
            for url, _depth in left:
                self.reporter.page_done({"url": url, "status": PageStatus.SKIPPED, "error": self._stop_reason})

    def _check_caps(self) -> str:
        if self._pages_started >= self.options.max_pages:
            return f"page limit of {self.options.max_pages} reached"
        if time.monotonic() - self._started > self.options.max_seconds:
            return f"time limit of {self.options.max_seconds:g}s reached (CRAWL_MAX_SECONDS)"
        if self.budget.exhausted:
            return f"byte limit of {self.options.max_bytes:,} reached (CRAWL_MAX_BYTES)"
        return ""

    def _dispatch(self) -> None:
        while self._frontier and not self._stop_reason and self._in_flight_pages < self.options.concurrency:
            reason = self._check_caps()
            if reason:
                self._stop_reason = reason
                self._stop.set()
                return
            url, depth = self._frontier.popleft()
            job = PageJob(url=url, depth=depth)
            if self.recorder:
                job.page_id = self.recorder.page_started(url, depth)
            self._pages_started += 1
            self._in_flight_pages += 1
            self._jobs.put(job)

    def _enqueue(self, url: str, depth: int) -> None:
        url = _without_fragment(url)
        if url in self._seen:
            return
        self._seen.add(url)
        self._frontier.append((url, depth))
        self.reporter.pages_planned(min(self._pages_started + len(self._frontier), self.options.max_pages))

    def _handle_page(self, outcome: PageOutcome, executor: ThreadPoolExecutor) -> None:
        for url, depth in outcome.links:
            self._enqueue(url, depth)
        state = PageState(outcome=outcome)
        if outcome.status == PageStatus.OK:
            record = outcome.record
            if self.options.dry_run:
                existing = catalog_selectors.product_by_source_url(record.canonical_url)
                state.product_state = "would be updated" if existing else "would be new"
                self.counters["products_updated" if existing else "products_new"] += 1
            else:
                try:
                    state.product, created, state.warnings = services.store_product(record)
                except InvalidProduct as exc:
                    outcome.status = PageStatus.FAILED
                    outcome.error = f"product not stored: {exc}"
                else:
                    state.product_state = "new" if created else "updated"
                    self.counters["products_new" if created else "products_updated"] += 1
                    state.images_started = time.monotonic()
                    for image_url in record.image_urls:
                        self._schedule_image(state, image_url, executor)
        if state.pending == 0:
            self._finish_page(state)

    def _schedule_image(self, state: PageState, url: str, executor: ThreadPoolExecutor) -> None:
        try:
            action, _image = services.reuse_stored_photo(state.product, url)
        except InvalidImage as exc:
            action = "download"
            logger.warning("stored photo from %s could not be reused: %s", url, exc)
        if action == "known" or action == "duplicate":
            state.images_duplicate += 1
            return
        if action == "new":
            state.images_new += 1
            return
        state.pending += 1
        waiters = self._url_waiters.get(url)
        if waiters is not None:  # the same photo on two pages of this run: download it once
            waiters.append(state)
            return
        self._url_waiters[url] = [state]
        self._pending_downloads += 1
        referer = state.outcome.final_url or state.outcome.job.url
        future = executor.submit(self._download, url, referer)
        future.add_done_callback(lambda done, url=url: self._results.put(("image", (url, done.result()))))

    def _handle_image(self, url: str, result: DownloadedImage | str) -> None:
        for state in self._url_waiters.pop(url, []):
            if isinstance(result, str):
                state.images_failed += 1
                state.image_errors.append({"url": url, "error": result})
            else:
                try:
                    _image, created = services.store_photo(state.product, result.content, url)
                except InvalidImage as exc:
                    state.images_failed += 1
                    state.image_errors.append({"url": url, "error": str(exc)})
                else:
                    if created:
                        state.images_new += 1
                    else:
                        state.images_duplicate += 1
            state.pending -= 1
            if state.pending == 0:
                self._finish_page(state)

    def _finish_page(self, state: PageState) -> None:
        outcome = state.outcome
        counter = {
            PageStatus.OK: "pages_ok",
            PageStatus.NO_PRODUCT: "pages_no_product",
            PageStatus.REFUSED: "pages_refused",
        }.get(outcome.status, "pages_failed")
        self.counters[counter] += 1
        self.counters["images_new"] += state.images_new
        self.counters["images_duplicate"] += state.images_duplicate
        self.counters["images_failed"] += state.images_failed
        self.counters["bytes_downloaded"] = self.budget.used
        images_seconds = time.monotonic() - state.images_started if state.images_started else None
        record = outcome.record
        if self.recorder and outcome.job.page_id is not None:
            self.recorder.page_update(
                outcome.job.page_id,
                final_url=outcome.final_url[:2000],
                status=outcome.status,
                http_status=outcome.http_status,
                error=outcome.error,
                warnings=state.warnings,
                product=state.product,
                product_created=None if state.product_state is None else state.product_state == "new",
                fields=record.as_json() if record else {},
                links_found=len(outcome.links),
                images_found=len(record.image_urls) if record else 0,
                images_new=state.images_new,
                images_duplicate=state.images_duplicate,
                images_failed=state.images_failed,
                image_errors=state.image_errors,
                finished_at=timezone.now(),
                load_seconds=outcome.load_seconds,
                extract_seconds=outcome.extract_seconds,
                images_seconds=images_seconds,
                attempts=outcome.attempts,
            )
            self.recorder.save_counters(self.counters)
        self.reporter.page_done(self._report(state, images_seconds))

    def _report(self, state: PageState, images_seconds: float | None) -> dict:
        outcome = state.outcome
        result = {
            "url": outcome.job.url,
            "final_url": outcome.final_url,
            "status": outcome.status,
            "http_status": outcome.http_status,
            "error": outcome.error,
        }
        if outcome.record is not None:
            fields = outcome.record.as_json()
            fields.pop("url")
            result.update(fields)
            result["product"] = state.product_state
            result["product_id"] = getattr(state.product, "pk", None)
            result["warnings"] = state.warnings
            if not self.options.dry_run:
                result["images"] = {
                    "new": state.images_new,
                    "duplicate": state.images_duplicate,
                    "failed": state.images_failed,
                    "errors": state.image_errors,
                }
        result["seconds"] = {"load": outcome.load_seconds, "extract": outcome.extract_seconds, "images": images_seconds}
        return result

    # --- worker threads (no database) ---------------------------------------------------------------

    def _worker(self) -> None:
        session = self.pool.acquire()
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                try:
                    outcome = self._process_page(job, session)
                except BrowserUnavailable as exc:
                    self._results.put(("fatal", exc))
                    return
                except Exception as exc:
                    logger.exception("crawling %s failed unexpectedly", job.url)
                    outcome = PageOutcome(job=job, status=PageStatus.FAILED, error=f"internal error: {exc!r}")
                self._results.put(("page", outcome))
        finally:
            self.pool.release(session)

    def _process_page(self, job: PageJob, session: BrowserSession) -> PageOutcome:
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
        snapshot = None
        while snapshot is None:
            outcome.attempts += 1
            try:
                with self.page_throttle.request(host):
                    started = time.monotonic()
                    snapshot = session.load(job.url)
            except PageLoadError as exc:
                outcome.load_seconds = round(time.monotonic() - started, 3)
                outcome.http_status = exc.status
                if exc.retryable and outcome.attempts <= self.options.page_retries and not self._stop.is_set():
                    time.sleep(self.options.retry_backoff * 2 ** (outcome.attempts - 1))
                    continue
                tries = f" (gave up after {outcome.attempts} tries)" if outcome.attempts > 1 else ""
                outcome.error = f"{exc}{tries}"
                return outcome
        outcome.final_url = snapshot.final_url
        outcome.http_status = snapshot.status
        outcome.load_seconds = round(snapshot.load_seconds, 3)
        if _without_fragment(snapshot.final_url) != job.url:
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

    def _links(self, html: str, url: str, depth: int, profile) -> list[tuple[str, int]]:
        """Next pages of a listing keep its depth; product (or other) links go one level deeper."""
        next_selector = self.options.next_selector or (profile and profile.next_page) or DEFAULT_NEXT_SELECTOR
        link_selector = self.options.link_selector or (profile and profile.product_links) or DEFAULT_LINK_SELECTOR
        links = [(link, depth) for link in find_links(html, url, next_selector)]
        listed = {link for link, _ in links}
        links += [(link, depth + 1) for link in find_links(html, url, link_selector) if link not in listed]
        return links

    def _download(self, url: str, referer: str) -> DownloadedImage | str:
        """The photo, or why it could not be had (never raises: it runs in the download pool)."""
        try:
            verdict = self.robots.verdict(url)
            if not verdict.allowed:
                return verdict.reason
            return self.downloader.download(url, referer=referer)
        except (FetchError, UnsafeURL) as exc:
            return str(exc)
        except Exception as exc:
            logger.exception("downloading %s failed unexpectedly", url)
            return f"internal error: {exc!r}"


def run_crawl(
    run: CrawlRun,
    *,
    seeds=None,
    done_urls=(),
    reporter: Reporter | None = None,
    browser_pool: BrowserPool | None = None,
) -> CrawlSummary:
    """Crawl for a recorded run (its seeds unless ``seeds`` says otherwise); a run that cannot start is failed."""
    try:
        options = CrawlOptions.build(**run.options)
        crawler = Crawler(options, run=run, reporter=reporter, browser_pool=browser_pool)
    except (OptionsError, CrawlError) as exc:
        run.status, run.error, run.finished_at = RunStatus.FAILED, str(exc), timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
        raise CrawlError(str(exc)) from exc
    return crawler.crawl(run.seed_urls if seeds is None else seeds, done_urls=done_urls)
