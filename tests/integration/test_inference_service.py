"""The pipeline as a separate inference service (LitServe) and the client web processes and workers use.

One service process for the module, on the tiny real-class models (full profile: Florence-2, SAM 2, CLIP),
compared with the same pipeline built in this process.
"""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from django_q.models import Schedule
from PIL import Image

from catalog import services
from catalog.models import ImageStatus
from search import tasks
from search.pipeline.base import Box, PipelineError
from search.pipeline.config import PipelineConfig
from search.pipeline.registry import build_pipeline, embedder_supports_text, get_pipeline, reset_pipeline
from search.pipeline.remote import RemotePipeline
from tests.conftest import REPO_ROOT, demo_photo
from tests.fixtures.inference_service import InferenceService, free_port
from tests.fixtures.own_postgres import clean_env

# One worker starts the module-wide service once (README's test command passes --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("inference-service")]

IDLE_UNLOAD_SECONDS = 2


def tiny_settings(dirs) -> dict[str, str]:
    return {
        "LOOKALIKE_PROFILE": "full",
        "LOOKALIKE_DETECTOR_MODEL": str(dirs["detector"]),
        "LOOKALIKE_SEGMENTER_MODEL": str(dirs["segmenter"]),
        "LOOKALIKE_EMBEDDER_MODEL": str(dirs["embedder"]),
        "LOOKALIKE_DEVICE": "cpu",
    }


@pytest.fixture(scope="module")
def service(tiny_model_dirs, tmp_path_factory):
    log = tmp_path_factory.mktemp("inference") / "service.log"
    # A long batch window so that requests sent together surely meet in one batch.
    args = ("--max-batch-size", "8", "--batch-timeout", "0.3", "--idle-unload-seconds", str(IDLE_UNLOAD_SECONDS))
    running = InferenceService(clean_env(**tiny_settings(tiny_model_dirs)), log, *args)
    try:
        yield running  # started, maybe not ready yet: `local` is built meanwhile
    finally:
        running.stop(graceful=False)


@pytest.fixture(scope="module")
def local(service, tiny_model_dirs):
    """The same pipeline in this process (built while the service loads its own)."""
    return build_pipeline(PipelineConfig.from_settings(type("S", (), tiny_settings(tiny_model_dirs))))


@pytest.fixture
def remote(service, local):
    return RemotePipeline(service.wait_healthy().url)


def photos() -> list[Image.Image]:
    """Decoded up front: a lazily loaded photo cannot be read by several threads at once."""
    return [Image.open(demo_photo(category)).copy() for category in ("Dress", "Shoes", "Hat")]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def assert_same_garments(remote_garments, local_garments):
    assert len(remote_garments) == len(local_garments) > 0
    for ours, theirs in zip(remote_garments, local_garments, strict=True):
        assert ours.box == theirs.box and ours.whole_image_fallback == theirs.whole_image_fallback
        assert cosine(ours.embedding, theirs.embedding) > 0.9999
        assert ours.embedding.dtype == np.float32 and ours.embedding.shape == theirs.embedding.shape
        assert np.array_equal(np.asarray(ours.mask), np.asarray(theirs.mask))
        assert ours.cutout.mode == "RGBA" and np.array_equal(np.asarray(ours.cutout), np.asarray(theirs.cutout))


def test_photos_boxes_and_text_through_the_service_equal_the_in_process_pipeline(remote, local):
    assert (remote.embedder_id, remote.embedding_dim, remote.max_side) == (
        local.embedder_id,
        local.embedding_dim,
        local.max_side,
    )
    assert remote.profile == "full" and remote.supports_text is local.supports_text is True
    images = photos()
    for ours, theirs in zip(remote.process(images), local.process(images), strict=True):
        assert_same_garments(ours, theirs)
    box = Box(10, 20, 200, 260, label="selection")
    assert_same_garments(remote.process_boxes(images[0], [box]), local.process_boxes(images[0], [box]))
    texts = ["red satin midi dress", "black shoes"]
    ours, theirs = remote.embed_text(texts), local.embed_text(texts)
    assert ours.shape == theirs.shape == (2, local.embedding_dim)
    assert min(cosine(a, b) for a, b in zip(ours, theirs, strict=True)) > 0.9999


