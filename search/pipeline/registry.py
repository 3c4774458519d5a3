"""Django settings -> one ``Pipeline`` per process, built lazily on first use and shared by all threads.

Profiles:
- ``full``: Florence-2 detector, SAM 2 segmenter, FashionCLIP embedder (needs the three models).
- ``offline``: whole-image detector, box segmenter, the bundled EfficientNet-Lite0 (needs nothing).
- ``auto``: ``full`` when the three models are in a local folder or the Hugging Face cache, else
  ``offline`` with one WARNING saying why. It never touches the network, so it cannot hang.

Each stage can be overridden on its own (LOOKALIKE_DETECTOR / _SEGMENTER / _EMBEDDER) by a stage name or
a dotted path to a class with ``from_config(config)`` (or a no-argument constructor).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import import_module
from typing import Any

from search.pipeline.base import PipelineError
from search.pipeline.detectors import DEFAULT_LABEL_MAP, merge_label_map
from search.pipeline.pipeline import Pipeline

logger = logging.getLogger("search.pipeline")

PROFILES = ("auto", "full", "offline")
STAGE_CLASSES = {
    "detector": {
        "whole-image": "search.pipeline.detectors.WholeImageDetector",
        "florence2": "search.pipeline.detectors.Florence2Detector",
    },
    "segmenter": {
        "box": "search.pipeline.segmenters.BoxSegmenter",
        "sam2": "search.pipeline.segmenters.Sam2Segmenter",
    },
    "embedder": {
        "efficientnet-lite0": "search.pipeline.embedders.EfficientNetLiteEmbedder",
        "clip": "search.pipeline.embedders.ClipEmbedder",
    },
    "cutter": {"mask": "search.pipeline.cutout.MaskCutter"},
}
PROFILE_STAGES = {
    "full": {"detector": "florence2", "segmenter": "sam2", "embedder": "clip"},
    "offline": {"detector": "whole-image", "segmenter": "box", "embedder": "efficientnet-lite0"},
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
    label_map: dict[str, str | None] = field(default_factory=lambda: dict(DEFAULT_LABEL_MAP))
    local_files_only: bool = False

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
            label_map=merge_label_map(overrides),
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


def _import_class(dotted: str, stage: str) -> type:
    module_name, _, class_name = dotted.rpartition(".")
    setting = f"LOOKALIKE_{stage.upper()}"
    if not module_name:
        known = ", ".join(STAGE_CLASSES[stage])
        raise PipelineError(f"{setting}={dotted!r} is neither a known {stage} ({known}) nor a dotted class path.")
    try:
        return getattr(import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise PipelineError(f"{setting}={dotted!r}: cannot import that class ({exc}).") from exc


def build_stage(stage: str, name: str, config: PipelineConfig) -> Any:
    cls = _import_class(STAGE_CLASSES[stage].get(name, name), stage)
    from_config = getattr(cls, "from_config", None)
    return from_config(config) if callable(from_config) else cls()


def _missing_models(stages: dict[str, str], config: PipelineConfig) -> list[str]:
    from search.pipeline.loading import is_available_offline

    missing = []
    for name in stages.values():
        if name in MODEL_SETTINGS:
            attribute, setting = MODEL_SETTINGS[name]
            source = getattr(config, attribute)
            if not is_available_offline(source):
                missing.append(f"{source} ({setting})")
    return missing


def _assemble(config: PipelineConfig, profile: str, reason: str = "") -> Pipeline:
    stages = config.stage_names(profile)
    built = {stage: build_stage(stage, name, config) for stage, name in stages.items()}
    return Pipeline(
        built["detector"],
        built["segmenter"],
        built["cutter"],
        built["embedder"],
        max_side=config.max_image_side,
        profile=profile,
        reason=reason,
    )


def build_pipeline(config: PipelineConfig) -> Pipeline:
    """Instantiate the configured stages; ``auto`` tries ``full`` offline-only, then falls back."""
    from search.pipeline.device import apply_torch_threads

    apply_torch_threads(config.torch_threads)
    if config.profile != "auto":
        return _assemble(config, config.profile)
    full = replace(config, local_files_only=True)
    missing = _missing_models(full.stage_names("full"), full)
    reason = "no model hub reachable: full-profile models not found locally"
    if not missing:
        try:
            return _assemble(full, "full")
        except PipelineError as exc:
            missing = [str(exc)]
            reason = "full-profile models failed to load"
    logger.warning(
        "LOOKALIKE_PROFILE=auto: using the offline profile (whole-image detector, box segmenter, "
        "efficientnet-lite0) because the full profile's models are unavailable: %s. Run `python manage.py "
        "download_models` on a connected machine (or set the LOOKALIKE_*_MODEL settings to local folders) "
        "for garment detection and FashionCLIP.",
        "; ".join(missing),
    )
    return _assemble(config, "offline", reason=reason)


_pipeline: Pipeline | None = None
_pipeline_lock = threading.Lock()


def get_pipeline() -> Pipeline:
    """The process's pipeline, built from settings on first use (thread-safe, built once)."""
    global _pipeline
    if _pipeline is None:
        with _pipeline_lock:
            if _pipeline is None:
                _pipeline = build_pipeline(PipelineConfig.from_settings())
    return _pipeline


def reset_pipeline() -> None:
    """Forget the built pipeline (tests, or after changing settings); the next get_pipeline() rebuilds."""
    global _pipeline
    with _pipeline_lock:
        _pipeline = None


def describe() -> str:
    """One line naming the profile and stages in use, e.g. for the worker's start-up log."""
    return get_pipeline().describe()
