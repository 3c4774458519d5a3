"""Garment detection: the whole image (no model) or Florence-2's ``<OD>`` task with garment labels only.

Florence-2 answers ``<OD>`` with text such as ``"</s><s>dress<loc_100><loc_200><loc_500><loc_900>
person<loc_0>...</s>"``: a label followed by groups of four location tokens, each a bin of 1/1000 of the
image's width or height. ``parse_od_text`` and ``select_garments`` turn that text into our boxes as pure
functions, so they are tested on known strings (a random test model only emits junk).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from PIL import Image

from search.pipeline.base import WHOLE_IMAGE_LABEL, Box, Detector
from search.pipeline.labels import DEFAULT_LABEL_MAP, normalize_label

if TYPE_CHECKING:
    from search.pipeline.config import PipelineConfig

OD_TASK = "<OD>"
LOCATION_BINS = 1000

_LOC_GROUP = re.compile(r"([^<]*)((?:<loc_\d+>){4,})")
_LOC = re.compile(r"<loc_(\d+)>")
_OTHER_TAGS = re.compile(r"<(?!loc_\d+>)[^>]*>")


def parse_od_text(text: str, image_size: tuple[int, int]) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Florence-2 ``<OD>`` output -> [(label, (x0, y0, x1, y1)), ...] in pixels of an image (width, height).

    Coordinates are bin centres, as in Florence2PostProcessor, but kept as floats. A label followed by
    eight location tokens is two boxes; stray tokens that do not make a group of four are ignored.
    """
    width, height = image_size
    cleaned = _OTHER_TAGS.sub("", text)
    parsed = []
    for label_text, locations in _LOC_GROUP.findall(cleaned):
        bins = [min(max(int(value), 0), LOCATION_BINS - 1) for value in _LOC.findall(locations)]
        label = " ".join(label_text.split())
        for start in range(0, len(bins) - 3, 4):
            bx0, by0, bx1, by1 = bins[start : start + 4]
            parsed.append(
                (
                    label,
                    (
                        (bx0 + 0.5) * width / LOCATION_BINS,
                        (by0 + 0.5) * height / LOCATION_BINS,
                        (bx1 + 0.5) * width / LOCATION_BINS,
                        (by1 + 0.5) * height / LOCATION_BINS,
                    ),
                )
            )
    return parsed


def select_garments(
    detections: Sequence[tuple[str, tuple[float, float, float, float]]],
    image_size: tuple[int, int],
    *,
    label_map: Mapping[str, str | None] = DEFAULT_LABEL_MAP,
    min_area_fraction: float = 0.01,
    iou_threshold: float = 0.7,
) -> list[Box]:
    """Keep every garment box: map labels to categories (others dropped), clamp to the image, drop boxes
    smaller than ``min_area_fraction`` of the image, and of same-category boxes overlapping more than
    ``iou_threshold`` keep the larger. Result is sorted largest first."""
    width, height = image_size
    image_area = float(width * height)
    candidates: list[Box] = []
    for label, (x0, y0, x1, y1) in detections:
        category = normalize_label(label, label_map)
        if category is None:
            continue
        box = Box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1), label=category).clamped(width, height)
        if image_area <= 0 or box.area <= 0 or box.area / image_area < min_area_fraction:
            continue
        candidates.append(box)
    candidates.sort(key=lambda box: box.area, reverse=True)
    kept: list[Box] = []
    for box in candidates:
        if all(other.label != box.label or box.iou(other) <= iou_threshold for other in kept):
            kept.append(box)
    return kept


def florence2_image_size(processor: Any) -> int:
    """The square side Florence-2's processor resizes photos to (768 for the real models)."""
    pixels = processor(text=[OD_TASK], images=[Image.new("RGB", (8, 8))], return_tensors="pt")["pixel_values"]
    return int(pixels.shape[-1])


class WholeImageDetector(Detector):
    """No model: the whole photo is one garment. Right for catalog shots of a single product."""

    name = "whole-image detector"

    def detect(self, images: Sequence[Image.Image]) -> list[list[Box]]:
        return [[Box.whole(image, WHOLE_IMAGE_LABEL)] for image in images]

    @classmethod
    def from_config(cls, config: PipelineConfig) -> WholeImageDetector:
        return cls()


