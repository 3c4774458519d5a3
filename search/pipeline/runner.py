"""The one pipeline both indexing and querying run: detect -> segment -> cut out -> embed."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from core.photos import downscale, to_rgb
from search.pipeline.base import (
    WHOLE_IMAGE_LABEL,
    Box,
    Cutter,
    Detector,
    Embedder,
    GarmentResult,
    PipelineError,
    Segmenter,
)

TEXT_CACHE_SIZE = 1024  # texts kept: 1024 x 512 float32 = 2 MB


class TextVectorCache:
    """Least-recently-used text -> vector memory: shoppers repeat queries ("black dress", a page re-searching on
    a filter change), and one text-tower pass costs tens of milliseconds on a CPU. Thread-safe; vectors are
    stored read-only, so no caller can change what the next one gets."""

    def __init__(self, size: int = TEXT_CACHE_SIZE):
        self.size = max(0, int(size))
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()

    def vectors(self, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """(n, dim) vectors of ``texts``; only the texts not remembered go to ``encode`` (once each)."""
        texts = list(texts)
        if not texts:
            return np.asarray(encode([]), dtype=np.float32)
        with self._lock:
            known = {text: self._vectors[text] for text in texts if text in self._vectors}
            for text in known:
                self._vectors.move_to_end(text)
        missing = [text for text in dict.fromkeys(texts) if text not in known]
        if missing:
            fresh = np.asarray(encode(missing), dtype=np.float32)
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    vector = vector.copy()
                    vector.setflags(write=False)
                    known[text] = self._vectors[text] = vector
                    self._vectors.move_to_end(text)
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        return np.stack([known[text] for text in texts])


class Pipeline:
    """Stages wired together, batched across images.

    Calls are serialised by a lock: fast tokenizers are not safe to share between threads, and two
    concurrent forward passes on the same cores are slower than one after the other.
    """

    def __init__(
        self,
        detector: Detector,
        segmenter: Segmenter,
        cutter: Cutter,
        embedder: Embedder,
        max_side: int,
        *,
        profile: str = "custom",
        reason: str = "",
    ):
        self.detector = detector
        self.segmenter = segmenter
        self.cutter = cutter
        self.embedder = embedder
        self.max_side = max_side
        self._profile = profile
        self.reason = reason
        self._lock = threading.Lock()
        self.text_cache = TextVectorCache()

    @property
    def profile(self) -> str:
        return self._profile

    @property
    def embedder_id(self) -> str:
        return self.embedder.model_id

    @property
    def embedding_dim(self) -> int:
        return self.embedder.dim

    @property
    def supports_text(self) -> bool:
        return self.embedder.supports_text

    def describe(self) -> str:
        """One line for logs and commands, e.g. "profile offline: whole-image detector, box segmenter,
        efficientnet-lite0 (no model hub reachable)"."""
        stages = f"{self.detector.name}, {self.segmenter.name}, {getattr(self.embedder, 'name', self.embedder_id)}"
        return f"profile {self.profile}: {stages}" + (f" ({self.reason})" if self.reason else "")

    def prepare(self, image: Image.Image) -> Image.Image:
        """RGB and no larger than ``max_side``: results' boxes and masks refer to this image."""
        return downscale(to_rgb(image), self.max_side)

    def process(self, images: Sequence[Image.Image]) -> list[list[GarmentResult]]:
        """Garments of each image. An image where the detector finds none is searched whole, flagged by
        ``GarmentResult.whole_image_fallback``, so every image yields at least one result."""
        prepared = [self.prepare(image) for image in images]
        if not prepared:
            return []
        with self._lock:
            detected = self.detector.detect(prepared)
            if len(detected) != len(prepared):
                raise PipelineError(f"detector returned {len(detected)} box lists for {len(prepared)} images")
            fallback = [not boxes for boxes in detected]
            boxes_per_image = [
                boxes or [Box.whole(image, WHOLE_IMAGE_LABEL)] for image, boxes in zip(prepared, detected, strict=True)
            ]
            return self._segment_cut_embed(prepared, boxes_per_image, fallback)

    def process_boxes(self, image: Image.Image, boxes: Sequence[Box]) -> list[GarmentResult]:
        """Garments in regions the caller chose (e.g. a box drawn by the shopper): no detection, the same
        segmentation, cutout and embedding as ``process``. Boxes are in ``prepare(image)`` coordinates."""
        prepared = self.prepare(image)
        boxes = [box.clamped(prepared.width, prepared.height) for box in boxes]
        if not boxes:
            return []
        with self._lock:
            return self._segment_cut_embed([prepared], [boxes], [False])[0]

    def _segment_cut_embed(
        self, prepared: list[Image.Image], boxes_per_image: list[list[Box]], fallback: list[bool]
    ) -> list[list[GarmentResult]]:
        """Masks per image (one encoder pass each), cutouts, then ONE batched embedding call for all."""
        masks_per_image = self.segmenter.segment(prepared, boxes_per_image)
        cut = [
            [self.cutter.cut(image, box, mask) for box, mask in zip(boxes, masks, strict=True)]
            for image, boxes, masks in zip(prepared, boxes_per_image, masks_per_image, strict=True)
        ]
        vectors = self.embedder.embed_images([cutout.embed_input for cutouts in cut for cutout in cutouts])
        results: list[list[GarmentResult]] = []
        position = 0
        for boxes, masks, cutouts, is_fallback in zip(boxes_per_image, masks_per_image, cut, fallback, strict=True):
            garments = []
            for box, mask, cutout in zip(boxes, masks, cutouts, strict=True):
                garments.append(
                    GarmentResult(
                        box=box,
                        mask=mask,
                        cutout=cutout.rgba,
                        embedding=vectors[position],
                        whole_image_fallback=is_fallback,
                    )
                )
                position += 1
            results.append(garments)
        return results

    def process_image(self, image: Image.Image) -> list[GarmentResult]:
        return self.process([image])[0]

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) text vectors in the image space, remembered (``text_cache``); ``UnsupportedOperation`` without
        a text tower, said at once rather than after waiting for the lock behind an image being processed."""
        if not self.supports_text:
            return self.embedder.embed_texts(list(texts))  # raises the embedder's own UnsupportedOperation

        def encode(missing: list[str]) -> np.ndarray:
            with self._lock:
                return self.embedder.embed_texts(missing)

        return self.text_cache.vectors(texts, encode)
