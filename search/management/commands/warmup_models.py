"""manage.py warmup_models: load the configured pipeline and run one image through it, with timings."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand
from PIL import Image, ImageDraw

from search.pipeline.registry import get_pipeline

T_SHIRT_OUTLINE = [(220, 90), (420, 90), (520, 170), (470, 220), (430, 190), (430, 420), (210, 420), (210, 190)]
T_SHIRT_OUTLINE += [(170, 220), (120, 170)]


def sample_photo() -> Image.Image:
    """A plain "product shot": a red T-shirt shape on a light background."""
    image = Image.new("RGB", (640, 480), (235, 235, 230))
    ImageDraw.Draw(image).polygon(T_SHIRT_OUTLINE, fill=(190, 30, 40))
    return image


class Command(BaseCommand):
    help = "Load the configured models (so the first request is not slow) and report how long each step took."

    def handle(self, *args, **options):
        start = time.perf_counter()
        pipeline = get_pipeline()
        loaded = time.perf_counter() - start
        self.stdout.write(f"Pipeline: {pipeline.describe()}")
        self.stdout.write(f"  load models       {loaded:7.2f} s")
        photo = sample_photo()
        for attempt in ("first image", "second image"):
            start = time.perf_counter()
            garments = pipeline.process_image(photo)
            self.stdout.write(f"  {attempt:17s} {time.perf_counter() - start:7.2f} s ({len(garments)} garment(s))")
        if pipeline.supports_text:
            start = time.perf_counter()
            pipeline.embed_text(["a red t-shirt"])
            self.stdout.write(f"  text query        {time.perf_counter() - start:7.2f} s")
        self.stdout.write(
            self.style.SUCCESS(f"Ready: {pipeline.embedder_id} vectors of {pipeline.embedding_dim} dimensions.")
        )
