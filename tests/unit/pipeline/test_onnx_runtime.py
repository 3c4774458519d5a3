"""EfficientNet-Lite0 and CLIP's text tower in ONNX Runtime: same features (and labels) as PyTorch, chosen by a
setting, clear errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from search.pipeline import onnx_runtime
from search.pipeline.base import ModelLoadError, PipelineError
from search.pipeline.config import PipelineConfig
from search.pipeline.embedders import EfficientNetLiteEmbedder, imagenet_batch

from .conftest import real_photos


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def onnx_embedder(cache_dir):
    return EfficientNetLiteEmbedder.load(runtime="onnx", cache_dir=cache_dir, threads=1)


def photos() -> list[Image.Image]:
    paths = real_photos("T-Shirt", 2) + real_photos("Pants", 1) + real_photos("Shoes", 1)
    return [Image.open(path).convert("RGB") for path in paths]


def test_onnx_and_torch_embedders_agree_on_real_photos(onnx_embedder, efficientnet_embedder):
    images = photos()
    from_onnx, from_torch = onnx_embedder.embed_images(images), efficientnet_embedder.embed_images(images)
    assert from_onnx.shape == from_torch.shape == (len(images), 1280)
    assert (from_onnx * from_torch).sum(axis=1).min() > 0.9999
    # the neighbours are the same: each photo's ranking of the others
    assert np.array_equal(np.argsort(-(from_onnx @ from_onnx.T)), np.argsort(-(from_torch @ from_torch.T)))


def test_onnx_logits_pick_the_same_imagenet_class_as_torch(onnx_embedder, efficientnet_embedder):
    import torch

    pixels = imagenet_batch(photos())
    with torch.inference_mode():
        expected = efficientnet_embedder.model(torch.from_numpy(pixels)).numpy()
    assert np.array_equal(onnx_embedder.model.logits(pixels).argmax(axis=1), expected.argmax(axis=1))


def test_the_export_is_written_once_and_reused(cache_dir, onnx_embedder):
    (exported,) = cache_dir.glob("efficientnet-lite0-*.onnx")
    written = exported.stat().st_mtime_ns
    assert onnx_runtime.efficientnet_lite0_onnx_path(cache_dir) == exported
    assert exported.stat().st_mtime_ns == written
    assert not [p for p in cache_dir.iterdir() if p != exported], "no temporary file left behind"


def test_the_setting_selects_the_runtime(cache_dir, onnx_embedder):
    as_onnx = EfficientNetLiteEmbedder.from_config(
        PipelineConfig(device="cpu", embedder_runtime="onnx", model_cache_dir=str(cache_dir))
    )
    assert as_onnx.runtime == "onnx"
    as_torch = EfficientNetLiteEmbedder.from_config(PipelineConfig(device="cpu", embedder_runtime="torch"))
    assert as_torch.runtime == "torch"
    assert onnx_runtime.resolve_runtime("auto", device_type="cpu") == "onnx"
    assert onnx_runtime.resolve_runtime("auto", device_type="cuda") == "torch"
    with pytest.raises(PipelineError, match="LOOKALIKE_EMBEDDER_RUNTIME='tensorrt'"):
        onnx_runtime.resolve_runtime("tensorrt")


def test_settings_reach_the_config(settings):
    settings.LOOKALIKE_EMBEDDER_RUNTIME = "torch"
    settings.LOOKALIKE_MODEL_CACHE_DIR = "/somewhere/cache"
    settings.LOOKALIKE_OD_NUM_BEAMS = 1
    settings.LOOKALIKE_OD_MAX_NEW_TOKENS = 64
    config = PipelineConfig.from_settings()
    assert (config.embedder_runtime, config.model_cache_dir) == ("torch", "/somewhere/cache")
    assert (config.detector_num_beams, config.detector_max_new_tokens) == (1, 64)


def test_missing_onnxruntime_is_a_clear_error_and_auto_falls_back_to_torch(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ModelLoadError, match=r"pip install onnxruntime.*LOOKALIKE_EMBEDDER_RUNTIME=torch"):
        EfficientNetLiteEmbedder.load(runtime="onnx", cache_dir=tmp_path)
    assert onnx_runtime.resolve_runtime("auto", device_type="cpu") == "torch"


def test_missing_onnx_exporter_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ModelLoadError, match=r"pip install onnx.*LOOKALIKE_EMBEDDER_RUNTIME=torch"):
        onnx_runtime.efficientnet_lite0_onnx_path(tmp_path)


def test_the_clip_text_tower_in_onnx_gives_the_torch_vectors(tiny_model_dirs, tmp_path):
    """Padded batches and truncation included; the export is made once per weights and reused; the setting picks
    the runtime (auto: ONNX on the CPU)."""
    from transformers import CLIPModel, CLIPProcessor

    from search.pipeline.embedders import ClipEmbedder

    folder = tiny_model_dirs["embedder"]
    model, processor = CLIPModel.from_pretrained(folder).eval(), CLIPProcessor.from_pretrained(folder)
    in_torch = ClipEmbedder(model, processor, model_id="tiny", batch_size=4)
    session = onnx_runtime.OnnxClipText.load(model, tmp_path, threads=1)
    in_onnx = ClipEmbedder(model, processor, model_id="tiny", batch_size=4, text_session=session)
    texts = ["a red summer dress", "boots", "robe écarlate en crêpe", "x" * 500]
    np.testing.assert_allclose(in_onnx.embed_texts(texts), in_torch.embed_texts(texts), atol=1e-5)
    assert (in_torch.text_runtime, in_onnx.text_runtime) == ("torch", "onnx")

    (exported,) = tmp_path.glob("clip-text-*.onnx")
    assert onnx_runtime.clip_text_onnx_path(model, tmp_path) == exported
    changed = CLIPModel.from_pretrained(folder).eval()
    with torch.no_grad():
        changed.text_projection.weight.mul_(2)
    assert onnx_runtime.clip_text_onnx_path(changed, tmp_path) != exported, "other weights, another export"

    def built(runtime: str) -> ClipEmbedder:
        return ClipEmbedder.from_config(
            PipelineConfig(
                device="cpu", embedder_model=str(folder), embedder_runtime=runtime, model_cache_dir=str(tmp_path)
            )
        )

    in_onnx_built, in_torch_built = built("auto"), built("torch")
    assert in_onnx_built.text_runtime == "onnx" and in_torch_built.text_runtime == "torch"
    # the torch text tower is released once ONNX Runtime runs it (one copy of its weights), and texts still embed
    assert in_onnx_built.model.text_model is None and in_torch_built.model.text_model is not None
    np.testing.assert_allclose(in_onnx_built.embed_texts(texts), in_torch.embed_texts(texts), atol=1e-5)