class Florence2Detector(Detector):
    """Florence-2 ``<OD>`` (native transformers 5 classes), keeping all garment boxes.

    ``encoders``: the vision tower and text encoder compiled by OpenVINO (full_openvino.Florence2Encoders,
    chosen by LOOKALIKE_FULL_RUNTIME); ``generate`` then runs only the decoder, in PyTorch, with the same
    greedy or beam search.
    """

    name = "Florence-2 detector"

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        label_map: Mapping[str, str | None] = DEFAULT_LABEL_MAP,
        min_area_fraction: float = 0.01,
        iou_threshold: float = 0.7,
        batch_size: int = 8,
        max_new_tokens: int = 256,
        num_beams: int = 3,
        encoders: Any = None,
    ):
        self.model = model
        self.encoders = encoders
        self.processor = processor
        self.label_map = label_map
        self.min_area_fraction = min_area_fraction
        self.iou_threshold = iou_threshold
        self.batch_size = max(1, batch_size)
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams

    @classmethod
    def from_config(cls, config: PipelineConfig) -> Florence2Detector:
        from transformers import Florence2ForConditionalGeneration, Florence2Processor

        from search.pipeline.loading import load_pretrained

        model = load_pretrained(
            Florence2ForConditionalGeneration,
            config.detector_model,
            what="detector",
            setting="LOOKALIKE_DETECTOR_MODEL",
            device=config.torch_device,
            dtype=config.torch_dtype,
            local_files_only=config.local_files_only,
        )
        processor = load_pretrained(
            Florence2Processor,
            config.detector_model,
            what="detector processor",
            setting="LOOKALIKE_DETECTOR_MODEL",
            local_files_only=config.local_files_only,
        )
        from search.pipeline import full_openvino

        runtime = full_openvino.runtime_for(config, model)
        encoders = None
        if runtime != "torch":
            encoders = full_openvino.Florence2Encoders.load(
                model,
                config.model_cache_dir,
                image_size=florence2_image_size(processor),
                threads=config.torch_threads,
                precision=full_openvino.precision_for(runtime),
            )
            if full_openvino.decoder_in_bf16(runtime):
                import torch

                model.to(torch.bfloat16)  # what is left in torch: the decoder, shared embeddings and LM head
        return cls(
            model,
            processor,
            encoders=encoders,
            label_map=config.label_map,
            min_area_fraction=config.min_box_area,
            iou_threshold=config.box_iou,
            batch_size=config.batch_size,
            max_new_tokens=config.detector_max_new_tokens,
            num_beams=config.detector_num_beams,
        )

    @property
    def runtime(self) -> str:
        return "torch" if self.encoders is None else "openvino"

    def encoder_inputs(self, images: Sequence[Image.Image]) -> dict[str, Any]:
        """``generate``'s encoder-side keywords: the pixels (torch), or the encoder's output (OpenVINO)."""
        import torch
        from transformers.modeling_outputs import BaseModelOutput

        inputs = self.processor(text=[OD_TASK] * len(images), images=list(images), return_tensors="pt")
        input_ids = inputs["input_ids"].to(self.model.device)
        if self.encoders is None:
            pixels = inputs["pixel_values"].to(device=self.model.device, dtype=self.model.dtype)
            return {"input_ids": input_ids, "pixel_values": pixels}
        features = torch.from_numpy(self.encoders.image_features(inputs["pixel_values"].numpy()))
        embeds = self.model.get_input_embeddings()(input_ids).float()  # f32 into OpenVINO, even from a bf16 decoder
        image_slots = (input_ids == self.model.config.image_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(image_slots, features.to(embeds.dtype))
        hidden = torch.from_numpy(self.encoders.encode(embeds.numpy())).to(self.model.dtype)
        return {"input_ids": input_ids, "encoder_outputs": BaseModelOutput(last_hidden_state=hidden)}

    def _generate(self, images: Sequence[Image.Image]) -> list[str]:
        import torch

        # The decoder cannot run past its position table (1024 for Florence-2, far less for test models).
        decoder_positions = getattr(self.model.config.text_config, "max_position_embeddings", self.max_new_tokens + 2)
        max_new_tokens = min(self.max_new_tokens, decoder_positions - 2)
        with torch.inference_mode():
            generated = self.model.generate(
                **self.encoder_inputs(images),
                max_new_tokens=max_new_tokens,
                num_beams=self.num_beams,
                do_sample=False,
            )
        return self.processor.batch_decode(generated, skip_special_tokens=False)

    def detect(self, images: Sequence[Image.Image]) -> list[list[Box]]:
        results: list[list[Box]] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            for image, text in zip(chunk, self._generate(chunk), strict=True):
                results.append(
                    select_garments(
                        parse_od_text(text, image.size),
                        image.size,
                        label_map=self.label_map,
                        min_area_fraction=self.min_area_fraction,
                        iou_threshold=self.iou_threshold,
                    )
                )
        return results
