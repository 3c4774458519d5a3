"""Bytes stored per photo for garment cutouts: RGBA PNG (before) vs lossy WebP q85 with alpha (after).

Usage: python bench/cutout_bytes.py [--limit 40]

Runs the configured pipeline (``LOOKALIKE_PROFILE``; offline by default here) on the demo catalog's
photos and encodes every garment's cutout both ways, as search/tasks.py stores it. Whole-photo cutouts
(box over the photo, mask keeping all of it) are now not stored at all; they are counted separately.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=40)
    args = parser.parse_args()
    import django

    django.setup()
    from core.photos import load_image
    from search import tasks
    from search.pipeline.cutout import clear_transparent
    from search.pipeline.registry import get_pipeline

    pipeline = get_pipeline()
    photos = sorted((ROOT / "catalog" / "demo" / "images").glob("*.jpg"))[: args.limit]
    photo_bytes = png = webp = after = whole = garments = 0
    for path in photos:
        content = path.read_bytes()
        photo_bytes += len(content)
        image = load_image(content, max_side=pipeline.max_side)
        for result in pipeline.process([image])[0]:
            garments += 1
            cutout = clear_transparent(result.cutout)
            png_size, webp_size = len(tasks._png(cutout)), len(tasks._webp(cutout))
            png += png_size
            webp += webp_size
            if tasks._is_whole_photo(result, image):
                whole += 1
            else:
                after += webp_size
    print(f"pipeline: {pipeline.describe()}")
    print(f"{len(photos)} demo photos, {photo_bytes / len(photos) / 1024:.1f} KiB per photo, {garments} garments")
    print(f"{'cutouts as':>34} {'KiB/photo':>10} {'x photo':>8}")
    for label, size in (
        ("RGBA PNG (before)", png),
        ("WebP q85, all stored", webp),
        ("WebP q85, whole-photo skipped", after),
    ):
        print(f"{label:>34} {size / len(photos) / 1024:>10.1f} {size / photo_bytes:>8.2f}")
    print(f"whole-photo cutouts not stored: {whole} of {garments}")


if __name__ == "__main__":
    main()
