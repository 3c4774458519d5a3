"""The whole pipeline on tiny real-class models (Florence-2, SAM 2, CLIP): shapes, fallback, batching."""

import numpy as np
import pytest
import torch
from PIL import Image

from search.pipeline.base import Box, GarmentResult


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_model_dirs):
    """Built once for the module straight from a config (the settings path is tested in test_registry)."""
    from search.pipeline.registry import build_pipeline

    from .conftest import tiny_full_config

    return build_pipeline(tiny_full_config(tiny_model_dirs))


def photo(size=(120, 90)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    image.paste((200, 30, 30), (size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4))
    return image


def check_result(result: GarmentResult, image_size, dim: int) -> None:
    assert (result.mask.mode, result.mask.size) == ("L", image_size)
    assert set(np.unique(np.asarray(result.mask))) <= {0, 255}
    assert result.cutout.mode == "RGBA"
    assert result.cutout.width <= image_size[0] and result.cutout.height <= image_size[1]
    assert result.embedding.shape == (dim,) and result.embedding.dtype == np.float32
    assert np.linalg.norm(result.embedding) == pytest.approx(1.0, abs=1e-5)


def test_random_florence_junk_falls_back_to_the_whole_image(tiny_pipeline):
    images = [photo(), photo((60, 100))]
    results = tiny_pipeline.process(images)
    assert len(results) == 2
    for image, garments in zip(images, results, strict=True):
        assert len(garments) >= 1
        for garment in garments:
            check_result(garment, image.size, dim=16)
    assert tiny_pipeline.profile == "full"
    assert (tiny_pipeline.embedder_id, tiny_pipeline.embedding_dim) == ("tiny-random-clip", 16)


def force_answer(pipeline, monkeypatch, answer: str) -> None:
    """Make the tiny Florence-2 'say' a known answer, so the detected path is exercised end to end."""
    tokenizer = pipeline.detector.processor.tokenizer
    ids = tokenizer.encode(answer, add_special_tokens=False)

    def generate(**kwargs):
        return torch.tensor([ids] * kwargs["input_ids"].shape[0])

    monkeypatch.setattr(pipeline.detector.model, "generate", generate)


def test_detected_garments_are_segmented_cut_and_embedded(tiny_pipeline, monkeypatch):
    force_answer(
        tiny_pipeline,
        monkeypatch,
        "</s><s>shirt<loc_100><loc_100><loc_500><loc_500>jeans<loc_150><loc_500><loc_550><loc_990>"
        "person<loc_0><loc_0><loc_999><loc_999></s>",
    )
    image = photo((200, 100))
    garments = tiny_pipeline.process_image(image)
    assert [garment.box.label for garment in garments] == ["pants", "shirt"]  # largest first, person dropped
    assert garments[1].box.as_tuple() == pytest.approx((20.1, 10.05, 100.1, 50.05))
    assert not any(garment.whole_image_fallback for garment in garments)
    for garment in garments:
        check_result(garment, image.size, dim=16)


def test_no_garment_found_is_flagged_as_whole_image_fallback(tiny_pipeline, monkeypatch):
    force_answer(tiny_pipeline, monkeypatch, "</s><s>person<loc_0><loc_0><loc_999><loc_999></s>")
    image = photo()
    (garment,) = tiny_pipeline.process_image(image)
    assert garment.whole_image_fallback
    assert garment.box == Box(0, 0, image.width, image.height, label="garment")


def test_cutouts_of_all_images_are_embedded_in_one_call(tiny_pipeline, monkeypatch):
    calls = []
    original = tiny_pipeline.embedder.embed_images

    def spy(images):
        calls.append(len(images))
        return original(images)

    monkeypatch.setattr(tiny_pipeline.embedder, "embed_images", spy)
    results = tiny_pipeline.process([photo(), photo(), photo((50, 50))])
    assert calls == [sum(len(garments) for garments in results)]


def test_large_images_are_processed_at_max_side(tiny_pipeline):
    (garment, *_) = tiny_pipeline.process_image(photo((4000, 1000)))
    assert garment.mask.size == (1600, 400)


def test_text_embeddings_share_the_image_space(tiny_pipeline):
    vectors = tiny_pipeline.embed_text(["red dress", "white sneakers"])
    assert vectors.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert tiny_pipeline.supports_text


def test_repeated_texts_are_encoded_once_and_the_oldest_forgotten(tiny_pipeline, monkeypatch):
    """The pipeline's text cache: the tower sees each new text once, a cached vector is the tower's own, a
    caller changing its copy changes nothing, and past ``size`` texts the least recently used goes."""
    from search.pipeline.runner import TextVectorCache

    monkeypatch.setattr(tiny_pipeline, "text_cache", TextVectorCache(size=2))
    fresh = tiny_pipeline.embedder.embed_texts
    calls = []
    monkeypatch.setattr(tiny_pipeline.embedder, "embed_texts", lambda texts: calls.append(list(texts)) or fresh(texts))

    first = tiny_pipeline.embed_text(["red dress", "blue jeans", "red dress"])
    assert calls == [["red dress", "blue jeans"]] and first.shape == (3, 16)
    np.testing.assert_allclose(first[0], fresh(["red dress"])[0], rtol=1e-5)
    first[:] = 0  # the caller's copy
    again = tiny_pipeline.embed_text(["blue jeans", "red dress"])
    assert len(calls) == 1, "both were remembered"
    np.testing.assert_allclose(again, fresh(["blue jeans", "red dress"]), rtol=1e-5)

    tiny_pipeline.embed_text(["wool coat"])  # a third text: "blue jeans" is the least recently used
    tiny_pipeline.embed_text(["red dress"])
    assert calls[1:] == [["wool coat"]]
    tiny_pipeline.embed_text(["blue jeans"])
    assert calls[2:] == [["blue jeans"]]


def test_empty_batch_gives_empty_results(tiny_pipeline):
    assert tiny_pipeline.process([]) == []


def test_process_boxes_embeds_the_chosen_regions_without_detection(tiny_pipeline, monkeypatch):
    monkeypatch.setattr(tiny_pipeline.detector, "detect", lambda images: pytest.fail("no detection expected"))
    image = photo((200, 100))
    garments = tiny_pipeline.process_boxes(image, [Box(10, 10, 90, 60, label="selection"), Box(150, 50, 260, 140, "x")])
    assert [garment.box.as_tuple() for garment in garments] == [(10, 10, 90, 60), (150, 50, 200, 100)]  # clamped
    assert not any(garment.whole_image_fallback for garment in garments)
    for garment in garments:
        check_result(garment, image.size, dim=16)
    assert tiny_pipeline.process_boxes(image, []) == []
