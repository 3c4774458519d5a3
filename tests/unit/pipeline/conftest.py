"""Fixtures of the pipeline's unit tests: settings selecting the tiny models (``tiny_model_dirs`` comes from
tests/conftest.py), the offline profile, real photos."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
FIXTURE_PHOTOS = REPO_ROOT / "tests" / "fixtures" / "photos"
DEMO_CATALOG = REPO_ROOT / "catalog" / "demo"
SHARED_DATASET = REPO_ROOT.parent / "shared" / "datasets" / "clothing-cc0"


def real_photos(category: str, count: int) -> list[Path]:
    """The first ``count`` real CC0 photos of a dataset category ("T-Shirt", "Shoes", ...).

    Looks in tests/fixtures/photos (labels.csv), then the demo catalog (products.json), then the shared
    dataset; skips the test when none has enough photos.
    """
    sources = []
    if (FIXTURE_PHOTOS / "labels.csv").is_file():
        with (FIXTURE_PHOTOS / "labels.csv").open() as handle:
            sources.append([(FIXTURE_PHOTOS / row["file"], row["category"]) for row in csv.DictReader(handle)])
    if (DEMO_CATALOG / "products.json").is_file():
        products = json.loads((DEMO_CATALOG / "products.json").read_text())
        sources.append([(DEMO_CATALOG / product["images"][0], product["category"]) for product in products])
    if (SHARED_DATASET / "labels.csv").is_file():
        with (SHARED_DATASET / "labels.csv").open() as handle:
            sources.append([(SHARED_DATASET / row["file"], row["category"]) for row in csv.DictReader(handle)])
    for rows in sources:
        paths = [path for path, label in rows if label == category and path.is_file()]
        if len(paths) >= count:
            return paths[:count]
    pytest.skip(f"fewer than {count} real {category} photos available")


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
def offline_settings(settings, fresh_pipeline):
    settings.LOOKALIKE_PROFILE = "offline"
    settings.LOOKALIKE_DETECTOR = ""
    settings.LOOKALIKE_SEGMENTER = ""
    settings.LOOKALIKE_EMBEDDER = ""
    settings.LOOKALIKE_DEVICE = "cpu"
    settings.LOOKALIKE_TORCH_THREADS = 1
    return settings


@pytest.fixture(scope="session")
def efficientnet_embedder():
    from search.pipeline.embedders import EfficientNetLiteEmbedder

    return EfficientNetLiteEmbedder.load(batch_size=16)
