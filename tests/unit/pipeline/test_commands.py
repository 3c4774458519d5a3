import io
import json

import pytest
from django.core.management import CommandError, call_command

from search.pipeline.loading import MARKER_FILE


def test_download_models_saves_loadable_copies_that_keep_their_identity(tiny_full_settings, tmp_path):
    from transformers import CLIPModel, Florence2Processor, Sam2Model

    output = io.StringIO()
    call_command("download_models", "--to", str(tmp_path), stdout=output)
    saved = {path.name: path for path in tmp_path.iterdir()}
    assert set(saved) == {"florence2", "sam2", "clip"}
    assert json.loads((saved["clip"] / MARKER_FILE).read_text()) == {"model_id": "tiny-random-clip"}
    CLIPModel.from_pretrained(saved["clip"])
    Sam2Model.from_pretrained(saved["sam2"])
    Florence2Processor.from_pretrained(saved["florence2"])
    assert f"LOOKALIKE_EMBEDDER_MODEL={saved['clip']}" in output.getvalue()


def test_download_models_explains_a_model_it_cannot_get(tiny_full_settings, tmp_path):
    tiny_full_settings.LOOKALIKE_DETECTOR_MODEL = str(tmp_path / "missing")
    with pytest.raises(CommandError, match="LOOKALIKE_DETECTOR_MODEL.*does not exist.*network access"):
        call_command("download_models", "--to", str(tmp_path / "out"), stdout=io.StringIO())


def test_warmup_models_loads_and_times_the_pipeline(offline_settings):
    output = io.StringIO()
    call_command("warmup_models", stdout=output)
    text = output.getvalue()
    assert "Pipeline: profile offline: whole-image detector, box segmenter, efficientnet-lite0" in text
    assert "first image" in text and "second image" in text
    assert "Ready: efficientnet-lite0-256-centred-" in text and "vectors of 1280 dimensions." in text
