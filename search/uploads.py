"""Guarding shopper uploads before any decoding: size, real image format, no smuggled payloads.

Decoding itself (truncation, decompression bombs, colour modes, EXIF) is ``search.pipeline.images``'s
job; this module only refuses what must never reach the decoder, with a status code that says why.
"""

from __future__ import annotations

import io
import re

from django.conf import settings
from PIL import Image, UnidentifiedImageError

ALLOWED_FORMATS = {
    "JPEG": "JPEG",
    "MPO": "JPEG",
    "PNG": "PNG",
    "WEBP": "WebP",
    "GIF": "GIF",
    "BMP": "BMP",
    "TIFF": "TIFF",
}
# Markup or archives hidden inside an "image" (polyglot files): never something a camera writes.
_SMUGGLED = re.compile(rb"<\s*(script|html|svg|\?php|iframe|object|embed)\b|PK\x03\x04|%PDF-", re.IGNORECASE)


class UploadError(ValueError):
    """An upload refused before decoding; ``status_code`` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status_code: int = 400, code: str = "invalid_image"):
        super().__init__(message)
        self.status_code = status_code
        self.code = code


def read_upload(uploaded, *, max_bytes: int | None = None) -> bytes:
    """Bytes of an uploaded file after the cheap checks; raises UploadError."""
    if uploaded is None:
        raise UploadError("Choose a photo to upload.", code="missing_image")
    limit = max_bytes or settings.MAX_UPLOAD_BYTES
    declared = getattr(uploaded, "size", None)
    if declared is not None and declared > limit:
        raise UploadError(
            f"The file is {declared / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB.",
            status_code=413,
            code="too_large",
        )
    content = uploaded.read(limit + 1)
    if len(content) > limit:
        raise UploadError(f"The file is larger than {limit / 1e6:.0f} MB.", status_code=413, code="too_large")
    check_image_bytes(content)
    return content


def check_image_bytes(content: bytes) -> None:
    if not content:
        raise UploadError("The file is empty (0 bytes).", code="empty_file")
    try:
        with Image.open(io.BytesIO(content)) as probe:  # reads the header only
            fmt = probe.format or ""
    except Image.DecompressionBombError as exc:
        raise UploadError("The image has too many pixels (a guard against decompression bombs).") from exc
    except UnidentifiedImageError as exc:
        raise UploadError(
            "The file is not an image. Upload a JPEG, PNG, WebP, GIF, BMP or TIFF photo.",
            status_code=415,
            code="unsupported_format",
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadError(f"The image is damaged and cannot be read ({exc}).") from exc
    if fmt not in ALLOWED_FORMATS:
        raise UploadError(
            f"{fmt or 'This'} images are not supported. Upload a JPEG, PNG, WebP, GIF, BMP or TIFF photo.",
            status_code=415,
            code="unsupported_format",
        )
    if _SMUGGLED.search(content):
        raise UploadError(
            "The file carries hidden markup or an archive besides the picture and was refused.",
            status_code=400,
            code="polyglot_file",
        )
