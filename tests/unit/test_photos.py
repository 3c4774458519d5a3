import io

import numpy as np
import pytest
from PIL import Image

from core.photos import PhotoError, load_image


def encode(image: Image.Image, format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **params)
    return buffer.getvalue()


def pixel(image: Image.Image, xy=(0, 0)) -> tuple:
    return image.getpixel(xy)


def test_rgb_png_round_trips():
    image = load_image(encode(Image.new("RGB", (8, 6), (10, 20, 30)), "PNG"), max_side=100)
    assert (image.mode, image.size, pixel(image)) == ("RGB", (8, 6), (10, 20, 30))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (Image.new("RGBA", (4, 4), (255, 0, 0, 0)), (255, 255, 255)),  # fully transparent -> white
        (Image.new("RGBA", (4, 4), (255, 0, 0, 255)), (255, 0, 0)),
        (Image.new("RGBA", (4, 4), (0, 0, 0, 128)), (127, 127, 127)),  # half black over white
        (Image.new("LA", (4, 4), (0, 0)), (255, 255, 255)),
        (Image.new("LA", (4, 4), (40, 255)), (40, 40, 40)),
        (Image.new("L", (4, 4), 200), (200, 200, 200)),
        (Image.new("1", (4, 4), 1), (255, 255, 255)),
        (Image.new("CMYK", (4, 4), (0, 255, 255, 0)), (255, 0, 0)),
    ],
    ids=["rgba-clear", "rgba-opaque", "rgba-half", "la-clear", "la-opaque", "l", "1", "cmyk"],
)
def test_colour_modes_become_rgb(source, expected):
    image = load_image(encode(source, "TIFF" if source.mode == "CMYK" else "PNG"), max_side=100)
    assert image.mode == "RGB"
    assert pixel(image) == pytest.approx(expected, abs=1)


@pytest.mark.parametrize(
    ("mode", "colour", "expected"), [("CMYK", (0, 255, 255, 0), (255, 0, 0)), ("L", 90, (90,) * 3)]
)
def test_jpeg_decoded_at_reduced_scale_keeps_its_colours(mode, colour, expected):
    image = load_image(encode(Image.new(mode, (2000, 1000), colour), "JPEG", quality=95), max_side=400)
    assert (image.mode, image.size) == ("RGB", (400, 200))
    assert pixel(image, (5, 5)) == pytest.approx(expected, abs=3)


def test_palette_with_transparency_is_composited_on_white():
    palette_image = Image.new("P", (4, 4), 0)
    palette_image.putpalette([0, 0, 255] + [0, 0, 0] * 255)
    palette_image.info["transparency"] = 0
    assert pixel(load_image(encode(palette_image, "PNG", transparency=0), max_side=100)) == (255, 255, 255)


def test_palette_without_transparency_keeps_its_colour():
    palette_image = Image.new("P", (4, 4), 0)
    palette_image.putpalette([0, 0, 255] + [0, 0, 0] * 255)
    assert pixel(load_image(encode(palette_image, "PNG"), max_side=100)) == (0, 0, 255)


def test_16_bit_greyscale_is_scaled_not_clipped():
    values = np.array([[0, 32896, 65535]], dtype=np.uint16)  # 0, 50%, 100%
    image = load_image(encode(Image.fromarray(values), "PNG"), max_side=100)
    assert [pixel(image, (x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_32_bit_int_and_float_images_are_scaled():
    wide = Image.fromarray(np.array([[0, 65535]], dtype=np.int32))
    assert [pixel(load_image(encode(wide, "TIFF"), max_side=100), (x, 0))[0] for x in range(2)] == [0, 255]
    unit_float = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert [pixel(load_image(encode(unit_float, "TIFF"), max_side=100), (x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_exif_orientation_is_applied():
    # Stored landscape: left half red, right half blue; orientation 6 means "rotate 90 degrees clockwise".
    stored = Image.new("RGB", (40, 20), (255, 0, 0))
    stored.paste((0, 0, 255), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    image = load_image(encode(stored, "JPEG", exif=exif, quality=95), max_side=100)
    assert image.size == (20, 40)
    top, bottom = pixel(image, (10, 5)), pixel(image, (10, 35))
    assert top[0] > 200 and top[2] < 60  # red now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_large_images_are_downscaled_to_max_side():
    assert load_image(encode(Image.new("RGB", (3000, 1500)), "PNG"), max_side=1000).size == (1000, 500)
    assert load_image(encode(Image.new("RGB", (4000, 3000)), "JPEG"), max_side=500).size == (500, 375)
    assert load_image(encode(Image.new("RGB", (300, 200)), "PNG"), max_side=1000).size == (300, 200)


def test_paths_and_file_objects_are_accepted(tmp_path):
    path = tmp_path / "photo.bin"  # the name says nothing: the content decides
    path.write_bytes(encode(Image.new("RGB", (5, 5), (1, 2, 3)), "WEBP", lossless=True))
    assert pixel(load_image(path, max_side=100)) == (1, 2, 3)
    assert pixel(load_image(str(path), max_side=100)) == (1, 2, 3)
    with path.open("rb") as handle:
        assert pixel(load_image(handle, max_side=100)) == (1, 2, 3)


def test_empty_file_is_refused():
    with pytest.raises(PhotoError, match="empty"):
        load_image(b"", max_side=100)


def test_non_image_is_refused():
    with pytest.raises(PhotoError, match="not an image"):
        load_image(b"<html>this is a web page</html>", max_side=100)


def test_truncated_jpeg_is_refused():
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    data = encode(noise, "JPEG")
    with pytest.raises(PhotoError, match="damaged or truncated"):
        load_image(data[: len(data) // 2], max_side=1000)


def test_missing_file_is_an_image_decode_error(tmp_path):
    with pytest.raises(PhotoError, match="Cannot read"):
        load_image(tmp_path / "nope.jpg", max_side=100)


def test_decompression_bomb_is_refused_before_decoding():
    bomb = encode(Image.new("1", (4000, 3000)), "PNG")  # a few kB claiming 12 megapixels
    assert len(bomb) < 20_000
    with pytest.raises(PhotoError, match="12,000,000 pixels.*allowed|4000x3000"):
        load_image(bomb, max_side=1000, max_pixels=10_000_000)


def test_pillows_own_bomb_limit_is_reported_as_decode_error(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    with pytest.raises(PhotoError, match="too many pixels"):
        load_image(encode(Image.new("L", (100, 100)), "PNG"), max_side=1000)


def test_size_limits_are_worded_from_the_setting_in_binary_megabytes():
    from core.photos import megabytes

    assert megabytes(15 * 2**20) == "15 MB"  # MAX_UPLOAD_BYTES's default: README's "15 MB", never "16 MB"
    assert megabytes(15 * 2**20 + 1) == "15.0 MB"
    assert megabytes(int(2.5 * 2**20)) == "2.5 MB"
    assert megabytes(1000) == "1000 bytes" and megabytes(4096) == "4 KB"


def test_an_upload_over_the_limit_states_the_configured_limit(settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from core.photos import PhotoError, read_upload

    settings.MAX_UPLOAD_BYTES = 15 * 2**20
    big = SimpleUploadedFile("big.jpg", b"\0" * (15 * 2**20 + 10), content_type="image/jpeg")
    with pytest.raises(PhotoError) as error:
        read_upload(big)
    assert error.value.status == 413 and "photos up to 15 MB can be uploaded" in str(error.value)
