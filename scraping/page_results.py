"""What becomes of one page on the main thread: its state while its photos download, then its result.

``PageResult`` is the one thing the run recorder stores for a page and the reporter shows for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from catalog.models import Product
from scraping.extract import ProductRecord
from scraping.page_fetch import PageOutcome


@dataclass
class PagePhotos:
    """A stored product's photos: how many are still on their way, and what became of the others."""

    started: float = field(default_factory=time.monotonic)
    pending: int = 0
    new: int = 0
    duplicate: int = 0
    failed: int = 0
    errors: list[dict] = field(default_factory=list)

    def stored(self, created: bool) -> None:
        if created:
            self.new += 1
        else:
            self.duplicate += 1

    def lost(self, url: str, error: str) -> None:
        self.failed += 1
        self.errors.append({"url": url, "error": error})


@dataclass
class PageState:
    """A visited page between the browser's outcome and its result: product stored, photos under way."""

    outcome: PageOutcome
    product: Product | None = None
    product_state: str | None = None  # "new" / "updated" (or "would be new" in a dry run)
    warnings: list[str] = field(default_factory=list)
    photos: PagePhotos | None = None  # set once the product is stored

    @property
    def referer(self) -> str:
        return self.outcome.final_url or self.outcome.job.url

    def result(self) -> PageResult:
        outcome, photos = self.outcome, self.photos or PagePhotos()
        return PageResult(
            page_id=outcome.job.page_id,
            url=outcome.job.url,
            final_url=outcome.final_url,
            status=outcome.status,
            http_status=outcome.http_status,
            error=outcome.error,
            record=outcome.record,
            product=self.product,
            product_state=self.product_state,
            warnings=self.warnings,
            links_found=len(outcome.links),
            images_new=photos.new,
            images_duplicate=photos.duplicate,
            images_failed=photos.failed,
            image_errors=photos.errors,
            load_seconds=outcome.load_seconds,
            extract_seconds=outcome.extract_seconds,
            images_seconds=time.monotonic() - self.photos.started if self.photos else None,
            attempts=outcome.attempts,
        )


@dataclass(frozen=True)
class PageResult:
    """One finished page: what the run recorder stores and the reporter shows."""

    page_id: int | None  # its CrawlPage (None in a dry run)
    url: str
    final_url: str
    status: str
    http_status: int | None
    error: str
    record: ProductRecord | None
    product: Product | None
    product_state: str | None
    warnings: list[str]
    links_found: int
    images_new: int
    images_duplicate: int
    images_failed: int
    image_errors: list[dict]
    load_seconds: float | None
    extract_seconds: float | None
    images_seconds: float | None
    attempts: int

    @property
    def images_found(self) -> int:
        return len(self.record.image_urls) if self.record else 0

    @property
    def product_created(self) -> bool | None:
        return None if self.product_state is None else self.product_state == "new"

    def report(self, *, dry_run: bool) -> dict:
        """The JSON-ready line of ``manage.py crawl --json``."""
        report = {
            "url": self.url,
            "final_url": self.final_url,
            "status": self.status,
            "http_status": self.http_status,
            "error": self.error,
        }
        if self.record is not None:
            fields = self.record.as_json()
            fields.pop("url")
            report.update(fields)
            report["product"] = self.product_state
            report["product_id"] = getattr(self.product, "pk", None)
            report["warnings"] = self.warnings
            if not dry_run:  # "images" stays the list of photo URLs, as in a dry run
                report["image_downloads"] = {
                    "new": self.images_new,
                    "duplicate": self.images_duplicate,
                    "failed": self.images_failed,
                    "errors": self.image_errors,
                }
        report["seconds"] = {"load": self.load_seconds, "extract": self.extract_seconds, "images": self.images_seconds}
        return report
