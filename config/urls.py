"""Top-level URL routes."""

import re

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from core.media import serve_media

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(("config.api_urls", "api"), namespace="api")),
    path("api/", include("scraping.urls")),
    path("", include("search.urls")),
]
if settings.MEDIA_URL.startswith("/"):  # media on this site (not a CDN or bucket URL), DEBUG on or off
    urlpatterns.append(
        re_path(rf"^{re.escape(settings.MEDIA_URL.strip('/'))}/(?P<path>.+)$", serve_media, name="media")
    )

handler400 = "core.error_views.bad_request"
handler403 = "core.error_views.permission_denied"
handler404 = "core.error_views.page_not_found"
handler500 = "core.error_views.server_error"
