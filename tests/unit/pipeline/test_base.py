import numpy as np
import pytest
from PIL import Image

from search.pipeline.base import Box, Embedder, PipelineError, UnsupportedOperation, l2_normalize


def test_box_area_tuple_and_pixel_bounds():
    box = Box(10.0, 20.0, 40.5, 60.0, label="dress", score=0.9)
    assert box.area == pytest.approx(30.5 * 40.0)
    assert box.as_tuple() == (10.0, 20.0, 40.5, 60.0)
    assert box.pixel_bounds() == (10, 20, 41, 60)


def test_box_clamped_to_image_keeps_label_and_score():
    box = Box(-5.0, -1.0, 120.0, 50.0, label="shirt", score=0.5).clamped(100, 40)
    assert box == Box(0.0, 0.0, 100.0, 40.0, label="shirt", score=0.5)


def test_box_iou():
    a = Box(0, 0, 10, 10, label="x")
    assert a.iou(Box(5, 0, 15, 10, label="x")) == pytest.approx(50 / 150)
    assert a.iou(Box(20, 20, 30, 30, label="x")) == 0.0
    assert a.iou(a) == pytest.approx(1.0)


def test_whole_box_covers_the_image():
    assert Box.whole(Image.new("RGB", (30, 20))).as_tuple() == (0.0, 0.0, 30.0, 20.0)


def test_l2_normalize_unit_rows_and_zero_row_stays_zero():
    vectors = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, [[0.6, 0.8], [0.0, 0.0]], atol=1e-7)


def test_image_only_embedder_refuses_text_with_a_pipeline_error():
    class ImageOnly(Embedder):
        model_id = "image-only"
        dim = 2

        def embed_images(self, images):
            return np.zeros((len(images), 2), np.float32)

    with pytest.raises(UnsupportedOperation, match="no text tower") as caught:
        ImageOnly().embed_texts(["red dress"])
    assert isinstance(caught.value, PipelineError)
