import numpy as np
import pytest
import torch
from PIL import Image

from core.photos import load_image
from search.pipeline.base import ModelLoadError, PipelineError, UnsupportedOperation, l2_normalize
from search.pipeline.embedders import ClipEmbedder, imagenet_batch, projected_embeddings
from search.pipeline.loading import model_id_for

from .conftest import real_photos


@pytest.fixture(scope="module")
def tiny_clip(tiny_model_dirs):
    from transformers import CLIPModel, CLIPProcessor

    folder = tiny_model_dirs["embedder"]
    model = CLIPModel.from_pretrained(folder).eval()
    return ClipEmbedder(model, CLIPProcessor.from_pretrained(folder), model_id=model_id_for(str(folder)), batch_size=2)


def images(count: int) -> list[Image.Image]:
    rng = np.random.default_rng(3)
    return [Image.fromarray(rng.integers(0, 255, (20 + 7 * i, 30, 3), dtype=np.uint8)) for i in range(count)]


def test_v5_image_features_are_the_projected_pooled_output(tiny_clip):
    """transformers 5 returns an output object; its pooler_output must be the projected embedding."""
    model = tiny_clip.model
    pixels = tiny_clip.pixel_values(images(2))
    with torch.inference_mode():
        output = model.get_image_features(pixel_values=pixels)
        expected = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
    assert not isinstance(output, torch.Tensor)  # the v5 behaviour this code exists for
    torch.testing.assert_close(projected_embeddings(output), expected)
    assert projected_embeddings(output).shape == (2, tiny_clip.dim)


def test_projected_embeddings_accepts_tensors_and_rejects_unknown_outputs():
    tensor = torch.ones(1, 4)
    assert projected_embeddings(tensor) is tensor
    with pytest.raises(PipelineError, match="pooler_output"):
        projected_embeddings(object())


def test_clip_image_embeddings_are_batched_normalised_float32(tiny_clip):
    batch = images(5)
    vectors = tiny_clip.embed_images(batch)  # batch_size 2: three model calls
    assert vectors.shape == (5, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    one_by_one = np.concatenate([tiny_clip.embed_images([image]) for image in batch])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)
    model = tiny_clip.model
    with torch.inference_mode():
        raw = model.visual_projection(model.vision_model(pixel_values=tiny_clip.pixel_values(batch)).pooler_output)
    np.testing.assert_allclose(vectors, torch.nn.functional.normalize(raw, dim=-1).numpy(), atol=1e-5)


