import numpy as np
import pytest
from PIL import Image

from search.pipeline.base import Box, PipelineError
from search.pipeline.cutout import MaskCutter


@pytest.fixture
def photo() -> Image.Image:
    return Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 60, 3), dtype=np.uint8))


@pytest.fixture
def mask() -> Image.Image:
    """A garment-shaped (non-rectangular) mask spanning x 10..29, y 5..24."""
    values = np.zeros((40, 60), np.uint8)
    values[5:25, 10:30] = 255
    values[5:10, 15:25] = 0  # a neckline notch
    return Image.fromarray(values)


def test_alpha_is_the_mask_and_the_cutout_is_trimmed_to_it(photo, mask):
    cutout = MaskCutter(padding=0).cut(photo, Box(0, 0, 60, 40, label="shirt"), mask)
    assert cutout.from_mask
    assert cutout.rgba.mode == "RGBA" and cutout.rgba.size == (20, 20)
    rgba = np.asarray(cutout.rgba)
    np.testing.assert_array_equal(rgba[..., 3], np.asarray(mask)[5:25, 10:30])
    np.testing.assert_array_equal(rgba[..., :3], np.asarray(photo)[5:25, 10:30])


def test_padding_grows_the_trim_box_within_the_image(photo, mask):
    cutout = MaskCutter(padding=0.1).cut(photo, Box(0, 0, 60, 40, label="shirt"), mask)
    assert cutout.rgba.size == (24, 24)  # 2 px (10% of 20) on each side
    alpha = np.asarray(cutout.rgba)[..., 3]
    assert alpha[:2].max() == 0 and alpha[:, :2].max() == 0  # the padding is transparent


def test_embedder_input_is_the_garment_on_white(photo, mask):
    cutout = MaskCutter(background="white", padding=0).cut(photo, Box(0, 0, 60, 40, label="shirt"), mask)
    embed = np.asarray(cutout.embed_input)
    inside = np.asarray(mask)[5:25, 10:30] > 0
    assert cutout.embed_input.mode == "RGB"
    np.testing.assert_array_equal(embed[inside], np.asarray(photo)[5:25, 10:30][inside])
    assert (embed[~inside] == 255).all()


def test_keep_background_gives_the_plain_crop(photo, mask):
    cutout = MaskCutter(background="keep", padding=0).cut(photo, Box(0, 0, 60, 40, label="shirt"), mask)
    np.testing.assert_array_equal(np.asarray(cutout.embed_input), np.asarray(photo)[5:25, 10:30])


def test_empty_mask_falls_back_to_the_box(photo):
    empty = Image.new("L", photo.size, 0)
    cutout = MaskCutter(padding=0).cut(photo, Box(30.0, 10.0, 50.0, 30.0, label="bag"), empty)
    assert not cutout.from_mask
    assert cutout.rgba.size == (20, 20)
    assert (np.asarray(cutout.rgba)[..., 3] == 255).all()


def test_mask_of_another_size_is_an_error(photo):
    with pytest.raises(PipelineError, match="mask size"):
        MaskCutter().cut(photo, Box(0, 0, 10, 10, label="x"), Image.new("L", (10, 10), 255))


def test_unknown_background_is_refused():
    with pytest.raises(PipelineError, match="background"):
        MaskCutter(background="transparent")
