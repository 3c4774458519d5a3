import numpy as np
import pytest
import torch
from PIL import Image

from search.pipeline.base import Box
from search.pipeline.segmenters import BoxSegmenter, Sam2Segmenter, masks_from_logits, sam2_preprocess


def test_sam2_preprocess_normalises_pixels_and_scales_boxes():
    image = Image.new("RGB", (200, 100), (255, 128, 0))
    pixels, boxes = sam2_preprocess(image, [Box(10, 20, 110, 70, label="dress")])
    assert pixels.shape == (3, 1024, 1024) and pixels.dtype == np.float32
    # (value / 255 - ImageNet mean) / ImageNet std, computed by hand for (255, 128, 0):
    expected = [(1.0 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (0.0 - 0.406) / 0.225]
    np.testing.assert_allclose(pixels[:, 500, 700], expected, rtol=1e-5)
    assert expected == pytest.approx([2.2489, 0.2052, -1.8044], abs=1e-4)
    # x scaled by 1024 / 200 = 5.12, y by 1024 / 100 = 10.24
    np.testing.assert_allclose(boxes, [[51.2, 204.8, 563.2, 716.8]], rtol=1e-6)


def test_sam2_preprocess_resizes_without_keeping_aspect():
    image = Image.new("RGB", (40, 10), (255, 0, 0))
    image.paste((0, 0, 255), (20, 0, 40, 10))  # right half blue
    pixels, boxes = sam2_preprocess(image, [], size=8)
    red = (1.0 - 0.485) / 0.229
    assert pixels.shape == (3, 8, 8)
    np.testing.assert_allclose(pixels[0, :, :3], red, rtol=1e-5)  # left columns stay red at every row
    assert (pixels[0, :, 5:] < 0).all()  # right columns have no red
    assert boxes.shape == (0, 4)


def test_masks_from_logits_upsamples_bilinearly_and_thresholds_at_zero():
    logits = torch.tensor([[[1.0, -1.0], [-1.0, -1.0]]])
    (mask,) = masks_from_logits(logits, (4, 4))
    expected = np.zeros((4, 4), np.uint8)
    expected[:2, :2] = 255  # bilinear: (1,1) gets 0.5625 - 0.4375 > 0, (1,2) gets < 0
    assert mask.mode == "L"
    np.testing.assert_array_equal(np.asarray(mask), expected)


def test_box_segmenter_masks_exactly_the_box():
    image = Image.new("RGB", (10, 8))
    (masks,) = BoxSegmenter().segment([image], [[Box(2.0, 1.0, 5.5, 4.0, label="shirt")]])
    expected = np.zeros((8, 10), np.uint8)
    expected[1:4, 2:6] = 255
    np.testing.assert_array_equal(np.asarray(masks[0]), expected)


@pytest.fixture(scope="module")
def tiny_sam2(tiny_model_dirs):
    from transformers import Sam2Model

    return Sam2Segmenter(Sam2Model.from_pretrained(tiny_model_dirs["segmenter"]).eval())


def test_sam2_segmenter_encodes_each_image_once_for_all_its_boxes(tiny_sam2):
    encoder_calls = []
    hook = tiny_sam2.model.vision_encoder.register_forward_hook(lambda *args: encoder_calls.append(1))
    try:
        images = [Image.new("RGB", (90, 60), "white"), Image.new("RGB", (50, 70), "gray"), Image.new("RGB", (9, 9))]
        boxes = [
            [Box(0, 0, 45, 30, label="shirt"), Box(40, 20, 90, 60, label="pants"), Box(5, 5, 20, 20, label="hat")],
            [Box(10, 10, 40, 60, label="dress")],
            [],
        ]
        masks = tiny_sam2.segment(images, boxes)
    finally:
        hook.remove()
    assert len(encoder_calls) == 2  # one pass per image with boxes, none for the image without
    assert [len(image_masks) for image_masks in masks] == [3, 1, 0]
    for image, image_masks in zip(images, masks, strict=True):
        for mask in image_masks:
            assert (mask.mode, mask.size) == ("L", image.size)
            assert set(np.unique(np.asarray(mask))) <= {0, 255}


def test_sam2_segmenter_uses_the_models_input_size(tiny_sam2):
    assert tiny_sam2.input_size == 128  # the tiny model's prompt-encoder image size, not a hard-coded 1024
