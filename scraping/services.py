"""Writes of the crawler: its run records, and products and photos through the catalog's services."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from catalog import services as catalog_services
from catalog.models import Product
from scraping import selectors
from scraping.extract import FIELDS, ProductRecord
from scraping.models import CrawlPage, CrawlRun, PageStatus, RunStatus
from scraping.options import CrawlOptions
from scraping.safety import UnsafeURL, check_url_syntax

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
    return CrawlRun.objects.create(
        seed_urls=clean_seeds(seed_urls),
        options=options.user_options(),
        requested_by=requested_by if requested_by is not None and requested_by.is_authenticated else None,
        resumed_from=resumed_from,
    )


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
    values = {name: _fit(name, getattr(record, name)) for name in FIELDS}
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


def store_photo(product: Product, content: bytes, url: str):
    """(image, created); raises catalog InvalidImage with a clear message for bytes that are no photo."""
    return catalog_services.add_image(product=product, content=content, source_url=url)


@dataclass(frozen=True)
class ResumePlan:
    previous: CrawlRun
    seeds: list[tuple[str, int]]
    done_urls: set[str]


def resume_plan(run_id: int | None = None) -> ResumePlan:
    """What the previous (or the given) run left to do: its failed and left-out pages, at their depth."""
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


class RunRecorder:
    """Keeps a CrawlRun and its CrawlPages up to date while the crawler works (main thread only)."""

    def __init__(self, run: CrawlRun) -> None:
        self.run = run

    def start(self) -> None:
        self.run.status = RunStatus.RUNNING
        self.run.started_at = timezone.now()
        self.run.save(update_fields=["status", "started_at"])

    def page_started(self, url: str, depth: int) -> int:
        page, _ = CrawlPage.objects.update_or_create(
            run=self.run,
            url=url,
            defaults={"depth": depth, "status": PageStatus.RUNNING, "started_at": timezone.now()},
        )
        return page.pk

    def page_update(self, page_id: int, **values) -> None:
        CrawlPage.objects.filter(pk=page_id).update(**values)

    def pages_skipped(self, pages: Iterable[tuple[str, int]], reason: str) -> None:
        now = timezone.now()
        CrawlPage.objects.bulk_create(
            [
                CrawlPage(run=self.run, url=url, depth=depth, status=PageStatus.SKIPPED, error=reason, finished_at=now)
                for url, depth in pages
            ],
            ignore_conflicts=True,
        )

    def save_counters(self, counters: dict) -> None:
        for name in RUN_COUNTERS:
            setattr(self.run, name, counters.get(name, 0))
        self.run.save(update_fields=list(RUN_COUNTERS))

    @transaction.atomic
    def finish(self, *, counters: dict, status: str, stop_reason: str = "", error: str = "") -> None:
        self.save_counters(counters)
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
