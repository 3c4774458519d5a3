"""Writes of the crawler: its run records, and products and photos through the catalog's services."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from catalog import services as catalog_services
from catalog.models import Product
from catalog.vocabulary import PAGE_FIELDS
from scraping import selectors
from scraping.download import DownloadedImage
from scraping.extract import ProductRecord
from scraping.models import CrawlPage, CrawlRun, PageStatus, RunStatus
from scraping.options import CrawlOptions
from scraping.safety import UnsafeURL, check_url_syntax

if TYPE_CHECKING:
    from scraping.page_results import PageResult

logger = logging.getLogger(__name__)

RUN_COUNTERS = (
    "pages_ok",
    "pages_no_product",
    "pages_failed",
    "pages_refused",
    "pages_skipped",
    "products_new",
    "products_updated",
    "images_new",
    "images_duplicate",
    "images_failed",
    "bytes_downloaded",
)


class SeedError(ValueError):
    """A seed that is not an absolute http(s) URL."""


def clean_seeds(urls: Iterable[str]) -> list[str]:
    """Seed URLs stripped and de-duplicated in order; a bad one is an error naming it (nothing is dropped)."""
    seeds: list[str] = []
    for raw in urls:
        url = raw.strip()
        if not url:
            continue
        try:
            check_url_syntax(url)
        except UnsafeURL as exc:
            raise SeedError(f"{url!r} is not an absolute http(s) URL") from exc
        if url not in seeds:
            seeds.append(url)
    if not seeds:
        raise SeedError("no URL to crawl")
    return seeds


def create_run(
    *, seed_urls: Iterable[str], options: CrawlOptions, requested_by=None, resumed_from: CrawlRun | None = None
) -> CrawlRun:
    run = CrawlRun.objects.create(
        seed_urls=clean_seeds(seed_urls),
        options=options.user_options(),
        requested_by=requested_by if requested_by is not None and requested_by.is_authenticated else None,
        resumed_from=resumed_from,
    )
    if resumed_from is not None:
        retire_resumed_run(resumed_from, resumed_by=run)
    return run


def _fit(name: str, value):
    """Strings cut to the column's length: a long marketing title must not cost the whole product."""
    if isinstance(value, str):
        limit = Product._meta.get_field(name).max_length
        if limit and len(value) > limit:
            return value[: limit - 1].rstrip() + "…"
    return value


def shop_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower().removeprefix("www.")


def product_fields(record: ProductRecord) -> tuple[dict, list[str]]:
    """Catalog fields of a record (None stays None: unknown fields never erase stored ones) and warnings."""
    warnings = []
    values = {name: _fit(name, getattr(record, name)) for name in PAGE_FIELDS}
    if values["price"] is not None and not values["currency"]:
        warnings.append(f"price {values['price']} was left out: the page states no currency")
        values["price"] = None
    return values, warnings


def store_product(record: ProductRecord) -> tuple[Product, bool, list[str]]:
    """Upsert the record's product by canonical URL; returns (product, created, warnings)."""
    values, warnings = product_fields(record)
    product, created = catalog_services.upsert_product(
        source_url=record.canonical_url, shop=shop_of(record.canonical_url), **values
    )
    return product, created, warnings


def reuse_stored_photo(product: Product, url: str) -> tuple[str, object | None]:
    """Attach a photo downloaded earlier from ``url`` without fetching it again.

    Returns ("known", None) when the product already has a photo from that URL, ("new"|"duplicate", image)
    when stored bytes could be reused, and ("download", None) when the caller has to download.
    """
    if selectors.image_url_known_for_product(product, url):
        return "known", None
    stored = selectors.stored_image_from_url(url)
    if stored is None:
        return "download", None
    try:
        with stored.file.open("rb") as handle:
            content = handle.read()
    except OSError:
        return "download", None
    if hashlib.sha256(content).hexdigest() != stored.sha256:
        return "download", None
    image, created = catalog_services.add_image(product=product, content=content, source_url=url)
    return ("new" if created else "duplicate"), image


@contextmanager
def photo_batch() -> Iterator[None]:
    """Store several downloaded photos in one transaction (each its own savepoint) and queue them together.

    One commit for a batch instead of one per photo; a photo that fails rolls back alone.
    """
    with transaction.atomic(), catalog_services.announce_in_bulk():
        yield


def store_photo(product: Product, download: DownloadedImage):
    """(image, created); the download's photo was checked and decoded by the downloader, so it is not again."""
    return catalog_services.add_image(product=product, photo=download.photo, source_url=download.url)


def store_photos(downloads: list[tuple[Product, DownloadedImage]]) -> list[tuple[object, bool]]:
    """``store_photo`` for downloads that arrived together: one transaction, the rows and queueing in bulk.

    If the bulk write fails (a concurrent writer stored the same photo), they are stored one by one.
    """
    items = [
        catalog_services.NewPhoto(product, download.photo, source_url=download.url) for product, download in downloads
    ]
    with photo_batch():
        try:
            with transaction.atomic():
                return catalog_services.add_images(items)
        except DatabaseError:
            logger.warning("storing %d photos together failed; storing them one by one", len(items))
            return [store_photo(product, download) for product, download in downloads]


@dataclass(frozen=True)
class ResumePlan:
    previous: CrawlRun
    seeds: list[tuple[str, int]]
    done_urls: set[str]


def resume_plan(run_id: int | None = None) -> ResumePlan:
    """What the previous (or the given) run left to do: pages never visited, failed or left out, at their depth."""
    previous = selectors.get_run(run_id) if run_id else selectors.latest_run()
    if previous is None:
        raise LookupError(f"there is no crawl run {run_id}" if run_id else "there is no earlier crawl run to resume")
    seeds = []
    seen = set()
    for page in selectors.pages_to_retry(previous):
        if page.url not in seen:
            seen.add(page.url)
            seeds.append((page.url, page.depth))
    return ResumePlan(previous=previous, seeds=seeds, done_urls=selectors.finished_urls(previous))


