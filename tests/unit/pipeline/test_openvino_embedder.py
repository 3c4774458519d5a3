"""EfficientNet-Lite0 (offline embedder and box labeller) in OpenVINO: the ONNX Runtime vectors and labels on real
photos, one compiled model per process for both stages, chosen by LOOKALIKE_EMBEDDER_RUNTIME, clear errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from search.pipeline import offline, onnx_runtime
from search.pipeline.base import ModelLoadError, PipelineError
from search.pipeline.config import PipelineConfig
from search.pipeline.embedders import EfficientNetLiteEmbedder, imagenet_batch, load_center

from .conftest import real_photos


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("model-cache"))


def photos() -> list[Image.Image]:
    paths = [*real_photos("T-Shirt", 2), *real_photos("Pants", 2), *real_photos("Shoes", 1), *real_photos("Dress", 1)]
    return [Image.open(path).convert("RGB") for path in paths]


def test_openvino_gives_onnx_runtimes_vectors_and_neighbours_on_real_photos(cache_dir):
    """The speed-up must not move the index: centred vectors as stored, each photo's ranking of the others."""
    center = load_center("bundled")
    images = photos()
    vectors = {
        runtime: EfficientNetLiteEmbedder.load(runtime=runtime, cache_dir=cache_dir, threads=1, center=center)
        for runtime in ("onnx", "openvino")
    }
    assert vectors["openvino"].runtime == "openvino" and vectors["onnx"].runtime == "onnx"
    fast, reference = (vectors[runtime].embed_images(images) for runtime in ("openvino", "onnx"))
    assert fast.shape == reference.shape == (len(images), 1280)
    cosine = (fast * reference).sum(axis=1)
    assert cosine.min() > 0.999 and cosine.mean() > 0.9995, cosine
    assert np.array_equal(np.argsort(-(fast @ fast.T))[:, :3], np.argsort(-(reference @ reference.T))[:, :3])


def test_openvino_labeller_gives_the_onnx_labellers_categories(cache_dir):
    classifier = offline.shared_classifier("openvino", cache_dir, 1)
    embedder = EfficientNetLiteEmbedder.load(runtime="openvino", cache_dir=cache_dir, threads=1)
    assert embedder.model is classifier, "one compiled model per process serves the embedder and the labeller"
    pixels = imagenet_batch(photos())
    fast = offline.imagenet_outputs(classifier, pixels)[1]
    reference = offline.imagenet_outputs(offline.shared_classifier("onnx", cache_dir, 1), pixels)[1]
    assert np.abs(fast - reference).max() < 1e-2
    assert [offline.category_from_probabilities(row)[0] for row in fast] == [
        offline.category_from_probabilities(row)[0] for row in reference
    ]


def test_the_setting_selects_openvino_for_efficientnet_only(cache_dir):
    """auto stays onnx (no speed-up measured without bf16); CLIP's text tower reads openvino as onnx."""
    assert onnx_runtime.resolve_runtime("auto", device_type="cpu", openvino=True) == "onnx"
    assert onnx_runtime.resolve_runtime("auto", device_type="cuda", openvino=True) == "torch"
    assert onnx_runtime.resolve_runtime("openvino", openvino=True) == "openvino"
    assert onnx_runtime.resolve_runtime("openvino") == "onnx"
    as_openvino = PipelineConfig(device="cpu", embedder_runtime="openvino", model_cache_dir=cache_dir)
    assert EfficientNetLiteEmbedder.from_config(as_openvino).runtime == "openvino"
    assert offline.classifier_runtime(as_openvino) == ("openvino", cache_dir)
    as_auto = PipelineConfig(device="cpu", model_cache_dir=cache_dir)
    assert EfficientNetLiteEmbedder.from_config(as_auto).runtime == "onnx"
    assert offline.classifier_runtime(as_auto) == ("onnx", cache_dir)


def test_the_offline_pipeline_shares_one_openvino_model(offline_real_settings, tmp_path):
    offline_real_settings.LOOKALIKE_EMBEDDER_RUNTIME = "openvino"
    offline_real_settings.LOOKALIKE_MODEL_CACHE_DIR = str(tmp_path)
    from search.pipeline.registry import get_pipeline

    pipeline = get_pipeline()
    assert pipeline.embedder.runtime == "openvino"
    assert pipeline.detector.classifier is pipeline.embedder.model, "the labeller reads the embedder's model"


def test_unknown_runtime_is_a_clear_error(cache_dir):
    with pytest.raises(PipelineError, match="LOOKALIKE_EMBEDDER_RUNTIME='tensorrt' is not one of auto, onnx, openvino"):
        onnx_runtime.resolve_runtime("tensorrt", openvino=True)
    with pytest.raises(ModelLoadError, match="Unknown efficientnet-lite0 runtime 'tensorrt'"):
        EfficientNetLiteEmbedder.load(runtime="tensorrt", cache_dir=cache_dir)
    with pytest.raises(ModelLoadError, match="Unknown efficientnet-lite0 runtime 'tensorrt'"):
        onnx_runtime.shared_efficientnet_lite0(cache_dir, 1, "tensorrt")


def test_missing_openvino_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(ModelLoadError, match=r"pip install openvino.*LOOKALIKE_EMBEDDER_RUNTIME=onnx"):
        EfficientNetLiteEmbedder.load(runtime="openvino", cache_dir=tmp_path, threads=1)
    assert not list(tmp_path.iterdir()), "nothing exported before the missing package was noticed"


def test_openvino_needs_a_cache_folder():
    with pytest.raises(ModelLoadError, match="openvino efficientnet-lite0 needs a cache folder"):
        EfficientNetLiteEmbedder.load(runtime="openvino", cache_dir=None)
