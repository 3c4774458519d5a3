"""The one place that checks and decodes photos, for every path that stores or searches one.

API uploads, imports, crawled downloads and the pipeline all come here, so there is one exception
(``PhotoError``), one list of formats and one pixel cap. Decoding is bounded: the size is checked from the
header before any pixel is read, the decoded bytes (mode x pixels) are capped, a photo is shrunk in its own
mode before any colour conversion, and only ``PHOTO_DECODE_CONCURRENCY`` decodes run at once per process.
"""

from __future__ import annotations

import io
import os
import re
import threading
import warnings
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from django.conf import settings
from PIL import Image, UnidentifiedImageError

from core.errors import DomainError

# Format as Pillow names it -> the extension a stored copy gets.
FORMATS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}
FORMAT_NAMES = "JPEG, PNG, WebP, GIF, BMP or TIFF"
WHITE = (255, 255, 255)
# Markup or archives hidden inside an "image" (polyglot files): never something a camera writes.
_SMUGGLED = re.compile(rb"<\s*(script|html|svg|\?php|iframe|object|embed)\b|PK\x03\x04|%PDF-", re.IGNORECASE)
# EXIF orientation -> the transpose that makes the photo upright (as ImageOps.exif_transpose does).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_CHECK_DRAFT_SIDE = 256

PhotoSource = bytes | bytearray | memoryview | str | os.PathLike | BinaryIO


class PhotoError(DomainError):
    """Bytes that are not a photo we accept; the message says why in words a shopper can read."""

    code = "invalid_image"
    status = 400


@dataclass(frozen=True)
class CheckedPhoto:
    """Bytes that passed every check and decoded: safe to store without decoding them again."""

    content: bytes
    format: str
    width: int  # as people see the photo (EXIF orientation applied)
    height: int

    @property
    def extension(self) -> str:
        return FORMATS[self.format]


_decode_slots: threading.BoundedSemaphore | None = None
_decode_slots_lock = threading.Lock()


def _slots() -> threading.BoundedSemaphore:
    """How many photos this process decodes at once: each may hold up to PHOTO_MAX_DECODE_BYTES."""
    global _decode_slots
    with _decode_slots_lock:
        if _decode_slots is None:
            _decode_slots = threading.BoundedSemaphore(max(1, settings.PHOTO_DECODE_CONCURRENCY))
        return _decode_slots


def decoded_bytes(mode: str, width: int, height: int) -> int:
    """Memory Pillow needs for the decoded pixels: multi-band modes take 4 bytes a pixel, 16-bit 2."""
    if mode.startswith("I;16"):
        per_pixel = 2
    elif mode in {"I", "F"} or Image.getmodebands(mode) > 1:
        per_pixel = 4
    else:
        per_pixel = 1
    return width * height * per_pixel


