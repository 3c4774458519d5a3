"""Uploaded media (product photos, masks, cutouts) served through Django's storage API.

Why: ``django.conf.urls.static`` serves ``MEDIA_ROOT`` only with DEBUG on, so a production site on one
machine showed no photo. Reading through ``default_storage`` keeps this right for any backend (on S3 the
files' own URLs point at the bucket and this route is simply not used).
"""

from __future__ import annotations

import mimetypes

from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.views.decorators.http import require_safe


@require_safe
def serve_media(request, path: str) -> FileResponse:
    try:
        if not path or not default_storage.exists(path):
            raise Http404("No such media file.")
        handle = default_storage.open(path, "rb")
    except (SuspiciousFileOperation, IsADirectoryError, NotADirectoryError) as exc:  # ../ or a folder
        raise Http404("No such media file.") from exc
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    response = FileResponse(handle, content_type=content_type)
    response["Cache-Control"] = "public, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response