def test_clip_text_embeddings_match_the_text_tower(tiny_clip):
    texts = ["a red summer dress", "black leather boots", "x" * 500]  # the last is truncated to 77 tokens
    vectors = tiny_clip.embed_texts(texts)
    assert vectors.shape == (3, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    model = tiny_clip.model
    tokens = tiny_clip.processor(text=texts[:2], return_tensors="pt", padding=True)
    with torch.inference_mode():
        raw = model.text_projection(model.text_model(**tokens).pooler_output)
    np.testing.assert_allclose(vectors[:2], torch.nn.functional.normalize(raw, dim=-1).numpy(), atol=1e-5)


def test_clip_model_id_comes_from_the_download_marker(tiny_clip):
    assert tiny_clip.model_id == "tiny-random-clip"
    assert tiny_clip.supports_text and tiny_clip.dim == 16


def test_imagenet_batch_resizes_crops_and_normalises():
    image = Image.new("RGB", (512, 256), (255, 128, 0))
    image.paste((0, 0, 255), (0, 0, 128, 256))  # left quarter blue: cut off by the centre crop
    batch = imagenet_batch([image])
    assert batch.shape == (1, 3, 256, 256) and batch.dtype == np.float32  # shorter side to 292, centre 256
    expected = [(1.0 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (0.0 - 0.406) / 0.225]
    np.testing.assert_allclose(batch[0, :, :, 0], np.broadcast_to(np.array(expected)[:, None], (3, 256)), rtol=1e-4)
    assert imagenet_batch([image], crop=224, resize=256).shape == (1, 3, 224, 224)


def test_efficientnet_embedder_is_image_only_1280d_normalised(efficientnet_embedder):
    vectors = efficientnet_embedder.embed_images(images(3))
    assert vectors.shape == (3, 1280) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert efficientnet_embedder.model_id == "efficientnet-lite0-256" and not efficientnet_embedder.supports_text
    with pytest.raises(UnsupportedOperation):
        efficientnet_embedder.embed_texts(["dress"])


def test_efficientnet_sees_a_photo_and_its_crop_as_similar(efficientnet_embedder):
    (path,) = real_photos("T-Shirt", 1)
    (other,) = real_photos("Shoes", 1)
    photo = load_image(path, max_side=800)
    crop = photo.crop((photo.width // 10, photo.height // 10, photo.width * 9 // 10, photo.height * 9 // 10))
    vectors = efficientnet_embedder.embed_images([photo, crop, load_image(other, max_side=800)])
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_bundled_garment_mean_spreads_unrelated_garments_and_names_its_own_space(efficientnet_embedder):
    from search.pipeline.embedders import EfficientNetLiteEmbedder, load_center

    center = load_center("bundled")
    centred = EfficientNetLiteEmbedder(efficientnet_embedder.model, center=center)
    paths = [path for category in ("T-Shirt", "Shoes", "Pants") for path in real_photos(category, 2)]
    photos = [load_image(path, max_side=800) for path in paths]
    raw, moved = efficientnet_embedder.embed_images(photos), centred.embed_images(photos)
    np.testing.assert_allclose(np.linalg.norm(moved, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(moved, l2_normalize(raw - center), atol=1e-5)  # normalise, subtract, normalise
    unrelated = [(0, 2), (0, 4), (2, 4), (1, 3), (1, 5), (3, 5)]  # pairs of different categories
    assert np.mean([moved[a] @ moved[b] for a, b in unrelated]) < np.mean([raw[a] @ raw[b] for a, b in unrelated]) - 0.1
    assert centred.model_id.startswith("efficientnet-lite0-256-centred-")
    assert centred.model_id != efficientnet_embedder.model_id
    other = EfficientNetLiteEmbedder(efficientnet_embedder.model, center=center * 0.5)
    assert other.model_id != centred.model_id, "another centre, another embedding space: vectors never mix"


def test_bundled_category_metric_brings_same_category_garments_closer(efficientnet_embedder):
    from search.pipeline.embedders import EfficientNetLiteEmbedder, load_category_metric, load_center

    center, metric = load_center("bundled"), load_category_metric("bundled")
    centred = EfficientNetLiteEmbedder(efficientnet_embedder.model, center=center)
    learned = EfficientNetLiteEmbedder(efficientnet_embedder.model, center=center, metric=metric)
    paths = [path for category in ("T-Shirt", "Shoes", "Pants") for path in real_photos(category, 2)]
    photos = [load_image(path, max_side=800) for path in paths]
    before, after = centred.embed_images(photos), learned.embed_images(photos)
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(after, metric.apply(before), atol=1e-5)  # applied after centring

    def margin(vectors):  # mean cosine of same-category pairs minus that of different-category pairs
        same = [vectors[a] @ vectors[a + 1] for a in (0, 2, 4)]
        other = [vectors[a] @ vectors[b] for a in range(6) for b in range(a + 1, 6) if a // 2 != b // 2]
        return np.mean(same) - np.mean(other)

    assert margin(after) > margin(before) + 0.05
    assert learned.model_id.startswith(centred.model_id + "-metric-"), "a metric makes an embedding space of its own"


def test_category_metric_stretches_only_its_directions():
    from search.pipeline.embedders import CategoryMetric

    directions = np.zeros((1280, 2), dtype=np.float32)
    directions[0, 0] = directions[1, 1] = 1.0
    metric = CategoryMetric(directions=directions, gains=np.array([3.0, 0.0], dtype=np.float32))
    vector = np.zeros((1, 1280), dtype=np.float32)
    vector[0, [0, 1, 2]] = 1 / np.sqrt(3)
    out = metric.apply(vector)[0]
    np.testing.assert_allclose(out[:3], np.array([4.0, 1.0, 1.0]) / np.sqrt(18), rtol=1e-5)
    assert not out[3:].any()
    outside = np.zeros((1, 1280), dtype=np.float32)
    outside[0, 5] = 1.0
    np.testing.assert_allclose(metric.apply(outside), outside)  # no component along a direction: unchanged
    assert CategoryMetric(directions=directions, gains=np.array([1.0, 0.0], np.float32)).digest != metric.digest


def test_a_bad_category_metric_file_is_a_clear_load_error(tmp_path):
    from search.pipeline.embedders import load_category_metric

    with pytest.raises(ModelLoadError, match="Could not load the embedding metric"):
        load_category_metric(str(tmp_path / "missing.npz"))
    no_gains = tmp_path / "no_gains.npz"
    np.savez(no_gains, directions=np.eye(1280, 4, dtype=np.float32))
    with pytest.raises(ModelLoadError, match="Could not load the embedding metric"):
        load_category_metric(str(no_gains))
    cases = {
        "shape.npz": (np.eye(512, 4), np.ones(4), "directions of shape"),
        "negative.npz": (np.eye(1280, 4), -np.ones(4), "gains >= 0"),
        "skewed.npz": (np.eye(1280, 4) * 2, np.ones(4), "orthonormal"),
    }
    for name, (directions, gains, message) in cases.items():
        np.savez(tmp_path / name, directions=directions.astype(np.float32), gains=gains.astype(np.float32))
        with pytest.raises(ModelLoadError, match=message):
            load_category_metric(str(tmp_path / name))


@pytest.mark.parametrize("setting", ["", "off", "none"])
def test_embedding_centre_and_metric_can_be_switched_off(setting):
    from search.pipeline.embedders import load_category_metric, load_center

    assert load_center(setting) is None
    assert load_category_metric(setting) is None


def test_a_bad_embedding_centre_file_is_a_clear_load_error(tmp_path):
    from search.pipeline.embedders import load_center

    with pytest.raises(ModelLoadError, match="Could not load the embedding centre"):
        load_center(str(tmp_path / "missing.npy"))
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.ones(512, dtype=np.float32))
    with pytest.raises(ModelLoadError, match="1280 finite numbers"):
        load_center(str(wrong))
