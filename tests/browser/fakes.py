"""Pipeline stages for browser tests: a detector that always finds two garments, so box switching is testable
with the offline profile (whose whole-image detector finds exactly one)."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from search.pipeline.base import Box, Detector


class TwoBoxDetector(Detector):
    """The left half is a "top", the right half "pants"; the left one is a little larger, so it is the default."""

    name = "two-box-test"

    def detect(self, images: Sequence[Image.Image]) -> list[list[Box]]:
        boxes = []
        for image in images:
            width, height = image.width, image.height
            split = width * 0.52
            boxes.append(
                [
                    Box(0.0, 0.0, split, float(height), label="top", score=0.9),
                    Box(split, 0.0, float(width), float(height), label="pants", score=0.8),
                ]
            )
        return boxes


class SlowTwoBoxDetector(TwoBoxDetector):
    """TwoBoxDetector that takes 0.8 s more, like a cold model: the page's "still searching" feedback (shown
    after the page's ``data-slow-ms``, 300 ms in the test) and the busy state of a re-search can be seen."""

    name = "slow-two-box-test"

    def detect(self, images: Sequence[Image.Image]) -> list[list[Box]]:
        import time

        time.sleep(0.8)
        return super().detect(images)
