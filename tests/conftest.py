"""Shared fixtures: one torch thread, media in a temp folder, django-q2 tasks run in-process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "catalog" / "demo"
ARTIFACTS_DIR = Path(os.environ.get("TEST_ARTIFACTS_DIR", REPO_ROOT / "test-artifacts"))


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a hard requirement, but unit tests of pure code need not care
        pass


# HNSW build parameters for tests that only need an index to exist: the production ones (m 24,
# ef_construction 400) buy recall, which only the modules named here measure, and cost build time.
SMALL_HNSW = {"HNSW_M": 8, "HNSW_EF_CONSTRUCTION": 32}
RECALL_TEST_MODULES = {"tests.integration.test_vector_index"}


@pytest.fixture(scope="module", autouse=True)
def _small_hnsw_indexes(request):
    if request.module.__name__ in RECALL_TEST_MODULES:
        yield
        return
    from django.test import override_settings

    with override_settings(**SMALL_HNSW):
        yield


@pytest.fixture
def pg_data_dir():
    """Data folder (not yet created) for a test's own embedded server, stopped and removed afterwards."""
    from tests.fixtures.own_postgres import temporary_data_dir

    with temporary_data_dir() as data_dir:
        yield data_dir


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path_factory):
    settings.MEDIA_ROOT = tmp_path_factory.mktemp("media")


@pytest.fixture(autouse=True)
def _tasks_run_in_process(monkeypatch):
    """django-q2's sync mode: async_task() runs the real task path (pickling, hooks) in this process."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def no_background_processing(settings):
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False


@pytest.fixture
def demo_products() -> list[dict]:
    import json

    return json.loads((DEMO_DIR / "products.json").read_text())


def demo_photo(category: str, index: int = 0) -> Path:
    """Path of the index-th demo photo of a category (real CC0 photos, see catalog/demo/ATTRIBUTION.md)."""
    import json

    products = [p for p in json.loads((DEMO_DIR / "products.json").read_text()) if p["category"] == category]
    return DEMO_DIR / products[index]["images"][0]


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory) -> dict[str, Path]:
    """Tiny random-weight Florence-2, SAM 2 and CLIP models of the real classes, built offline once."""
    from tests.fixtures.tiny_models import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))
