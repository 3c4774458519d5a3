"""The project's admin plus the crawl API, mounted the way config/urls.py mounts it."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("scraping.urls")),
]
