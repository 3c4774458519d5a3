"""Crawl API routes; the project mounts them with ``path("api/", include("scraping.urls"))``."""

from django.urls import path

from scraping import api

app_name = "scraping"

urlpatterns = [
    path("crawls/", api.CrawlRunListCreateView.as_view(), name="crawl-list"),
    path("crawls/<int:pk>/", api.CrawlRunDetailView.as_view(), name="crawl-detail"),
]
