"""Admin thumbnails and garment overlays, rendered once and kept under ``MEDIA_ROOT/thumbs/``.

A photo row never changes its file and a garment row never changes at all (re-processing replaces the
rows), so a file name made of image id, photo hash and garment ids is a cache key that cannot go stale.
Rendering is whole-image Pillow work only: boxes drawn with ImageDraw, masks blended with
``Image.composite``. Files are written to a temporary name and renamed, so a half-written thumbnail is
never served, and two requests rendering the same one at once both end up with a complete file.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from PIL import Image, ImageDraw, ImageFont, ImageOps

from catalog.models import Garment, ProductImage

# Distinct, readable on photos; garment n gets colour n modulo the palette.
PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240)]
MASK_OPACITY = 0.45


@dataclass(frozen=True)
class Variant:
    size: int
    overlay: bool  # draw the garments' masks and boxes


# What the admin pages ask for; a fixed set, so a URL cannot make the server render arbitrary sizes.
IMAGE_VARIANTS = {
    "thumb": Variant(96, overlay=False),
    "overlay-small": Variant(120, overlay=True),
    "overlay": Variant(360, overlay=True),
    "overlay-large": Variant(900, overlay=True),
}
GARMENT_VARIANTS = {"overlay": 240, "cutout": 200}


class ThumbnailUnavailable(Exception):
    """The source file is missing or cannot be decoded: there is nothing to show."""


def garments_key(garment_ids: Sequence[int]) -> str:
    """Short stable key of a garment set; changes whenever re-processing replaced the garments."""
    if not garment_ids:
        return "none"
    joined = ",".join(str(pk) for pk in sorted(garment_ids))
    return hashlib.sha1(joined.encode(), usedforsecurity=False).hexdigest()[:12]


def image_dir(image_id: int) -> Path:
    return Path(settings.MEDIA_ROOT) / "thumbs" / f"{image_id % 1000:03d}" / str(image_id)


def _write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as temp:
            temp.write(content)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        # 4:4:4 chroma: thin coloured box lines would otherwise smear into the photo.
        image.convert("RGB").save(buffer, format="JPEG", quality=85, subsampling=0, optimize=True)
    else:
        image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _open_photo(image: ProductImage, size: int) -> tuple[Image.Image, tuple[int, int]]:
    """The photo shrunk to fit ``size`` and its upright full size, the frame garment boxes are stored in."""
    try:
        with image.file.open("rb") as handle, Image.open(handle) as photo:
            full_size = photo.size
            if photo.format == "JPEG":
                photo.draft("RGB", (size, size))  # libjpeg decodes at 1/2..1/8 scale: fast for big photos
            if photo.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # stored sideways: width and height swap
                full_size = (full_size[1], full_size[0])
            upright = ImageOps.exif_transpose(photo).convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:
        raise ThumbnailUnavailable(f"photo {image.pk} cannot be read: {exc}") from exc
    upright.thumbnail((size, size), Image.Resampling.LANCZOS)
    return upright, full_size


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, ValueError):  # Pillow built without FreeType: the small bitmap font
        return ImageFont.load_default()


def garment_colour(index: int) -> tuple[int, int, int]:
    """Colour of the ``index``-th garment of a photo (by id), the same in every rendering and table."""
    return PALETTE[index % len(PALETTE)]


def _draw_garments(
    photo: Image.Image, garments: Sequence[Garment], frame: tuple[int, int], first_colour: int = 0
) -> Image.Image:
    """Masks (whole-photo greyscale at any scale) blended in, then boxes (in ``frame`` pixels) drawn."""
    scale_x = photo.width / frame[0]
    scale_y = photo.height / frame[1]
    for index, garment in enumerate(garments, start=first_colour):
        colour = garment_colour(index)
        if garment.mask:
            try:
                with garment.mask.open("rb") as handle, Image.open(handle) as mask_file:
                    mask = mask_file.convert("L").resize(photo.size, Image.Resampling.BILINEAR)
            except (OSError, ValueError):
                mask = None
            if mask is not None:
                alpha = mask.point(lambda value: int(value * MASK_OPACITY))  # a 256-entry lookup table
                photo = Image.composite(Image.new("RGB", photo.size, colour), photo, alpha)
    draw = ImageDraw.Draw(photo)
    line = max(2, round(min(photo.size) / 160))
    font = _font(max(10, round(min(photo.size) / 22)))
    for index, garment in enumerate(garments, start=first_colour):
        colour = garment_colour(index)
        box = (
            garment.box_x0 * scale_x,
            garment.box_y0 * scale_y,
            max(garment.box_x0 * scale_x + 1, garment.box_x1 * scale_x - 1),
            max(garment.box_y0 * scale_y + 1, garment.box_y1 * scale_y - 1),
        )
        draw.rectangle(box, outline=colour, width=line)
        if photo.width >= 200:  # labels are unreadable on list-size thumbnails
            label = garment.label if garment.score is None else f"{garment.label} {garment.score:.2f}"
            left, top, right, bottom = draw.textbbox((box[0] + line, box[1] + line), label, font=font)
            draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=colour)
            draw.text((box[0] + line, box[1] + line), label, fill=(255, 255, 255), font=font)
    return photo


def image_thumbnail(image: ProductImage, variant: str, garments: Sequence[Garment] = ()) -> Path:
    """Path of the rendered ``variant`` of ``image`` (``garments`` drawn for overlay variants), rendering
    it only if it is not on disk yet."""
    spec = IMAGE_VARIANTS[variant]
    garments = sorted(garments, key=lambda g: g.pk) if spec.overlay else []
    key = garments_key([g.pk for g in garments]) if spec.overlay else "photo"
    directory = image_dir(image.pk)
    stem = f"{variant}-{image.sha256[:16]}-"  # hex after the dash: "overlay-" never matches "overlay-small-"
    path = directory / f"{stem}{key}.jpg"
    if path.exists():
        return path
    photo, full_size = _open_photo(image, spec.size)
    if garments:
        photo = _draw_garments(photo, garments, full_size)
    _write_atomically(path, _encode(photo, "JPEG"))
    if spec.overlay:
        _prune(directory, path, stem, {g.pk for g in garments})
    return path


def _prune(directory: Path, current: Path, stem: str, garment_ids: set[int]) -> None:
    """Remove renderings of garment sets that re-processing replaced: no page can ask for them again."""
    for old in directory.glob(f"{stem}*.jpg"):
        if old != current:
            old.unlink(missing_ok=True)
    for old in directory.glob("garment-*"):
        if int(old.name.split("-")[1]) not in garment_ids:
            old.unlink(missing_ok=True)


def _garment_ext(variant: str) -> str:
    return "png" if variant == "cutout" else "jpg"


def garment_thumbnail(garment: Garment, variant: str, colour_index: int = 0) -> Path:
    """``overlay``: the photo with only this garment's mask and box, in its colour of the photo's overlay
    (``colour_index``: its rank by id among the photo's garments); ``cutout``: its cutout (transparent)."""
    size = GARMENT_VARIANTS[variant]
    path = image_dir(garment.image_id) / f"garment-{garment.pk}-{variant}.{_garment_ext(variant)}"
    if path.exists():
        return path
    if variant == "cutout":
        if not garment.cutout:  # none is stored when it would be the whole photo: show the photo
            photo, _full_size = _open_photo(garment.image, size)
            rendered = photo.convert("RGBA")
            rendered.thumbnail((size, size), Image.Resampling.LANCZOS)
            _write_atomically(path, _encode(rendered, "PNG"))
            return path
        try:
            with garment.cutout.open("rb") as handle, Image.open(handle) as cutout:
                rendered = cutout.convert("RGBA")
        except (OSError, ValueError, SyntaxError) as exc:
            raise ThumbnailUnavailable(f"cutout of garment {garment.pk} cannot be read: {exc}") from exc
        rendered.thumbnail((size, size), Image.Resampling.LANCZOS)
        content = _encode(rendered, "PNG")
    else:
        photo, full_size = _open_photo(garment.image, size)
        rendered = _draw_garments(photo, [garment], full_size, first_colour=colour_index)
        content = _encode(rendered, "JPEG")
    _write_atomically(path, content)
    return path
