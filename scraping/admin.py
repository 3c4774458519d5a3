"""Crawl runs for operators: what ran, what failed and why, and a form that starts a crawl in the background."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from scraping import services
from scraping.forms import StartCrawlForm
from scraping.models import CrawlPage, CrawlRun
from scraping.tasks import enqueue_crawl


class CrawlPageInline(admin.TabularInline):
    model = CrawlPage
    fields = [
        "url",
        "status",
        "http_status",
        "error",
        "product",
        "images_new",
        "images_duplicate",
        "images_failed",
        "load_seconds",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CrawlRun)
class CrawlRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "status",
        "created_at",
        "pages_ok",
        "pages_failed",
        "pages_refused",
        "products_new",
        "products_updated",
        "images_new",
        "images_failed",
        "stop_reason",
    ]
    list_filter = ["status"]
    readonly_fields = [field.name for field in CrawlRun._meta.fields]
    inlines = [CrawlPageInline]

    def get_urls(self):
        # "Add" on this model means "start a crawl": the same permission, the form below.
        start = path("add/", self.admin_site.admin_view(self.start_crawl_view), name="scraping_crawlrun_add")
        return [start, *super().get_urls()]

    def start_crawl_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = StartCrawlForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            with transaction.atomic():
                run = services.create_run(
                    seed_urls=form.cleaned_data["urls"], options=form.cleaned_data["options"], requested_by=request.user
                )
            enqueue_crawl(run)
            self.message_user(request, f"Crawl {run.pk} of {len(run.seed_urls)} URL(s) is queued.", messages.SUCCESS)
            return redirect(reverse("admin:scraping_crawlrun_change", args=[run.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Start a crawl",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/scraping/crawlrun/start.html", context)


@admin.register(CrawlPage)
class CrawlPageAdmin(admin.ModelAdmin):
    list_display = ["url", "run", "status", "http_status", "error", "images_failed", "load_seconds"]
    list_filter = ["status"]
    search_fields = ["url", "error"]
    readonly_fields = [field.name for field in CrawlPage._meta.fields]
    list_select_related = ["run"]

    def has_add_permission(self, request) -> bool:
        return False
