"""LOOKALIKE_FULL_RUNTIME: the full profile's encoders in OpenVINO agree with PyTorch (tiny random models of
the real classes, real photos), are converted once per cache folder, and the setting's errors are clear."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from search.pipeline import full_openvino
from search.pipeline.base import Box, ModelLoadError, PipelineError
from search.pipeline.config import PipelineConfig
from search.pipeline.detectors import Florence2Detector
from search.pipeline.embedders import ClipEmbedder
from search.pipeline.segmenters import Sam2Segmenter

from .conftest import real_photos, tiny_full_config

pytest.importorskip("openvino")


def _config(tiny_model_dirs, cache_dir, runtime: str) -> PipelineConfig:
    return tiny_full_config(
        tiny_model_dirs,
        full_runtime=runtime,
        embedder_runtime="torch",
        model_cache_dir=str(cache_dir),
        detector_num_beams=2,
        detector_max_new_tokens=12,
    )


@pytest.fixture
def photos() -> list[Image.Image]:
    return [Image.open(path).convert("RGB") for path in real_photos("T-Shirt", 2) + real_photos("Shoes", 1)]


def _iou(a: Image.Image, b: Image.Image) -> float:
    x, y = np.asarray(a) > 0, np.asarray(b) > 0
    union = np.logical_or(x, y).sum()
    return 1.0 if union == 0 else float(np.logical_and(x, y).sum() / union)


def test_sam2_image_encoder_in_openvino_gives_the_same_masks(tiny_model_dirs, tmp_path, photos):
    as_torch = Sam2Segmenter.from_config(_config(tiny_model_dirs, tmp_path, "torch"))
    as_openvino = Sam2Segmenter.from_config(_config(tiny_model_dirs, tmp_path, "openvino"))
    assert (as_torch.runtime, as_openvino.runtime) == ("torch", "openvino")
    assert as_openvino.model.vision_encoder is None  # the torch copy of the encoder is released
    boxes = [[Box(0.1 * p.width, 0.1 * p.height, 0.8 * p.width, 0.9 * p.height, "top"), Box.whole(p)] for p in photos]
    reference, converted = as_torch.segment(photos, boxes), as_openvino.segment(photos, boxes)
    pairs = [pair for masks in zip(reference, converted, strict=True) for pair in zip(*masks, strict=True)]
    ious = [_iou(a, b) for a, b in pairs]
    assert len(ious) == 6 and min(ious) > 0.98
    assert list(tmp_path.glob("sam2-image-encoder-*.xml")) and list(tmp_path.glob("sam2-image-encoder-*.bin"))


def test_florence2_encoders_in_openvino_give_the_same_first_step_and_tokens(tiny_model_dirs, tmp_path, photos):
    import torch

    as_torch = Florence2Detector.from_config(_config(tiny_model_dirs, tmp_path, "torch"))
    as_openvino = Florence2Detector.from_config(_config(tiny_model_dirs, tmp_path, "openvino"))
    assert (as_torch.runtime, as_openvino.runtime) == ("torch", "openvino")
    model = as_torch.model
    with torch.inference_mode():
        inputs = as_torch.processor(text=["<OD>"] * 3, images=photos, return_tensors="pt")
        vision_torch = model.get_image_features(inputs["pixel_values"]).pooler_output.numpy()
        vision_ov = as_openvino.encoders.image_features(inputs["pixel_values"].numpy())
        assert np.abs(vision_torch - vision_ov).max() < 1e-4
        start = torch.full((3, 1), model.config.text_config.decoder_start_token_id)
        first_torch = model(**as_torch.encoder_inputs(photos), decoder_input_ids=start).logits[:, -1]
        first_ov = model(**as_openvino.encoder_inputs(photos), decoder_input_ids=start).logits[:, -1]
    assert torch.allclose(first_torch, first_ov, atol=1e-4)
    assert torch.equal(first_torch.argmax(-1), first_ov.argmax(-1))
    released = as_openvino.model.model
    assert released.vision_tower is None and released.language_model.encoder is None  # only the decoder in torch
    assert as_torch._generate(photos) == as_openvino._generate(photos)  # same beams, same tokens
    assert as_openvino.detect(photos) == as_torch.detect(photos)


@pytest.mark.parametrize("cpu_has_bf16", [True, False])
def test_openvino_bf16_turns_florence2s_decoder_bf16_only_where_the_cpu_runs_bf16(
    tiny_model_dirs, tmp_path, photos, monkeypatch, cpu_has_bf16
):
    import torch

    as_torch = Florence2Detector.from_config(_config(tiny_model_dirs, tmp_path, "torch"))
    monkeypatch.setattr(full_openvino, "cpu_runs_bf16", lambda: cpu_has_bf16)
    as_bf16 = Florence2Detector.from_config(_config(tiny_model_dirs, tmp_path, "openvino-bf16"))
    decoder = as_bf16.model.model.language_model.decoder
    expected = torch.bfloat16 if cpu_has_bf16 else torch.float32
    assert as_bf16.runtime == "openvino" and next(decoder.parameters()).dtype == expected
    with torch.inference_mode():
        inputs = as_bf16.encoder_inputs(photos)
        assert inputs["encoder_outputs"].last_hidden_state.dtype == expected  # the decoder's, from f32 graphs
        start = torch.full((3, 1), as_torch.model.config.text_config.decoder_start_token_id)
        first_torch = as_torch.model(**as_torch.encoder_inputs(photos), decoder_input_ids=start).logits[:, -1]
        first_bf16 = as_bf16.model(**inputs, decoder_input_ids=start).logits[:, -1].float()
    assert torch.equal(first_torch.argmax(-1), first_bf16.argmax(-1))
    assert torch.allclose(first_torch, first_bf16, atol=0.05)
    assert all(isinstance(boxes, list) for boxes in as_bf16.detect(photos))


def test_clip_image_tower_in_openvino_gives_the_same_vectors(tiny_model_dirs, tmp_path, photos):
    as_torch = ClipEmbedder.from_config(_config(tiny_model_dirs, tmp_path, "torch"))
    as_openvino = ClipEmbedder.from_config(_config(tiny_model_dirs, tmp_path, "openvino"))
    assert (as_torch.image_runtime, as_openvino.image_runtime) == ("torch", "openvino")
    reference, converted = as_torch.embed_images(photos), as_openvino.embed_images(photos)
    assert converted.shape == reference.shape and converted.dtype == np.float32
    assert float((reference * converted).sum(axis=1).min()) > 0.9999
    assert as_openvino.model.vision_model is None and as_torch.model.vision_model is not None
    # the text tower still works (torch), with the image tower released
    assert as_openvino.embed_texts(["red dress"]).shape == (1, as_openvino.dim)


def test_conversion_runs_once_per_cache_folder_and_weights(tiny_model_dirs, tmp_path, monkeypatch):
    config = _config(tiny_model_dirs, tmp_path, "openvino")
    ClipEmbedder.from_config(config)
    files = sorted(path.name for path in tmp_path.glob("clip-image-*"))
    assert len(files) == 2
    calls = []
    monkeypatch.setattr(full_openvino, "convert", lambda *args, **kwargs: calls.append(args))
    ClipEmbedder.from_config(config)
    assert calls == []  # read from the cache, not converted again

    import torch
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(tiny_model_dirs["embedder"]).eval()
    before = full_openvino.weights_fingerprint(model.vision_model)
    with torch.no_grad():
        model.vision_model.post_layernorm.weight.add_(0.5)
    assert full_openvino.weights_fingerprint(model.vision_model) != before


def test_runtime_setting_errors_are_clear(monkeypatch):
    with pytest.raises(PipelineError, match="LOOKALIKE_FULL_RUNTIME='onnx' is not one of"):
        full_openvino.resolve_full_runtime("onnx")
    with pytest.raises(PipelineError, match="runs on the CPU only"):
        full_openvino.resolve_full_runtime("openvino", device_type="cuda")
    assert full_openvino.resolve_full_runtime("auto", device_type="cuda") == "torch"
    assert full_openvino.resolve_full_runtime("auto", device_type="cpu") == "torch", "opt-in until memory allows"
    assert full_openvino.resolve_full_runtime("TORCH") == "torch"
    assert full_openvino.resolve_full_runtime("OpenVINO") == "openvino"

    import builtins

    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(ModelLoadError, match="openvino is missing.*LOOKALIKE_FULL_RUNTIME=torch"):
        full_openvino.resolve_full_runtime("openvino")


def test_setting_is_read_into_the_config(settings):
    settings.LOOKALIKE_FULL_RUNTIME = "openvino-bf16"
    assert PipelineConfig.from_settings(settings).full_runtime == "openvino-bf16"
    assert full_openvino.precision_for("openvino-bf16") == "bf16"
    assert full_openvino.precision_for("openvino") == "f32"


def test_auto_keeps_torch_for_a_model_that_is_not_fp32(tiny_model_dirs, tmp_path):
    config = PipelineConfig(device="cpu", dtype="bf16", full_runtime="auto", model_cache_dir=str(tmp_path))
    import torch

    model = torch.nn.Linear(2, 2).to(torch.bfloat16)
    model.dtype = torch.bfloat16
    assert full_openvino.runtime_for(config, model) == "torch"
    explicit = PipelineConfig(device="cpu", dtype="bf16", full_runtime="openvino", model_cache_dir=str(tmp_path))
    with pytest.raises(PipelineError, match="LOOKALIKE_DTYPE must be fp32"):
        full_openvino.runtime_for(explicit, model)


def test_the_full_profile_runs_its_encoders_in_openvino_when_chosen(tiny_full_settings, tmp_path):
    from search.pipeline.registry import get_pipeline

    tiny_full_settings.LOOKALIKE_MODEL_CACHE_DIR = str(tmp_path)
    tiny_full_settings.LOOKALIKE_FULL_RUNTIME = "openvino"
    pipeline = get_pipeline()
    assert (pipeline.detector.runtime, pipeline.segmenter.runtime, pipeline.embedder.image_runtime) == (
        "openvino",
        "openvino",
        "openvino",
    )
    photo = Image.open(real_photos("T-Shirt", 1)[0]).convert("RGB")
    assert len(pipeline.process([photo])) == 1


def test_a_graph_shared_by_threads_gives_each_call_its_own_answer(tiny_model_dirs, tmp_path, photos):
    """Every call releases the graph's activation memory afterwards (a worker holds four graphs): web threads
    sharing one graph still get their own, correct outputs while others run or release."""
    from concurrent.futures import ThreadPoolExecutor

    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(tiny_model_dirs["embedder"]).eval()
    processor = CLIPProcessor.from_pretrained(tiny_model_dirs["embedder"])
    tower = full_openvino.clip_image_tower(model, tmp_path, threads=1)
    inputs = [processor(images=[photo], return_tensors="np")["pixel_values"].astype(np.float32) for photo in photos]
    expected = [tower(pixels)[0] for pixels in inputs]
    assert not np.allclose(expected[0], expected[2])  # different photos, different vectors
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda index: (index, tower(inputs[index])[0]), [0, 1, 2] * 8))
    for index, answer in answers:
        np.testing.assert_allclose(answer, expected[index], atol=1e-6)