def retire_resumed_run(previous: CrawlRun, *, resumed_by: CrawlRun) -> None:
    """A run still marked running when it is resumed was killed: say so, and let no later slice of it start."""
    CrawlRun.objects.filter(pk=previous.pk, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
        status=RunStatus.FAILED,
        error=f"stopped before it finished (interrupted or killed); resumed as run {resumed_by.pk}",
        finished_at=timezone.now(),
    )


@dataclass(frozen=True)
class RunProgress:
    """Where a recorded run stands between two slices: what is left, what is done, what it has spent."""

    pending: list[tuple[str, int]]
    seen_urls: set[str]
    pages_visited: int
    counters: dict
    seconds: float


def run_progress(run: CrawlRun) -> RunProgress:
    """The state an earlier slice of ``run`` recorded, for the next slice to carry on from."""
    pending = [(page.url, page.depth) for page in selectors.pending_pages(run)]
    seen = selectors.run_urls(run)
    if run.resumed_from is not None:
        seen |= selectors.finished_urls(run.resumed_from)
    return RunProgress(
        pending=pending,
        seen_urls=seen,
        pages_visited=selectors.pages_visited(run),
        counters={name: getattr(run, name) for name in RUN_COUNTERS},
        seconds=run.crawl_seconds,
    )


def claim_slice(run: CrawlRun, number: int) -> bool:
    """Take slice ``number`` of a run for this task; False when another task has it (or the run is over)."""
    expected = RunStatus.QUEUED if number == 1 else RunStatus.RUNNING
    claimed = CrawlRun.objects.filter(pk=run.pk, status=expected, slices=number - 1).update(
        slices=F("slices") + 1, status=RunStatus.RUNNING
    )
    if claimed:
        run.refresh_from_db(fields=["slices", "status"])
    return bool(claimed)


class RunRecorder:
    """Keeps a CrawlRun and its CrawlPages up to date while the crawler works (main thread only).

    Every page the run finds is recorded as pending at once, so the frontier outlives an interrupt or a
    killed task, and a resume (or the next slice) knows every page still to visit.
    """

    def __init__(self, run: CrawlRun) -> None:
        self.run = run

    def start(self) -> None:
        self.run.status = RunStatus.RUNNING
        self.run.started_at = self.run.started_at or timezone.now()
        self.run.save(update_fields=["status", "started_at"])

    def pages_found(self, pages: Iterable[tuple[str, int]]) -> None:
        CrawlPage.objects.bulk_create(
            [CrawlPage(run=self.run, url=url, depth=depth, status=PageStatus.PENDING) for url, depth in pages],
            ignore_conflicts=True,
        )

    def page_started(self, url: str, depth: int) -> int:
        page, _ = CrawlPage.objects.update_or_create(
            run=self.run,
            url=url,
            defaults={"depth": depth, "status": PageStatus.RUNNING, "started_at": timezone.now()},
        )
        return page.pk

    def page_finished(self, result: PageResult) -> None:
        CrawlPage.objects.filter(pk=result.page_id).update(
            final_url=result.final_url[:2000],
            status=result.status,
            http_status=result.http_status,
            error=result.error,
            warnings=result.warnings,
            product=result.product,
            product_created=result.product_created,
            fields=result.record.as_json() if result.record else {},
            links_found=result.links_found,
            images_found=result.images_found,
            images_new=result.images_new,
            images_duplicate=result.images_duplicate,
            images_failed=result.images_failed,
            image_errors=result.image_errors,
            finished_at=timezone.now(),
            load_seconds=result.load_seconds,
            extract_seconds=result.extract_seconds,
            images_seconds=result.images_seconds,
            attempts=result.attempts,
        )

    def pages_skipped(self, pages: Iterable[tuple[str, int]], reason: str) -> None:
        """The frontier a cap left unvisited: its pending rows become skipped (resume visits them)."""
        now = timezone.now()
        urls = [url for url, _depth in pages]
        for start in range(0, len(urls), 500):
            CrawlPage.objects.filter(run=self.run, status=PageStatus.PENDING, url__in=urls[start : start + 500]).update(
                status=PageStatus.SKIPPED, error=reason, finished_at=now
            )

    def save_counters(self, counters: dict, *, seconds: float | None = None) -> None:
        for name in RUN_COUNTERS:
            setattr(self.run, name, counters.get(name, 0))
        fields = list(RUN_COUNTERS)
        if seconds is not None:
            self.run.crawl_seconds = seconds
            fields.append("crawl_seconds")
        self.run.save(update_fields=fields)

    def pause(self, *, counters: dict, seconds: float) -> None:
        """The slice is over and pages are left: the run stays running, its frontier recorded as pending."""
        self.save_counters(counters, seconds=seconds)

    @transaction.atomic
    def finish(self, *, counters: dict, seconds: float, status: str, stop_reason: str = "", error: str = "") -> None:
        self.save_counters(counters, seconds=seconds)
        # Pages still "running" were cut off by the failure that ended the run.
        CrawlPage.objects.filter(run=self.run, status=PageStatus.RUNNING).update(
            status=PageStatus.FAILED,
            error=error or "the run ended before this page finished",
            finished_at=timezone.now(),
        )
        self.run.status = status
        self.run.stop_reason = stop_reason[:200]
        self.run.error = error
        self.run.finished_at = timezone.now()
        self.run.save(update_fields=["status", "stop_reason", "error", "finished_at"])
