"""Reads for the crawler, the admin and the API."""

from __future__ import annotations

from django.db.models import QuerySet

from catalog.models import Product, ProductImage
from scraping.models import CrawlPage, CrawlRun, PageStatus

# What ``--resume`` tries again: pages that failed, were left out by a cap, or lost images.
RETRY_STATUSES = (PageStatus.FAILED, PageStatus.SKIPPED, PageStatus.RUNNING)


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


def finished_urls(run: CrawlRun) -> set[str]:
    """Pages a resume need not visit again: done without any failure."""
    return set(
        CrawlPage.objects.filter(run=run, status__in=[PageStatus.OK, PageStatus.NO_PRODUCT, PageStatus.REFUSED])
        .filter(images_failed=0)
        .values_list("url", flat=True)
    )


def run_pages(run: CrawlRun) -> QuerySet[CrawlPage]:
    return CrawlPage.objects.filter(run=run).select_related("product").order_by("id")


def image_url_known_for_product(product: Product, url: str) -> bool:
    return ProductImage.objects.filter(product=product, source_url=url).exists()


def stored_image_from_url(url: str) -> ProductImage | None:
    """A photo already downloaded from ``url`` (for any product): its bytes need not be fetched again."""
    return ProductImage.objects.filter(source_url=url).exclude(file="").order_by("-id").first()