def test_concurrent_requests_are_batched_together(remote, service):
    before = service.info()["stats"]["batch_sizes"]
    senders = 4
    barrier = threading.Barrier(senders)
    results, errors = [], []
    image = photos()[1]

    def send():
        barrier.wait()
        try:
            results.append(remote.process([image])[0])
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and len(results) == senders
    after = service.info()["stats"]["batch_sizes"]
    new_batches = {int(size): n - before.get(size, 0) for size, n in after.items() if n > before.get(size, 0)}
    assert sum(size * count for size, count in new_batches.items()) == senders, new_batches
    assert max(new_batches) > 1, f"every request ran alone: {new_batches}"
    assert all(np.array_equal(r[0].embedding, results[0][0].embedding) for r in results)


def test_idle_models_are_unloaded_and_the_next_request_loads_them_again(remote, service, local):
    image = photos()[0]
    remote.process([image])
    deadline = time.monotonic() + IDLE_UNLOAD_SECONDS + 30
    while (info := service.info())["loaded"]:
        assert time.monotonic() < deadline, "the models stayed loaded"
        time.sleep(0.5)
    assert info["stats"]["unloads"] >= 1 and info["embedder_id"] == local.embedder_id, "info loads nothing"
    loads = info["stats"]["loads"]
    assert_same_garments(remote.process([image])[0], local.process([image])[0])
    info = service.info()
    assert info["loaded"] and info["stats"]["loads"] == loads + 1


def test_a_web_process_on_the_service_loads_no_model(remote, service):
    """The whole site imported and a photo searched through the service: torch is never imported."""
    code = (
        "import sys, django; django.setup(); import config.wsgi, config.urls, search.tasks, search.views; "
        "from PIL import Image; from search.pipeline.registry import get_pipeline, embedder_supports_text; "
        "assert embedder_supports_text(); get_pipeline().process_image(Image.new('RGB', (64, 64), 'red')); "
        "print('torch' in sys.modules, type(get_pipeline()).__name__)"
    )
    env = clean_env(LOOKALIKE_INFERENCE_URL=service.url, LOOKALIKE_PROFILE="full")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "RemotePipeline"]


@pytest.fixture
def service_down(settings):
    settings.LOOKALIKE_INFERENCE_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    reset_pipeline()
    yield
    reset_pipeline()


@pytest.mark.django_db(transaction=True)
def test_a_service_that_is_down_is_a_503_for_search_and_a_retry_for_processing(service_down, settings):
    from rest_framework.test import APIClient

    upload = io.BytesIO(demo_photo("Dress").read_bytes())
    upload.name = "query.jpg"
    response = APIClient().post("/api/search/", {"image": upload}, format="multipart")
    assert response.status_code == 503, response.content
    assert "inference service" in response.json()["error"]["message"]
    assert not embedder_supports_text(), "a page asking about text search gets an answer, not an error"
    with pytest.raises(PipelineError):
        get_pipeline().info()

    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
    product, _ = services.upsert_product(external_id="p", shop="S", name="Dress", price="10", currency="EUR")
    image, _ = services.add_image(product=product, content=demo_photo("Dress").read_bytes())
    assert tasks.process_images([image.pk]) == {"done": 0, "failed": 1, "skipped": 0}
    image.refresh_from_db()
    assert image.status == ImageStatus.FAILED and image.attempts == 1
    assert "inference service" in image.error and image.file, "the photo is kept for the retry"
    assert Schedule.objects.filter(name__startswith=f"retry-image-{image.pk}-").exists()
