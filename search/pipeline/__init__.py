"""The vision pipeline: photo -> garments (box, mask, cutout) -> vectors. The only torch/transformers code.

Import the light types from here; the model-backed stages load lazily through ``registry.get_pipeline()``.
"""

from search.pipeline.base import (
    Box,
    Cutout,
    Detector,
    Embedder,
    GarmentResult,
    ImageDecodeError,
    ModelLoadError,
    PipelineError,
    Segmenter,
    UnsupportedOperation,
)
from search.pipeline.images import load_image
from search.pipeline.registry import describe, get_pipeline, reset_pipeline

__all__ = [
    "Box",
    "Cutout",
    "Detector",
    "Embedder",
    "GarmentResult",
    "ImageDecodeError",
    "ModelLoadError",
    "PipelineError",
    "Segmenter",
    "UnsupportedOperation",
    "describe",
    "get_pipeline",
    "load_image",
    "reset_pipeline",
]
