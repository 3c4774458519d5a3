"""Reads for the crawler, the admin and the API."""

from __future__ import annotations

from django.db.models import QuerySet

from catalog.models import Product, ProductImage
from scraping.models import CrawlPage, CrawlRun, PageStatus

# What ``--resume`` visits (again): pages never visited (the recorded frontier), cut off, failed or left
# out by a cap; pages that lost photos are added by ``pages_to_retry``.
RETRY_STATUSES = (PageStatus.PENDING, PageStatus.RUNNING, PageStatus.FAILED, PageStatus.SKIPPED)
# Pages a resume need not visit again (when no photo of theirs failed).
DONE_STATUSES = (PageStatus.OK, PageStatus.NO_PRODUCT, PageStatus.REFUSED)


def get_run(run_id: int) -> CrawlRun | None:
    return CrawlRun.objects.filter(pk=run_id).first()


def latest_run() -> CrawlRun | None:
    """The most recent run that got going (a queued one has nothing to resume)."""
    return CrawlRun.objects.exclude(started_at=None).order_by("-created_at", "-id").first()


def pages_to_retry(run: CrawlRun) -> QuerySet[CrawlPage]:
    return (
        CrawlPage.objects.filter(run=run, status__in=RETRY_STATUSES)
        .union(CrawlPage.objects.filter(run=run, images_failed__gt=0))
        .order_by("id")
    )


def pending_pages(run: CrawlRun) -> QuerySet[CrawlPage]:
    """The run's frontier as recorded: pages found and not visited, and pages a killed slice cut off."""
    return CrawlPage.objects.filter(run=run, status__in=[PageStatus.PENDING, PageStatus.RUNNING]).order_by("id")


def pages_visited(run: CrawlRun) -> int:
    """Pages the run has sent a browser to (what CRAWL_MAX_PAGES counts)."""
    return CrawlPage.objects.filter(run=run, status__in=[*DONE_STATUSES, PageStatus.FAILED]).count()


def run_urls(run: CrawlRun) -> set[str]:
    return set(CrawlPage.objects.filter(run=run).values_list("url", flat=True))


def finished_urls(run: CrawlRun) -> set[str]:
    """Pages a resume need not visit again: done without any failure, in this run or the runs it resumed."""
    urls: set[str] = set()
    seen_runs: set[int] = set()
    while run is not None and run.pk not in seen_runs:
        seen_runs.add(run.pk)
        urls.update(
            CrawlPage.objects.filter(run=run, status__in=DONE_STATUSES, images_failed=0).values_list("url", flat=True)
        )
        run = run.resumed_from
    return urls


def image_url_known_for_product(product: Product, url: str) -> bool:
    return ProductImage.objects.filter(product=product, source_url=url).exists()


def stored_image_from_url(url: str) -> ProductImage | None:
    """A photo already downloaded from ``url`` (for any product): its bytes need not be fetched again."""
    return ProductImage.objects.filter(source_url=url).exclude(file="").order_by("-id").first()
