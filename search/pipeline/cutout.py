"""Cutting a garment out of its photo with its mask: whole-array Pillow operations, no per-pixel loops.

Why the embedder sees the garment on WHITE (measured, ``python bench/pipeline.py --measure-background``):
EfficientNet-Lite0 on the 210 CC0 photos (17 categories) whose plain background gives a clean mask,
category precision leave-one-out, and "moved" = the same garment pasted on another photo's scene as the
query against the untouched catalog (what a shopper's photo is):

    embedder input          P@1    P@5    P@10 | moved: self@1  P@5
    whole photo             0.505  0.432  0.353 |        0.790  0.297
    cutout, keep background 0.500  0.391  0.330 |        0.819  0.292
    cutout, white           0.448  0.365  0.296 |        1.000  0.365
    cutout, gray (ImageNet) 0.471  0.355  0.300 |        1.000  0.355
    white, padded square    0.433  0.362  0.300 |        1.000  0.362

Keeping the background scores higher only while catalog photos share backgrounds (likely: photos of one
category were often shot in the same room); once the scene changes it drops to 0.29 and the garment's own
photo is missed 1 time in 5. A removed background is unaffected (self@1 is 1.0 by construction here: the
same mask on both sides; real masks differ a little). White and gray tie; white matches the white
backgrounds of shop product shots. Padding to a square bought nothing.

Redone with real U2-Net-p masks on all 340 photos (``python bench/offline_quality.py``): white .365, gray
.330, keep .321 (whole photo .359). Padding (.384 at 10%) or a square (``square=True``, .399) keep a long
garment's ends in the embedder's centre crop and score higher there. With the garment mean removed from
the vectors (bench/garment_mean.py) the square wins clearly: P@10 .366 -> .390 on the 238 CC0 photos the
mean was not fitted on (tight .320), so the profile's cutter pads to a square (LOOKALIKE_CUTOUT_SQUARE).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from search.pipeline.base import Box, Cutout, Cutter, PipelineError
from search.pipeline.segmenters import box_mask

if TYPE_CHECKING:
    from search.pipeline.config import PipelineConfig

BACKGROUNDS = {"white": (255, 255, 255), "gray": (124, 116, 104)}  # gray = ImageNet mean colour


def padded_bounds(
    bounds: tuple[int, int, int, int], size: tuple[int, int], padding: float
) -> tuple[int, int, int, int]:
    """``bounds`` grown by ``padding`` x its longer side (at least 1 px) on each side, within the image."""
    x0, y0, x1, y1 = bounds
    pad = max(1, round(max(x1 - x0, y1 - y0) * padding)) if padding > 0 else 0
    return (max(0, x0 - pad), max(0, y0 - pad), min(size[0], x1 + pad), min(size[1], y1 + pad))


class MaskCutter(Cutter):
    """RGBA cutout (mask as alpha, trimmed to the mask's bounding box plus ``padding``) and the RGB image
    the embedder sees: ``background="white"`` fills what the mask removed with white, ``"gray"`` with the
    ImageNet mean colour, ``"keep"`` keeps the photo's own pixels (what dropping the alpha would give)."""

    def __init__(self, *, background: str = "white", padding: float = 0.02, square: bool = False):
        if background not in {*BACKGROUNDS, "keep"}:
            raise PipelineError(f"Unknown cutout background {background!r}; use white, gray or keep.")
        self.background = background
        self.padding = padding
        self.square = square

    @classmethod
    def from_config(cls, config: PipelineConfig) -> MaskCutter:
        return cls(square=config.cutout_square)

    def cut(self, image: Image.Image, box: Box, mask: Image.Image) -> Cutout:
        if mask.size != image.size:
            raise PipelineError(f"mask size {mask.size} differs from image size {image.size}")
        mask = mask if mask.mode == "L" else mask.convert("L")
        bounds = mask.getbbox()
        from_mask = bounds is not None
        if not from_mask:  # the segmenter found nothing inside the box: keep the box itself
            mask = box_mask(image.size, box)
            bounds = mask.getbbox()
            if bounds is None:  # a degenerate box: keep the whole image rather than fail the photo
                mask = Image.new("L", image.size, 255)
                bounds = (0, 0, image.width, image.height)
        crop_box = padded_bounds(bounds, image.size, self.padding)
        photo = image.crop(crop_box).convert("RGB")
        alpha = mask.crop(crop_box)
        rgba = photo.convert("RGBA")
        rgba.putalpha(alpha)
        if self.background == "keep":
            embed_input = photo
        else:
            embed_input = Image.new("RGB", photo.size, BACKGROUNDS[self.background])
            embed_input.paste(photo, (0, 0), alpha)
            if self.square and mask.getextrema()[0] == 0:  # only where the mask removed something
                embed_input = square_on(embed_input, BACKGROUNDS[self.background])
        return Cutout(rgba=rgba, embed_input=embed_input, from_mask=from_mask)


def square_on(image: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """``image`` centred on a square of ``colour``: a centre-cropping embedder then sees all of a long garment."""
    side = max(image.size)
    if image.width == image.height:
        return image
    canvas = Image.new("RGB", (side, side), colour)
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas


def clear_transparent(rgba: Image.Image) -> Image.Image:
    """The same RGBA image with fully transparent pixels set to transparent black.

    Nobody sees the colour under alpha 0, but PNG stores it: uniform zeros there make stored cutouts of
    real masks about 1.45x smaller (measured on the demo photos), and nothing visible changes.
    """
    if rgba.mode != "RGBA":
        return rgba
    pixels = np.array(rgba)
    pixels[pixels[..., 3] == 0] = 0
    return Image.fromarray(pixels, "RGBA")
