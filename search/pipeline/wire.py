"""The inference service's wire format: pipeline values <-> JSON, shared by the service and its client.

Lossless on purpose (PNG for images, raw float32 for vectors), so a garment processed through the service
is the garment the in-process pipeline would have produced. Nothing here imports torch.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from search.pipeline.base import Box, GarmentResult

OPS = ("process", "embed_boxes", "embed_text", "info")


def image_to_wire(image: Image.Image) -> str:
    """PNG, fastest compression: the bytes cross loopback or a LAN, and PNG keeps every pixel."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def image_from_wire(data: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    return image


def vectors_to_wire(vectors: np.ndarray) -> dict:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return {"shape": list(vectors.shape), "data": base64.b64encode(vectors.tobytes()).decode("ascii")}


def vectors_from_wire(data: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(data["data"]), dtype=np.float32).reshape(data["shape"]).copy()


def box_to_wire(box: Box) -> dict:
    return {"x0": box.x0, "y0": box.y0, "x1": box.x1, "y1": box.y1, "label": box.label, "score": box.score}


def box_from_wire(data: dict) -> Box:
    return Box(
        float(data["x0"]), float(data["y0"]), float(data["x1"]), float(data["y1"]), data["label"], data.get("score")
    )


def garments_to_wire(garments: Sequence[GarmentResult]) -> list[dict]:
    return [
        {
            "box": box_to_wire(garment.box),
            "mask": image_to_wire(garment.mask),
            "cutout": image_to_wire(garment.cutout),
            "embedding": vectors_to_wire(garment.embedding),
            "whole_image_fallback": garment.whole_image_fallback,
        }
        for garment in garments
    ]


def garments_from_wire(data: Sequence[dict]) -> list[GarmentResult]:
    return [
        GarmentResult(
            box=box_from_wire(item["box"]),
            mask=image_from_wire(item["mask"]),
            cutout=image_from_wire(item["cutout"]),
            embedding=vectors_from_wire(item["embedding"]),
            whole_image_fallback=bool(item["whole_image_fallback"]),
        )
        for item in data
    ]
