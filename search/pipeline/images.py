"""Decoding any photo a shop or a shopper may send into the one form the pipeline works on: RGB, upright,
no larger than ``max_side``.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from search.pipeline.base import ImageDecodeError

# Decompression-bomb guard: a 100 kB PNG can claim 50 000 x 50 000 pixels; refuse before decoding.
DEFAULT_MAX_PIXELS = 80_000_000
WHITE = (255, 255, 255)

ImageSource = bytes | bytearray | memoryview | str | os.PathLike | BinaryIO


def _open(source: ImageSource) -> Image.Image:
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) == 0:
            raise ImageDecodeError("The file is empty (0 bytes).")
        return Image.open(io.BytesIO(bytes(source)))
    if isinstance(source, str | os.PathLike):
        try:
            with open(source, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise ImageDecodeError(f"Cannot read the image file {os.fspath(source)!r}: {exc.strerror}.") from exc
        return _open(data)
    if hasattr(source, "read"):
        return _open(source.read())
    raise TypeError(f"load_image() takes bytes, a path or a binary file, not {type(source).__name__}")


def _composite_on_white(image: Image.Image) -> Image.Image:
    """Transparent pixels become white, the way a shop page shows a transparent product photo."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, WHITE + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _high_bit_depth_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit and float greyscale scaled into 0..255 (Pillow's own conversion clips, turning them white)."""
    values = np.asarray(image, dtype=np.float64)
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
        raise ImageDecodeError(f"Images in colour mode {mode} are not supported; use RGB, CMYK or greyscale.") from exc


def downscale(image: Image.Image, max_side: int) -> Image.Image:
    """Shrink so the longer side is at most ``max_side`` (never enlarges); models resize anyway, and huge
    photos only cost memory in the mask and cutout steps."""
    if max_side <= 0 or max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def load_image(source: ImageSource, *, max_side: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode bytes, a path or a binary file into an upright RGB image no larger than ``max_side``.

    The format is recognised from the content, never the file name. Raises ``ImageDecodeError`` with a
    message a shopper can read for empty, truncated, non-image and oversized (decompression bomb) input.
    """
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below replaces Pillow's warning-then-error pair.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = _open(source)
            width, height = image.size
            if width * height > max_pixels:
                raise ImageDecodeError(
                    f"The image is {width}x{height} pixels, more than the {max_pixels:,} pixels allowed "
                    "(a guard against decompression bombs). Send a smaller photo."
                )
            if max_side > 0 and image.format == "JPEG":
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale straight away: far less memory and time.
                image.draft("RGB", (max_side, max_side))
            image.load()
    except ImageDecodeError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("The file is not an image (its content is not a known image format).") from exc
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError("The image has too many pixels (a guard against decompression bombs).") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"The image is damaged or truncated and cannot be decoded ({exc}).") from exc

    # A broken EXIF block should not lose an otherwise good photo: keep it as stored.
    with contextlib.suppress(OSError, ValueError, SyntaxError):
        image = ImageOps.exif_transpose(image)
    return downscale(to_rgb(image), max_side)
