"""Fixtures of the pipeline's unit tests: settings selecting the tiny models (``tiny_model_dirs`` comes from
tests/conftest.py), the offline profile, real photos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DEMO_CATALOG = Path(__file__).resolve().parents[3] / "catalog" / "demo"


def tiny_full_config(tiny_model_dirs, **overrides):
    """A full-profile PipelineConfig of the tiny test models on the CPU, one thread; ``overrides`` on top."""
    from search.pipeline.registry import PipelineConfig

    return PipelineConfig(
        profile="full",
        detector_model=str(tiny_model_dirs["detector"]),
        segmenter_model=str(tiny_model_dirs["segmenter"]),
        embedder_model=str(tiny_model_dirs["embedder"]),
        device="cpu",
        torch_threads=1,
        **overrides,
    )


def real_photos(category: str, count: int) -> list[Path]:
    """The first ``count`` real CC0 photos of a category ("T-Shirt", "Shoes", ...) in the demo catalog."""
    products = json.loads((DEMO_CATALOG / "products.json").read_text())
    paths = [DEMO_CATALOG / p["images"][0] for p in products if p["category"] == category]
    assert len(paths) >= count, f"the demo catalog has only {len(paths)} {category} photos, {count} needed"
    return paths[:count]


@pytest.fixture
def fresh_pipeline():
    """Forget the process's pipeline before and after, so each test builds from its own settings."""
    from search.pipeline.registry import reset_pipeline

    reset_pipeline()
    yield
    reset_pipeline()


@pytest.fixture
def tiny_full_settings(settings, tiny_model_dirs, fresh_pipeline):
    """Settings for the full profile on the tiny models (Florence-2, SAM 2, CLIP), one torch thread."""
    settings.LOOKALIKE_PROFILE = "full"
    settings.LOOKALIKE_DETECTOR = ""
    settings.LOOKALIKE_SEGMENTER = ""
    settings.LOOKALIKE_EMBEDDER = ""
    settings.LOOKALIKE_DETECTOR_MODEL = str(tiny_model_dirs["detector"])
    settings.LOOKALIKE_SEGMENTER_MODEL = str(tiny_model_dirs["segmenter"])
    settings.LOOKALIKE_EMBEDDER_MODEL = str(tiny_model_dirs["embedder"])
    settings.LOOKALIKE_DEVICE = "cpu"
    settings.LOOKALIKE_DTYPE = "auto"
    settings.LOOKALIKE_TORCH_THREADS = 1
    settings.LOOKALIKE_LABEL_MAP = ""
    return settings


@pytest.fixture
def offline_real_settings(settings, fresh_pipeline):
    """The offline profile as it ships: U2-Net-p detector and segmenter, EfficientNet-Lite0, one thread."""
    settings.LOOKALIKE_PROFILE = "offline"
    settings.LOOKALIKE_DETECTOR = ""
    settings.LOOKALIKE_SEGMENTER = ""
    settings.LOOKALIKE_EMBEDDER = ""
    settings.LOOKALIKE_DEVICE = "cpu"
    settings.LOOKALIKE_TORCH_THREADS = 1
    return settings


@pytest.fixture
def offline_settings(offline_real_settings):
    """The offline profile with its model-free stages pinned (whole photo, box mask): fast, and what the
    tests of settings, commands and embeddings on whole photos were written against."""
    offline_real_settings.LOOKALIKE_DETECTOR = "whole-image"
    offline_real_settings.LOOKALIKE_SEGMENTER = "box"
    return offline_real_settings


@pytest.fixture(scope="session")
def efficientnet_embedder():
    from search.pipeline.embedders import EfficientNetLiteEmbedder

    return EfficientNetLiteEmbedder.load(batch_size=16)
