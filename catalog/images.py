"""Checking that uploaded or downloaded bytes really are a photo, before anything is stored."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"}
EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}
MAX_PIXELS = 80_000_000


class InvalidImage(ValueError):
    """The bytes are not an image we accept; the message says why in plain words."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def inspect_image(content: bytes, *, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Identify the format by content (never by name), check size limits and that the pixels decode."""
    if not content:
        raise InvalidImage("The file is empty (0 bytes).")
    try:
        with Image.open(io.BytesIO(content)) as probe:
            fmt = probe.format or ""
            width, height = probe.size
            if fmt not in ALLOWED_FORMATS:
                raise InvalidImage(
                    f"Unsupported image format {fmt or 'unknown'}; use JPEG, PNG, WebP, GIF, BMP or TIFF."
                )
            if width * height > max_pixels:
                raise InvalidImage(
                    f"The image is {width}x{height} pixels, more than the {max_pixels:,} pixels allowed "
                    "(a decompression bomb guard)."
                )
            # Sizes are as people see the photo: EXIF orientations 5-8 turn it a quarter.
            if probe.getexif().get(0x0112) in (5, 6, 7, 8):
                width, height = height, width
            probe.verify()
        with Image.open(io.BytesIO(content)) as full:
            full.load()  # verify() does not decode pixel data: a truncated JPEG only fails here.
    except InvalidImage:
        raise
    except UnidentifiedImageError as exc:
        raise InvalidImage("The file is not an image (its content is not a known image format).") from exc
    except Image.DecompressionBombError as exc:
        raise InvalidImage("The image has too many pixels (a decompression bomb guard).") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"The image is damaged or truncated ({exc}).") from exc
    return ImageInfo(format=fmt, width=width, height=height)
