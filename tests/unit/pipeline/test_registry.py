import logging
import threading
import time

import pytest

from search.pipeline import registry
from search.pipeline.base import ModelLoadError, PipelineError, UnsupportedOperation
from search.pipeline.detectors import Florence2Detector, WholeImageDetector
from search.pipeline.embedders import ClipEmbedder, EfficientNetLiteEmbedder
from search.pipeline.loading import is_available_offline, model_id_for
from search.pipeline.segmenters import BoxSegmenter, Sam2Segmenter

MISSING_HUB_MODELS = {
    "LOOKALIKE_DETECTOR_MODEL": "lookalike-tests/no-such-detector",
    "LOOKALIKE_SEGMENTER_MODEL": "lookalike-tests/no-such-segmenter",
    "LOOKALIKE_EMBEDDER_MODEL": "lookalike-tests/no-such-embedder",
}


def test_offline_profile_needs_no_model_hub(offline_settings):
    pipeline = registry.get_pipeline()
    assert isinstance(pipeline.detector, WholeImageDetector)
    assert isinstance(pipeline.segmenter, BoxSegmenter)
    assert isinstance(pipeline.embedder, EfficientNetLiteEmbedder)
    assert (pipeline.profile, pipeline.embedding_dim) == ("offline", 1280)
    assert pipeline.embedder_id.startswith("efficientnet-lite0-256-centred-"), (
        "the bundled garment mean is on by default"
    )
    assert "-metric-" in pipeline.embedder_id, "and so is the bundled category metric"
    assert registry.describe() == "profile offline: whole-image detector, box segmenter, efficientnet-lite0"
    with pytest.raises(UnsupportedOperation):
        pipeline.embed_text(["red dress"])


def test_auto_falls_back_to_offline_with_a_warning_when_models_are_missing(settings, fresh_pipeline, caplog):
    settings.LOOKALIKE_PROFILE = "auto"
    settings.LOOKALIKE_DEVICE = "cpu"
    for name, value in MISSING_HUB_MODELS.items():
        setattr(settings, name, value)
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="search.pipeline"):
        pipeline = registry.get_pipeline()
    assert time.perf_counter() - start < 30  # no network wait
    assert pipeline.profile == "offline"
    assert "no model hub reachable" in pipeline.describe()
    (warning,) = [
        record for record in caplog.records if record.name == "search.pipeline" and record.levelno == logging.WARNING
    ]
    assert "offline profile" in warning.getMessage()
    assert "lookalike-tests/no-such-detector (LOOKALIKE_DETECTOR_MODEL)" in warning.getMessage()


def test_auto_uses_the_full_profile_when_the_models_are_local(tiny_full_settings):
    tiny_full_settings.LOOKALIKE_PROFILE = "auto"
    pipeline = registry.get_pipeline()
    assert pipeline.profile == "full"
    assert isinstance(pipeline.detector, Florence2Detector)
    assert isinstance(pipeline.segmenter, Sam2Segmenter)
    assert isinstance(pipeline.embedder, ClipEmbedder)
    assert pipeline.describe() == "profile full: Florence-2 detector, SAM 2 segmenter, tiny-random-clip"


def test_full_profile_with_a_missing_model_names_the_setting_and_the_fix(tiny_full_settings, tmp_path):
    tiny_full_settings.LOOKALIKE_SEGMENTER_MODEL = str(tmp_path / "no-sam2-here")
    with pytest.raises(ModelLoadError) as caught:
        registry.get_pipeline()
    message = str(caught.value)
    assert "LOOKALIKE_SEGMENTER_MODEL" in message
    assert "does not exist" in message
    assert "manage.py download_models --to DIR" in message and "LOOKALIKE_PROFILE=offline" in message


