"""Every pipeline setting in one frozen value, read once from Django settings; stages build from it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from search.pipeline.base import PipelineError
from search.pipeline.labels import DEFAULT_LABEL_MAP, merge_label_map

PROFILES = ("auto", "full", "offline")
BOX_LABELLERS = ("centroids", "imagenet")


def _box_labeller(value: str) -> str:
    choice = (value or "").strip().lower()
    if choice not in BOX_LABELLERS:
        raise PipelineError(f"LOOKALIKE_BOX_LABELLER={value!r} is not one of {', '.join(BOX_LABELLERS)}.")
    return choice


PROFILE_STAGES = {
    "full": {"detector": "florence2", "segmenter": "sam2", "embedder": "clip"},
    "offline": {"detector": "salient", "segmenter": "u2netp", "embedder": "efficientnet-lite0"},
}
# Stages whose model comes from a setting: (model attribute, setting name) per stage name.
MODEL_SETTINGS = {
    "florence2": ("detector_model", "LOOKALIKE_DETECTOR_MODEL"),
    "sam2": ("segmenter_model", "LOOKALIKE_SEGMENTER_MODEL"),
    "clip": ("embedder_model", "LOOKALIKE_EMBEDDER_MODEL"),
}


@dataclass(frozen=True)
class PipelineConfig:
    """Every pipeline setting, read once from Django settings; stages build themselves from it."""

    profile: str = "auto"
    detector: str = ""
    segmenter: str = ""
    embedder: str = ""
    detector_model: str = "florence-community/Florence-2-base"
    segmenter_model: str = "facebook/sam2.1-hiera-tiny"
    embedder_model: str = "patrickjohncyh/fashion-clip"
    device: str = "auto"
    dtype: str = "auto"
    torch_threads: int = 0
    batch_size: int = 16
    max_image_side: int = 1600
    min_box_area: float = 0.01
    box_iou: float = 0.7
    pose: bool = True  # offline detector: person photos split into upper/lower/feet (pose.py)
    box_labeller: str = "centroids"  # offline detector's box labels: centroids (CentroidLabeller) | imagenet
    label_map: dict[str, str | None] = field(default_factory=lambda: dict(DEFAULT_LABEL_MAP))
    local_files_only: bool = False
    embedder_runtime: str = "auto"  # auto (onnx on the CPU when onnxruntime is installed) | onnx | openvino | torch
    full_runtime: str = "auto"  # full profile encoders: auto | torch | openvino | openvino-bf16 (full_openvino.py)
    model_cache_dir: str = ".models/cache"  # where exported (ONNX) models are written once
    detector_num_beams: int = 3
    detector_max_new_tokens: int = 256
    embedding_center: str = "bundled"  # efficientnet-lite0: bundled garment mean | off | path to an .npy
    embedding_metric: str = "bundled"  # efficientnet-lite0: bundled category metric | off | path to an .npz
    cutout_square: bool = True  # the embedder sees a long garment whole, not centre-cropped

    @classmethod
    def from_settings(cls, settings: Any = None) -> PipelineConfig:
        if settings is None:
            from django.conf import settings

        profile = getattr(settings, "LOOKALIKE_PROFILE", "auto").strip().lower()
        if profile not in PROFILES:
            raise PipelineError(f"LOOKALIKE_PROFILE={profile!r} is not one of {', '.join(PROFILES)}.")
        raw_map = getattr(settings, "LOOKALIKE_LABEL_MAP", "") or ""
        try:
            overrides = json.loads(raw_map) if isinstance(raw_map, str) and raw_map.strip() else raw_map or {}
        except ValueError as exc:
            raise PipelineError(
                f'LOOKALIKE_LABEL_MAP is not valid JSON ({exc}); expected e.g. {{"tunic": "top"}}.'
            ) from exc
        if not isinstance(overrides, dict):
            raise PipelineError("LOOKALIKE_LABEL_MAP must be a JSON object mapping detector labels to categories.")
        defaults = cls()
        return cls(
            profile=profile,
            detector=getattr(settings, "LOOKALIKE_DETECTOR", "").strip(),
            segmenter=getattr(settings, "LOOKALIKE_SEGMENTER", "").strip(),
            embedder=getattr(settings, "LOOKALIKE_EMBEDDER", "").strip(),
            detector_model=getattr(settings, "LOOKALIKE_DETECTOR_MODEL", defaults.detector_model),
            segmenter_model=getattr(settings, "LOOKALIKE_SEGMENTER_MODEL", defaults.segmenter_model),
            embedder_model=getattr(settings, "LOOKALIKE_EMBEDDER_MODEL", defaults.embedder_model),
            device=getattr(settings, "LOOKALIKE_DEVICE", defaults.device),
            dtype=getattr(settings, "LOOKALIKE_DTYPE", defaults.dtype),
            torch_threads=getattr(settings, "LOOKALIKE_TORCH_THREADS", defaults.torch_threads),
            batch_size=getattr(settings, "LOOKALIKE_BATCH_SIZE", defaults.batch_size),
            max_image_side=getattr(settings, "LOOKALIKE_MAX_IMAGE_SIDE", defaults.max_image_side),
            min_box_area=getattr(settings, "LOOKALIKE_MIN_BOX_AREA", defaults.min_box_area),
            box_iou=getattr(settings, "LOOKALIKE_BOX_IOU", defaults.box_iou),
            pose=bool(getattr(settings, "LOOKALIKE_POSE", defaults.pose)),
            box_labeller=_box_labeller(getattr(settings, "LOOKALIKE_BOX_LABELLER", defaults.box_labeller)),
            label_map=merge_label_map(overrides),
            embedder_runtime=getattr(settings, "LOOKALIKE_EMBEDDER_RUNTIME", defaults.embedder_runtime),
            full_runtime=getattr(settings, "LOOKALIKE_FULL_RUNTIME", defaults.full_runtime),
            model_cache_dir=str(getattr(settings, "LOOKALIKE_MODEL_CACHE_DIR", defaults.model_cache_dir)),
            detector_num_beams=getattr(settings, "LOOKALIKE_OD_NUM_BEAMS", defaults.detector_num_beams),
            detector_max_new_tokens=getattr(settings, "LOOKALIKE_OD_MAX_NEW_TOKENS", defaults.detector_max_new_tokens),
            embedding_center=getattr(settings, "LOOKALIKE_EMBEDDING_CENTER", defaults.embedding_center),
            embedding_metric=getattr(settings, "LOOKALIKE_EMBEDDING_METRIC", defaults.embedding_metric),
            cutout_square=getattr(settings, "LOOKALIKE_CUTOUT_SQUARE", defaults.cutout_square),
        )

    @cached_property
    def torch_device(self):
        from search.pipeline.device import resolve_device

        return resolve_device(self.device)

    @cached_property
    def torch_dtype(self):
        from search.pipeline.device import resolve_dtype

        return resolve_dtype(self.dtype, self.torch_device)

    def stage_names(self, profile: str) -> dict[str, str]:
        """Stage name (or dotted path) per stage: the profile's choice unless a setting overrides it."""
        chosen = dict(PROFILE_STAGES[profile], cutter="mask")
        for stage in ("detector", "segmenter", "embedder"):
            if getattr(self, stage):
                chosen[stage] = getattr(self, stage)
        return chosen
