"""One crawl run: browsers load pages, a thread pool fetches photos, and only the main thread writes.

The pieces: ``page_fetch`` (browser workers: load, extract, links; no database), ``photo_downloads`` (which
photo is fetched for which page), ``frontier`` (pages still to visit), ``page_results`` (what a page
became) and ``services.RunRecorder`` (the run record). This module wires them and runs the main loop,
which owns the frontier, the caps, the run record and every catalog write, so database work stays on
one connection and needs no locking.

A run can go in slices (``slice_seconds``): when a slice is over, no new page starts, the pages under way
finish, and the frontier stays recorded as pending for the next slice (``Crawler.carry_on``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

from django.utils import timezone

from catalog import selectors as catalog_selectors
from catalog.services import InvalidProduct
from scraping import services
from scraping.browser import BrowserConfig, BrowserPool
from scraping.download import ByteBudget, ImageDownloader, SafeHttpClient
from scraping.frontier import Frontier
from scraping.models import CrawlRun, PageStatus, RunStatus
from scraping.options import CrawlOptions, OptionsError
from scraping.page_fetch import PageFetcher, PageJob, PageOutcome, browser_worker
from scraping.page_results import PageState
from scraping.photo_downloads import PhotoDownloads
from scraping.politeness import HostThrottle
from scraping.profiles import ProfileError, load_profiles
from scraping.robots import RobotsCache
from scraping.safety import AddressPolicy

logger = logging.getLogger(__name__)

PAGE_COUNTERS = {
    PageStatus.OK: "pages_ok",
    PageStatus.NO_PRODUCT: "pages_no_product",
    PageStatus.REFUSED: "pages_refused",
}  # any other outcome counts as failed


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
            # The browser's own requests obey exactly this run's address policy (see browser_guard).
            policy=AddressPolicy.build(allow_private=options.allow_private, allowed_networks=options.allowed_networks),
        )
    )


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
    more_to_do: bool = False  # the slice ended with pages left: the run goes on in a next slice

    def lines(self) -> list[str]:
        c = self.counters
        head = "Dry run (nothing stored)" if self.dry_run else f"Crawl run {self.run_id}"
        if self.more_to_do:
            ending = f" paused after {self.elapsed:.1f}s; it goes on in its next slice"
        else:
            ending = f" finished in {self.elapsed:.1f}s" + (
                f"; stopped early: {self.stop_reason}" if self.stop_reason else ""
            )
        lines = [
            head + ending,
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
        slice_seconds: float | None = None,
        check_catalog: bool = True,
    ) -> None:
        """``check_catalog=False``: a dry run reports products as "not checked" instead of reading the
        catalog (which may be unmigrated or unreachable)."""
        if run is None and not options.dry_run:
            raise ValueError("a crawl that stores products needs a CrawlRun to record it")
        self.options = options
        self.check_catalog = check_catalog
        self.reporter = reporter or Reporter()
        self.recorder = services.RunRecorder(run) if run is not None and not options.dry_run else None
        self.run = run
        self.slice_seconds = slice_seconds
        self._own_pool = browser_pool is None
        self.pool = browser_pool
        try:
            profiles = load_profiles(options.profiles_file)
            policy = AddressPolicy.build(allow_private=options.allow_private, allowed_networks=options.allowed_networks)
        except (ProfileError, ValueError) as exc:
            raise CrawlError(str(exc)) from exc
        self.budget = ByteBudget(options.max_bytes)
        client = SafeHttpClient(
            policy=policy, user_agent=options.user_agent, timeout=options.image_timeout, budget=self.budget
        )
        robots = RobotsCache(client=client, user_agent=options.user_agent, ignore_hosts=options.ignore_robots_hosts)
        image_throttle = HostThrottle(delay=options.delay, per_host=options.host_concurrency)
        self._stop = threading.Event()
        self._results: queue.Queue[tuple[str, object]] = queue.Queue()
        self._jobs: queue.Queue[PageJob | None] = queue.Queue()
        self.fetcher = PageFetcher(
            options,
            policy=policy,
            robots=robots,
            budget=self.budget,
            profiles=profiles,
            page_throttle=HostThrottle(delay=options.delay, per_host=options.host_concurrency),
            image_throttle=image_throttle,
            stopping=self._stop,
        )
        self.photos = PhotoDownloads(
            downloader=ImageDownloader(
                client=client,
                throttle=image_throttle,
                max_bytes=options.image_max_bytes,
                retries=options.image_retries,
                backoff=options.retry_backoff,
            ),
            robots=robots,
            results=self._results,
            workers=2 * options.concurrency,
        )
        self.frontier = Frontier()
        self.counters = dict.fromkeys(services.RUN_COUNTERS, 0)
        self._in_flight_pages = 0
        self._pages_started = 0  # by the whole run: what CRAWL_MAX_PAGES counts
        self._pages_started_here = 0  # by this slice: each slice starts at least one page
        self._stop_reason = ""
        self._slice_over = False
        self._seconds_before = 0.0  # crawl time of the run's earlier slices
        self._started = 0.0

    # --- entry points -------------------------------------------------------------------------------

    def crawl(self, seeds, *, done_urls=()) -> CrawlSummary:
        """Crawl ``seeds`` (URLs, or (URL, depth) pairs); ``done_urls`` are known finished and not visited."""
        self.frontier.mark_seen(done_urls)
        return self._run(seeds)

    def carry_on(self, progress: services.RunProgress) -> CrawlSummary:
        """Go on with a recorded run where its earlier slices left off: its pending pages, counters and spending."""
        self.counters.update(progress.counters)
        self.budget.used = min(progress.counters.get("bytes_downloaded", 0), self.budget.limit)
        self._pages_started = progress.pages_visited
        self._seconds_before = progress.seconds
        self.frontier.mark_seen(progress.seen_urls)
        self.frontier.restore(progress.pending)
        self._report_planned()
        return self._run(())

    # --- main thread ------------------------------------------------------------------------------

    def _run(self, seeds) -> CrawlSummary:
        self._started = time.monotonic()
        if self.pool is None:
            self.pool = open_browser_pool(self.options)
        workers = [
            threading.Thread(
                target=browser_worker,
                args=(self.pool, self.fetcher, self._jobs, self._results),
                name=f"crawl-browser-{n}",
                daemon=True,
            )
            for n in range(self.options.concurrency)
        ]
        status, error = RunStatus.FAILED, ""
        try:
            if self.recorder:
                self.recorder.start()
            self._found(seeds)
            for worker in workers:
                worker.start()
            self._loop()
            status = RunStatus.FINISHED
        except BaseException as exc:  # also Ctrl-C and django-q's timeout (a SystemExit): say why, then go
            error = "interrupted" if isinstance(exc, KeyboardInterrupt) else (str(exc) or exc.__class__.__name__)
            raise
        finally:
            self._stop.set()
            more_to_do = status == RunStatus.FINISHED and len(self.frontier) > 0
            try:  # the record first: a task about to be killed at its timeout still says why it stopped
                self._record_end(status=status, error=error, more_to_do=more_to_do)
            finally:
                self._shut_down(workers)
        return CrawlSummary(
            run_id=self.run.pk if self.run is not None else None,
            dry_run=self.options.dry_run,
            counters=dict(self.counters),
            stop_reason=self._stop_reason,
            elapsed=time.monotonic() - self._started,
            more_to_do=more_to_do,
        )

    def _record_end(self, *, status: str, error: str, more_to_do: bool) -> None:
        self.counters["bytes_downloaded"] = self.budget.used
        if self.recorder is None:
            return
        if more_to_do:
            self.recorder.pause(counters=self.counters, seconds=self._elapsed())
        else:
            self.recorder.finish(
                counters=self.counters,
                seconds=self._elapsed(),
                status=status,
                stop_reason=self._stop_reason,
                error=error,
            )

    def _shut_down(self, workers: list[threading.Thread]) -> None:
        for _worker in workers:
            self._jobs.put(None)
        self.photos.shutdown()
        for worker in workers:
            if worker.ident is not None:  # started
                worker.join(timeout=self.options.page_timeout + self.options.scroll_max_seconds + 10)
        if self._own_pool:
            self.pool.close()

    def _loop(self) -> None:
        while True:
            self._dispatch()
            idle = self._in_flight_pages == 0 and self.photos.in_flight == 0
            if idle and (not self.frontier or self._stop_reason or self._slice_over):
                break
            try:
                kind, payload = self._results.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind == "fatal":
                raise CrawlError(str(payload))
            if kind == "page":
                self._in_flight_pages -= 1
                self._handle_page(payload)
            elif kind == "image":
                for page in self.photos.arrived_many(self._more_photos([payload])):
                    self._finish_page(page)
        if not self._stop_reason and self.budget.exhausted:
            self._stop_reason = self._check_caps()  # photos were cut off even though no page was
        if self.frontier and self._stop_reason:
            left = self.frontier.drain()
            self.counters["pages_skipped"] += len(left)
            if self.recorder:
                self.recorder.pages_skipped(left, self._stop_reason)
            for url, _depth in left:
                self.reporter.page_done({"url": url, "status": PageStatus.SKIPPED, "error": self._stop_reason})

    def _more_photos(self, batch: list, limit: int = 64) -> list:
        """Add the photo downloads already waiting in the results queue, to store them in one transaction."""
        while len(batch) < limit:
            try:
                kind, payload = self._results.get_nowait()
            except queue.Empty:
                break
            if kind != "image":
                self._results.put((kind, payload))  # read again on the next turn of the loop
                break
            batch.append(payload)
        return batch

    def _elapsed(self) -> float:
        return self._seconds_before + (time.monotonic() - self._started)

    def _check_caps(self) -> str:
        if self._pages_started >= self.options.max_pages:
            return f"page limit of {self.options.max_pages} reached"
        if self._elapsed() > self.options.max_seconds:
            return f"time limit of {self.options.max_seconds:g}s reached (CRAWL_MAX_SECONDS)"
        if self.budget.exhausted:
            return f"byte limit of {self.options.max_bytes:,} reached (CRAWL_MAX_BYTES)"
        return ""

    def _slice_is_over(self) -> bool:
        if self.slice_seconds is None or self._pages_started_here == 0:
            return False
        return time.monotonic() - self._started >= self.slice_seconds

    def _dispatch(self) -> None:
        while self.frontier and not self._stop_reason and self._in_flight_pages < self.options.concurrency:
            reason = self._check_caps()
            if reason:
                self._stop_reason = reason
                self._stop.set()
                return
            if self._slice_is_over():
                self._slice_over = True
                return
            url, depth = self.frontier.pop()
            job = PageJob(url=url, depth=depth)
            if self.recorder:
                job.page_id = self.recorder.page_started(url, depth)
            self._pages_started += 1
            self._pages_started_here += 1
            self._in_flight_pages += 1
            self._jobs.put(job)

    def _found(self, pages) -> None:
        """Queue pages not seen before, and record them as pending so that an interrupt cannot lose them."""
        added = self.frontier.add(pages)
        if added:
            if self.recorder:
                self.recorder.pages_found(added)
            self._report_planned()

    def _report_planned(self) -> None:
        self.reporter.pages_planned(min(self._pages_started + len(self.frontier), self.options.max_pages))

    def _handle_page(self, outcome: PageOutcome) -> None:
        self._found(outcome.links)
        page = PageState(outcome=outcome)
        if outcome.status == PageStatus.OK:
            record = outcome.record
            if self.options.dry_run and not self.check_catalog:
                page.product_state = "not checked"
            elif self.options.dry_run:
                existing = catalog_selectors.product_by_source_url(record.canonical_url)
                page.product_state = "would be updated" if existing else "would be new"
                self.counters["products_updated" if existing else "products_new"] += 1
            else:
                try:
                    page.product, created, page.warnings = services.store_product(record)
                except InvalidProduct as exc:
                    outcome.status = PageStatus.FAILED
                    outcome.error = f"product not stored: {exc}"
                else:
                    page.product_state = "new" if created else "updated"
                    self.counters["products_new" if created else "products_updated"] += 1
                    self.photos.fetch_for(page, record.image_urls)
        if page.photos is None or page.photos.pending == 0:
            self._finish_page(page)

    def _finish_page(self, page: PageState) -> None:
        result = page.result()
        self.counters[PAGE_COUNTERS.get(result.status, "pages_failed")] += 1
        self.counters["images_new"] += result.images_new
        self.counters["images_duplicate"] += result.images_duplicate
        self.counters["images_failed"] += result.images_failed
        self.counters["bytes_downloaded"] = self.budget.used
        if self.recorder and result.page_id is not None:
            self.recorder.page_finished(result)
            self.recorder.save_counters(self.counters, seconds=self._elapsed())
        self.reporter.page_done(result.report(dry_run=self.options.dry_run))


def run_crawl(
    run: CrawlRun,
    *,
    seeds=None,
    done_urls=(),
    reporter: Reporter | None = None,
    browser_pool: BrowserPool | None = None,
    slice_seconds: float | None = None,
) -> CrawlSummary:
    """Crawl for a recorded run: a new run from its seeds (or ``seeds``), one that got going from its records.

    A run that cannot start is failed with the reason.
    """
    try:
        options = CrawlOptions.build(**run.options)
        crawler = Crawler(options, run=run, reporter=reporter, browser_pool=browser_pool, slice_seconds=slice_seconds)
    except (OptionsError, CrawlError) as exc:
        run.status, run.error, run.finished_at = RunStatus.FAILED, str(exc), timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
        raise CrawlError(str(exc)) from exc
    if seeds is None and run.started_at is not None:
        return crawler.carry_on(services.run_progress(run))
    return crawler.crawl(run.seed_urls if seeds is None else seeds, done_urls=done_urls)
