"""What an operator needs to see about crawls: every run, and every page of it with status, error and timings."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    FAILED = "failed", "Failed"


class CrawlRun(models.Model):
    """One crawl: its seeds and options, its counters, and why it stopped."""

    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    seed_urls = models.JSONField(default=list, help_text="The URLs the run started from.")
    options = models.JSONField(
        default=dict, blank=True, help_text="Options given for this run (the rest come from settings)."
    )
    resumed_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resumes")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(
        max_length=200, blank=True, default="", help_text="Which cap ended the run early, if any."
    )
    error = models.TextField(blank=True, default="", help_text="Why the whole run failed, if it did.")
    pages_ok = models.PositiveIntegerField(default=0)
    pages_no_product = models.PositiveIntegerField(default=0)
    pages_failed = models.PositiveIntegerField(default=0)
    pages_refused = models.PositiveIntegerField(default=0)
    pages_skipped = models.PositiveIntegerField(default=0)
    products_new = models.PositiveIntegerField(default=0)
    products_updated = models.PositiveIntegerField(default=0)
    images_new = models.PositiveIntegerField(default=0)
    images_duplicate = models.PositiveIntegerField(default=0)
    images_failed = models.PositiveIntegerField(default=0)
    bytes_downloaded = models.BigIntegerField(default=0)
    crawl_seconds = models.FloatField(
        default=0, help_text="Time spent crawling, over all slices (CRAWL_MAX_SECONDS applies to it)."
    )
    slices = models.PositiveIntegerField(
        default=0, help_text="Background tasks this run has used: a long crawl goes on in a new task per slice."
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Crawl {self.pk} ({self.get_status_display()})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class PageStatus(models.TextChoices):
    PENDING = "pending", "Pending (found, not visited yet)"
    RUNNING = "running", "Running"
    OK = "ok", "Product stored"
    NO_PRODUCT = "no_product", "No product on the page"
    FAILED = "failed", "Failed"
    REFUSED = "refused", "Refused (robots.txt or address policy)"
    SKIPPED = "skipped", "Skipped (run limit reached)"


class CrawlPage(models.Model):
    """One page of a run: found and waiting (the recorded frontier), visited, refused or left out."""

    run = models.ForeignKey(CrawlRun, on_delete=models.CASCADE, related_name="pages")
    url = models.URLField(max_length=2000)
    final_url = models.URLField(max_length=2000, blank=True, default="")
    depth = models.PositiveSmallIntegerField(default=0, help_text="0 for a seed, 1 for a page linked from a seed, ...")
    status = models.CharField(max_length=12, choices=PageStatus.choices, default=PageStatus.RUNNING, db_index=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    warnings = models.JSONField(default=list, blank=True)
    product = models.ForeignKey("catalog.Product", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    product_created = models.BooleanField(null=True, blank=True)
    fields = models.JSONField(default=dict, blank=True, help_text="What was extracted, with the source of each field.")
    links_found = models.PositiveIntegerField(default=0)
    images_found = models.PositiveIntegerField(default=0)
    images_new = models.PositiveIntegerField(default=0)
    images_duplicate = models.PositiveIntegerField(default=0)
    images_failed = models.PositiveIntegerField(default=0)
    image_errors = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    load_seconds = models.FloatField(null=True, blank=True, help_text="Browser: load, settle and scroll.")
    extract_seconds = models.FloatField(null=True, blank=True)
    images_seconds = models.FloatField(null=True, blank=True, help_text="From the first image download to the last.")
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["run_id", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "url"], name="scraping_page_unique_run_url")]

    def __str__(self) -> str:
        return f"{self.url} ({self.status})"