def _read(source: PhotoSource) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if isinstance(source, str | os.PathLike):
        try:
            with open(source, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise PhotoError(f"Cannot read the image file {os.fspath(source)!r}: {exc.strerror}.") from exc
    if hasattr(source, "read"):
        return source.read()
    raise TypeError(f"expected bytes, a path or a binary file, not {type(source).__name__}")


def _not_an_image() -> PhotoError:
    return PhotoError(
        f"The file is not an image (its content is not a known image format). Use a {FORMAT_NAMES} photo.",
        code="unsupported_format",
        status=415,
    )


def _open_checked(content: bytes, max_pixels: int | None) -> Image.Image:
    """Open from the header only: format, pixel cap and memory cap are checked before any decoding."""
    if not content:
        raise PhotoError("The file is empty (0 bytes).", code="empty_file")
    max_pixels = settings.PHOTO_MAX_PIXELS if max_pixels is None else max_pixels
    try:
        with warnings.catch_warnings():
            # Our own pixel cap below replaces Pillow's warning; its hard limit still raises.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(content))
    except UnidentifiedImageError as exc:
        raise _not_an_image() from exc
    except Image.DecompressionBombError as exc:
        raise PhotoError("The image has too many pixels (a guard against decompression bombs).") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise PhotoError(f"The image is damaged or truncated and cannot be decoded ({exc}).") from exc
    if image.format not in FORMATS:
        raise PhotoError(
            f"{image.format or 'This'} images are not supported. Use a {FORMAT_NAMES} photo.",
            code="unsupported_format",
            status=415,
        )
    width, height = image.size
    if width * height > max_pixels:
        raise PhotoError(
            f"The image is {width}x{height} pixels, more than the {max_pixels:,} pixels allowed "
            "(a guard against decompression bombs). Send a smaller photo."
        )
    return image


def _check_memory(image: Image.Image) -> None:
    cost = decoded_bytes(image.mode, *image.size)
    if cost > settings.PHOTO_MAX_DECODE_BYTES:
        raise PhotoError(
            f"The image is {image.width}x{image.height} pixels in mode {image.mode}: decoding it would take "
            f"{cost / 2**20:,.0f} MB, more than the {settings.PHOTO_MAX_DECODE_BYTES / 2**20:,.0f} MB allowed. "
            "Send a smaller photo."
        )


def check_smuggled(content: bytes) -> None:
    if _SMUGGLED.search(content):
        raise PhotoError(
            "The file carries hidden markup or an archive besides the picture and was refused.",
            code="polyglot_file",
        )


def megabytes(size: int) -> str:
    """A byte count in the words every page, message and README use for upload limits: binary megabytes
    (MAX_UPLOAD_BYTES = 15 * 2**20 is "15 MB"), one decimal only when not whole, KB or bytes below 1 MB."""
    if size >= 2**20:
        value = size / 2**20
        return f"{value:.0f} MB" if value == round(value) else f"{value:.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


def read_upload(uploaded, *, max_bytes: int | None = None) -> bytes:
    """Bytes of an uploaded file after the cheap checks (size, format by content, no smuggled payload);
    the pixels are decoded once, by whoever uses the photo next."""
    if uploaded is None:
        raise PhotoError("Choose a photo to upload.", code="missing_image")
    limit = max_bytes or settings.MAX_UPLOAD_BYTES
    declared = getattr(uploaded, "size", None)
    if declared is not None and declared > limit:
        raise PhotoError(
            f"The file is {megabytes(declared)}; photos up to {megabytes(limit)} can be uploaded.",
            code="too_large",
            status=413,
        )
    content = uploaded.read(limit + 1)
    if len(content) > limit:
        raise PhotoError(
            f"The file is larger than {megabytes(limit)}; photos up to {megabytes(limit)} can be uploaded.",
            code="too_large",
            status=413,
        )
    _open_checked(content, None)
    check_smuggled(content)
    return content


def _target_size(size: tuple[int, int], max_side: int) -> tuple[int, int] | None:
    if max_side <= 0 or max(size) <= max_side:
        return None
    scale = max_side / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def downscale(image: Image.Image, max_side: int) -> Image.Image:
    """Shrink so the longer side is at most ``max_side`` (never enlarges), in the image's own mode.

    Shrinking before any colour conversion keeps memory at the decoded size: a 16-bit or palette photo is
    never copied to RGB or floats at full size. Palette and 1-bit images can only be resized by nearest
    neighbour, so they go to twice the size that way, then to RGB, then are filtered properly.
    """
    target = _target_size(image.size, max_side)
    if target is None:
        return image
    if image.mode in {"P", "PA", "1"}:
        halfway = _target_size(image.size, 2 * max_side)
        if halfway is not None:
            image = image.resize(halfway, Image.Resampling.NEAREST)
        return downscale(to_rgb(image), max_side)
    try:
        return image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    except ValueError:  # a mode Pillow cannot filter: convert what is left, then shrink
        return downscale(to_rgb(image), max_side)


def _composite_on_white(image: Image.Image) -> Image.Image:
    """Transparent pixels become white, the way a shop page shows a transparent product photo."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, WHITE + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _high_bit_depth_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit and float greyscale scaled into 0..255 (Pillow's own conversion clips, turning them white)."""
    values = np.asarray(image, dtype=np.float32)
    if image.mode.startswith("I;16"):
        scaled = values / 257.0
    elif image.mode == "F":
        finite = values[np.isfinite(values)]
        peak = float(finite.max()) if finite.size else 0.0
        scaled = np.nan_to_num(values * 255.0 if peak <= 1.0 else values, nan=0.0, posinf=255.0, neginf=0.0)
    else:  # "I": 32-bit ints; anything above 255 is a 16-bit image stored wide (PNG 16-bit greyscale)
        scaled = values / 257.0 if values.max(initial=0) > 255 else values
    grey = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))
    return grey.convert("RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB: alpha composited on white, CMYK/YCbCr/palette converted, deep modes scaled."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in {"RGBA", "LA", "RGBa", "La", "PA"} or (mode == "P" and "transparency" in image.info):
        return _composite_on_white(image)
    if mode == "L" and "transparency" in image.info:
        return _composite_on_white(image)
    if mode in {"I", "F"} or mode.startswith("I;16"):
        return _high_bit_depth_to_rgb(image)
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise PhotoError(f"Images in colour mode {mode} are not supported; use RGB, CMYK or greyscale.") from exc


def _orientation(image: Image.Image) -> int | None:
    # A broken EXIF block should not lose an otherwise good photo: it is then kept as stored.
    try:
        return image.getexif().get(0x0112)
    except (OSError, ValueError, SyntaxError, TypeError):
        return None


@dataclass(frozen=True)
class _Decoded:
    rgb: Image.Image  # the image as decoded when ``convert`` is off
    format: str
    size: tuple[int, int]  # as stored, before any draft or shrink
    orientation: int | None


def _decode(content: bytes, *, max_side: int, max_pixels: int | None, convert: bool = True) -> _Decoded:
    """An upright RGB image no larger than ``max_side``, decoded under the bounds of this module
    (``convert=False``: only prove that every pixel decodes)."""
    image = _open_checked(content, max_pixels)  # reads from memory: nothing to close
    stored_size, fmt = image.size, image.format
    try:
        with warnings.catch_warnings(), _slots():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if max_side > 0 and fmt in {"JPEG", "MPO"}:
                # libjpeg decodes at 1/2, 1/4 or 1/8 scale straight away: far less memory and time.
                image.draft("RGB", (max_side, max_side))
            _check_memory(image)
            image.load()
            orientation = _orientation(image)
            if not convert:
                return _Decoded(rgb=image, format=fmt, size=stored_size, orientation=orientation)
            shrunk = downscale(image, max_side)
            if orientation in _UPRIGHT:
                shrunk = shrunk.transpose(_UPRIGHT[orientation])
            rgb = to_rgb(shrunk)
    except PhotoError:
        raise
    except Image.DecompressionBombError as exc:
        raise PhotoError("The image has too many pixels (a guard against decompression bombs).") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise PhotoError(f"The image is damaged or truncated and cannot be decoded ({exc}).") from exc
    return _Decoded(rgb=rgb, format=fmt, size=stored_size, orientation=orientation)


def load_image(source: PhotoSource, *, max_side: int, max_pixels: int | None = None) -> Image.Image:
    """Decode bytes, a path or a binary file into an upright RGB image no larger than ``max_side``.

    The format is recognised from the content, never the file name. Raises ``PhotoError`` with a message a
    shopper can read for empty, truncated, non-image and oversized (decompression bomb) input.
    """
    return _decode(_read(source), max_side=max_side, max_pixels=max_pixels).rgb


def check_photo(content: bytes, *, max_pixels: int | None = None) -> CheckedPhoto:
    """Everything a photo must pass before it is stored: format by content, caps, no smuggled payload, and
    a full decode (a truncated file fails here, not later in the worker)."""
    # A JPEG decoded at 1/8 scale still reads its whole stream, so truncation is found at a fraction of the cost.
    decoded = _decode(content, max_side=_CHECK_DRAFT_SIDE, max_pixels=max_pixels, convert=False)
    check_smuggled(content)
    width, height = decoded.size
    if decoded.orientation in (5, 6, 7, 8):  # sizes as people see the photo: these turn it a quarter
        width, height = height, width
    return CheckedPhoto(content=content, format=decoded.format, width=width, height=height)
