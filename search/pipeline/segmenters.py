"""Garment masks from boxes: the box itself (no model) or SAM 2 prompted with the box.

SAM 2's own processor needs torchvision, which cannot be installed beside this torch, so its preprocessing
is done here (``sam2_preprocess``); it matched Sam2Processor at mask IoU 0.999 on real photos.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from search.pipeline.base import Box, Segmenter

if TYPE_CHECKING:
    from search.pipeline.config import PipelineConfig

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def box_mask(size: tuple[int, int], box: Box) -> Image.Image:
    """A 0/255 "L" mask of ``size`` (width, height) covering every pixel the box touches."""
    width, height = size
    mask = np.zeros((height, width), dtype=np.uint8)
    x0, y0, x1, y1 = box.clamped(width, height).pixel_bounds()
    mask[y0:y1, x0:x1] = 255
    return Image.fromarray(mask)


class BoxSegmenter(Segmenter):
    """No model: each box is its own mask. With the whole-image detector this keeps the whole photo."""

    name = "box segmenter"

    def segment(
        self, images: Sequence[Image.Image], boxes_per_image: Sequence[Sequence[Box]]
    ) -> list[list[Image.Image]]:
        return [
            [box_mask(image.size, box) for box in boxes] for image, boxes in zip(images, boxes_per_image, strict=True)
        ]

    @classmethod
    def from_config(cls, config: PipelineConfig) -> BoxSegmenter:
        return cls()


def sam2_preprocess(image: Image.Image, boxes: Sequence[Box], *, size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """SAM 2 inputs: pixels (3, size, size) float32 and boxes (n, 4) float32 in the resized frame.

    RGB, bilinear resize to size x size (aspect not kept, as SAM 2 does), /255, ImageNet mean/std;
    box x scaled by size/width and y by size/height.
    """
    width, height = image.size
    resized = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    pixels = (np.asarray(resized, dtype=np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    scale = np.array([size / width, size / height, size / width, size / height], dtype=np.float32)
    box_array = np.array([box.as_tuple() for box in boxes], dtype=np.float32).reshape(-1, 4) * scale
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)), box_array


def masks_from_logits(low_res_logits: Any, size: tuple[int, int]) -> list[Image.Image]:
    """(n, h', w') mask logits -> n "L" masks of ``size`` (width, height): bilinear upsampling, then > 0."""
    import torch.nn.functional as F

    width, height = size
    upsampled = F.interpolate(
        low_res_logits[:, None].float(), size=(height, width), mode="bilinear", align_corners=False
    )
    binary = (upsampled[:, 0] > 0).to("cpu").numpy()
    return [Image.fromarray(mask.astype(np.uint8) * 255) for mask in binary]


class Sam2Segmenter(Segmenter):
    """SAM 2 with box prompts: one image-encoder pass per image, then the mask decoder for all its boxes.

    ``encoder``: the image encoder compiled by OpenVINO (full_openvino.sam2_image_encoder, chosen by
    LOOKALIKE_FULL_RUNTIME); the prompt encoder and mask decoder stay in PyTorch.
    """

    name = "SAM 2 segmenter"

    def __init__(self, model: Any, *, encoder: Any = None):
        self.model = model
        self.encoder = encoder
        self.input_size = int(model.config.prompt_encoder_config.image_size)

    @property
    def runtime(self) -> str:
        return "torch" if self.encoder is None else "openvino"

    @classmethod
    def from_config(cls, config: PipelineConfig) -> Sam2Segmenter:
        from transformers import Sam2Model

        from search.pipeline.loading import load_pretrained

        model = load_pretrained(
            Sam2Model,
            config.segmenter_model,
            what="segmenter",
            setting="LOOKALIKE_SEGMENTER_MODEL",
            device=config.torch_device,
            dtype=config.torch_dtype,
            local_files_only=config.local_files_only,
        )
        from search.pipeline import full_openvino

        runtime = full_openvino.runtime_for(config, model)
        if runtime == "torch":
            return cls(model)
        encoder = full_openvino.sam2_image_encoder(
            model, config.model_cache_dir, threads=config.torch_threads, precision=full_openvino.precision_for(runtime)
        )
        return cls(model, encoder=encoder)

    def _segment_one(self, image: Image.Image, boxes: Sequence[Box]) -> list[Image.Image]:
        import torch

        if not boxes:
            return []
        pixels, scaled_boxes = sam2_preprocess(image, boxes, size=self.input_size)
        device, dtype = self.model.device, self.model.dtype
        with torch.inference_mode():
            if self.encoder is None:
                encoded = {"pixel_values": torch.from_numpy(pixels)[None].to(device=device, dtype=dtype)}
            else:
                encoded = {"image_embeddings": [torch.from_numpy(maps) for maps in self.encoder(pixels[None])]}
            outputs = self.model(
                **encoded,
                input_boxes=torch.from_numpy(scaled_boxes)[None].to(device=device, dtype=dtype),
                multimask_output=False,
            )
            logits = outputs.pred_masks[0, :, 0]  # (n boxes, h', w')
            return masks_from_logits(logits, image.size)

    def segment(
        self, images: Sequence[Image.Image], boxes_per_image: Sequence[Sequence[Box]]
    ) -> list[list[Image.Image]]:
        return [self._segment_one(image, boxes) for image, boxes in zip(images, boxes_per_image, strict=True)]
