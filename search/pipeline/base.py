"""Value types passed between pipeline stages, the stage interfaces, and the pipeline's exceptions.

Nothing here imports torch or transformers, so callers (tasks, views, the catalog) can use these types
without paying for the model libraries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from core.errors import DomainError

# --- exceptions -------------------------------------------------------------------------------------


class PipelineError(DomainError):
    """Base of every error the pipeline raises on purpose; the message is meant for a person."""

    code = "pipeline_unavailable"
    status = 503


class ModelLoadError(PipelineError):
    """A model could not be loaded; the message names the setting to change and how to fix it."""


class UnsupportedOperation(PipelineError):
    """The configured stage cannot do this (e.g. text search with an image-only embedder)."""


# --- value types ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates of the image it was found in (x1, y1 exclusive)."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str
    score: float | None = None

    @property
    def width(self) -> float:
        return max(0.0, self.x1 - self.x0)

    @property
    def height(self) -> float:
        return max(0.0, self.y1 - self.y0)

    @property
    def area(self) -> float:
        return self.width * self.height

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1)

    def clamped(self, width: int, height: int) -> Box:
        """The same box cut to the image's bounds (detectors may return coordinates just outside)."""
        return Box(
            x0=min(max(self.x0, 0.0), width),
            y0=min(max(self.y0, 0.0), height),
            x1=min(max(self.x1, 0.0), width),
            y1=min(max(self.y1, 0.0), height),
            label=self.label,
            score=self.score,
        )

    def iou(self, other: Box) -> float:
        inter_w = max(0.0, min(self.x1, other.x1) - max(self.x0, other.x0))
        inter_h = max(0.0, min(self.y1, other.y1) - max(self.y0, other.y0))
        inter = inter_w * inter_h
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def pixel_bounds(self) -> tuple[int, int, int, int]:
        """Integer bounds covering every pixel the box touches, for slicing and cropping."""
        return (int(np.floor(self.x0)), int(np.floor(self.y0)), int(np.ceil(self.x1)), int(np.ceil(self.y1)))

    @classmethod
    def whole(cls, image: Image.Image, label: str = "garment") -> Box:
        return cls(0.0, 0.0, float(image.width), float(image.height), label=label)


WHOLE_IMAGE_LABEL = "garment"


@dataclass(frozen=True)
class Cutout:
    """A garment cut out of its photo.

    ``rgba`` is what people see (background transparent, trimmed to the garment); ``embed_input`` is the
    RGB image the embedder sees (see ``MaskCutter`` for why its background is what it is).
    ``from_mask`` is False when the mask was empty and the box crop was used instead.
    """

    rgba: Image.Image
    embed_input: Image.Image
    from_mask: bool = True


@dataclass
class GarmentResult:
    """One garment found in one image.

    ``whole_image_fallback`` is True when the detector found no garment and the whole image was searched
    instead, so a caller can say so ("no garment found, searched the whole image").
    """

    box: Box
    mask: Image.Image  # mode "L", the processed image's size, 0 or 255
    cutout: Image.Image  # RGBA, trimmed to the garment
    embedding: np.ndarray  # float32, shape (dim,), L2 norm 1
    whole_image_fallback: bool = False


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length as float32; an all-zero row stays zero rather than becoming NaN."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


# --- stage interfaces -------------------------------------------------------------------------------


class Detector(ABC):
    """Finds garments: one list of boxes (labels are our categories) per image; [] when none."""

    name: str = "detector"

    @abstractmethod
    def detect(self, images: Sequence[Image.Image]) -> list[list[Box]]: ...


class Segmenter(ABC):
    """One mask (mode "L", image size, 0/255) per box, encoding each image once for all its boxes."""

    name: str = "segmenter"

    @abstractmethod
    def segment(
        self, images: Sequence[Image.Image], boxes_per_image: Sequence[Sequence[Box]]
    ) -> list[list[Image.Image]]: ...


class Cutter(ABC):
    """Pure image code: turns (image, box, mask) into a ``Cutout``."""

    @abstractmethod
    def cut(self, image: Image.Image, box: Box, mask: Image.Image) -> Cutout: ...


class Embedder(ABC):
    """Turns images (and text, where the model has a text tower) into L2-normalised float32 vectors.

    ``model_id`` names the weights, not where they live: the database keeps vectors of different
    ``model_id`` apart, so two copies of the same weights must report the same id.
    """

    model_id: str
    dim: int
    supports_text: bool = False

    @abstractmethod
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise UnsupportedOperation(
            f"The embedder {self.model_id!r} has no text tower, so text search is not available. "
            "Use the full profile (FashionCLIP: LOOKALIKE_PROFILE=full) for text queries."
        )