def test_a_stage_can_be_overridden_by_name_or_dotted_path(tiny_full_settings):
    tiny_full_settings.LOOKALIKE_DETECTOR = "whole-image"
    tiny_full_settings.LOOKALIKE_SEGMENTER = "search.pipeline.segmenters.BoxSegmenter"
    pipeline = registry.get_pipeline()
    assert isinstance(pipeline.detector, WholeImageDetector)
    assert isinstance(pipeline.segmenter, BoxSegmenter)
    assert isinstance(pipeline.embedder, ClipEmbedder)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LOOKALIKE_DETECTOR", "yolo", "LOOKALIKE_DETECTOR='yolo' is neither a known detector"),
        ("LOOKALIKE_EMBEDDER", "nowhere.Embedder", "LOOKALIKE_EMBEDDER='nowhere.Embedder': cannot import"),
        ("LOOKALIKE_PROFILE", "fast", "LOOKALIKE_PROFILE='fast' is not one of"),
        ("LOOKALIKE_LABEL_MAP", "{not json", "LOOKALIKE_LABEL_MAP is not valid JSON"),
        ("LOOKALIKE_LABEL_MAP", "[1, 2]", "LOOKALIKE_LABEL_MAP must be a JSON object"),
        ("LOOKALIKE_DTYPE", "int8", "LOOKALIKE_DTYPE='int8'"),
    ],
)
def test_bad_settings_are_explained(offline_settings, name, value, message):
    setattr(offline_settings, name, value)
    with pytest.raises(PipelineError, match=message.replace("(", r"\(").replace("[", r"\[")):
        registry.get_pipeline()


def test_label_map_setting_reaches_the_detector(tiny_full_settings):
    tiny_full_settings.LOOKALIKE_LABEL_MAP = '{"tunic": "top", "dress": null}'
    tiny_full_settings.LOOKALIKE_MIN_BOX_AREA = 0.05
    detector = registry.get_pipeline().detector
    assert detector.label_map["tunic"] == "top" and detector.label_map["dress"] is None
    assert detector.label_map["jeans"] == "pants"
    assert detector.min_area_fraction == 0.05


def test_the_pipeline_is_built_once_for_concurrent_first_requests(offline_settings, monkeypatch):
    builds = []
    real_build = registry.build_pipeline

    def slow_build(config):
        builds.append(config)
        time.sleep(0.2)
        return real_build(config)

    monkeypatch.setattr(registry, "build_pipeline", slow_build)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(registry.get_pipeline())) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1
    assert len(seen) == 6 and all(pipeline is seen[0] for pipeline in seen)


def test_reset_pipeline_rebuilds_from_current_settings(offline_settings):
    first = registry.get_pipeline()
    assert registry.get_pipeline() is first
    registry.reset_pipeline()
    assert registry.get_pipeline() is not first


def test_model_identity_and_offline_availability(tiny_model_dirs, tmp_path):
    assert model_id_for("patrickjohncyh/fashion-clip") == "patrickjohncyh/fashion-clip"
    assert model_id_for(str(tiny_model_dirs["embedder"])) == "tiny-random-clip"  # from the marker file
    assert model_id_for(str(tmp_path)) == str(tmp_path.resolve())  # no marker: the folder itself
    assert is_available_offline(str(tiny_model_dirs["segmenter"]))
    assert not is_available_offline(str(tmp_path))
    assert not is_available_offline("lookalike-tests/no-such-model")


def test_device_and_dtype_choice():
    import torch

    from search.pipeline.device import resolve_device, resolve_dtype

    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_device("cpu") == cpu
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(PipelineError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_uncached_hub_model_fails_fast_without_network_when_local_only():
    from transformers import CLIPModel

    from search.pipeline.loading import load_pretrained

    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as caught:
        load_pretrained(
            CLIPModel, "lookalike-tests/no-such-model", what="embedder", setting="LOOKALIKE_EMBEDDER_MODEL",
            local_files_only=True,
        )  # fmt: skip
    assert time.perf_counter() - start < 10
    assert str(caught.value).startswith(
        "Could not load embedder model 'lookalike-tests/no-such-model' (setting LOOKALIKE_EMBEDDER_MODEL): "
        "not in the local Hugging Face cache; no download attempted"
    )
