"""Thumbnails and overlays: drawn right, rendered once, replaced when the garments change."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from PIL import Image

from backoffice.views import image_thumbnail_url
from catalog import services, thumbnails
from tests.integration.admin.conftest import dressed_product, garment_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_background_processing")]


def fetch(client, url: str):
    response = client.get(url)
    assert response.status_code == 200, url
    return response, Image.open(io.BytesIO(b"".join(response.streaming_content)))


def thumb_files() -> set[str]:
    root = Path(settings.MEDIA_ROOT) / "thumbs"
    return {path.name for path in root.rglob("*") if path.is_file()}


def colour_distance(a, b) -> float:
    return sum((x - y) ** 2 for x, y in zip(a[:3], b[:3], strict=True)) ** 0.5


class TestOverlay:
    def test_masks_tint_and_boxes_outline_only_their_garments(self, admin_client, space):
        _, image = dressed_product(0, space)
        garments = list(image.garments.order_by("pk"))
        _, overlay = fetch(admin_client, image_thumbnail_url(image.pk, "overlay", [g.pk for g in garments]))
        overlay = overlay.convert("RGB")
        plain, _ = thumbnails._open_photo(image, thumbnails.IMAGE_VARIANTS["overlay"].size)  # nothing drawn
        assert plain.size == overlay.size
        scale = overlay.width / image.width
        first = garments[0]  # palette colour 0; its mask is the ellipse inscribed in its box
        x0, y0, x1, y1 = (round(value * scale) for value in first.box)
        red = thumbnails.PALETTE[0]
        # On the box's top edge, right of the label: the outline colour.
        edge_x = x0 + (x1 - x0) * 85 // 100
        assert min(colour_distance(overlay.getpixel((edge_x, y)), red) for y in range(y0 - 1, y0 + 3)) < 50
        # Inside the ellipse mask, above the second garment's box: the photo tinted towards the colour.
        inside = ((x0 + x1) // 2, y0 + (y1 - y0) * 3 // 10)
        assert colour_distance(overlay.getpixel(inside), red) < colour_distance(plain.getpixel(inside), red) - 30
        # Outside every box and mask: untouched apart from JPEG noise.
        assert colour_distance(overlay.getpixel((2, 2)), plain.getpixel((2, 2))) < 25

    def test_cutout_keeps_its_transparency(self, admin_client, space):
        _, image = dressed_product(0, space)
        garment = image.garments.order_by("pk").first()
        response, cutout = fetch(admin_client, reverse("admin:catalog_garment_thumb", args=[garment.pk, "cutout"]))
        assert response["Content-Type"] == "image/png"
        assert cutout.mode == "RGBA"
        assert cutout.getpixel((0, 0))[3] == 0  # corner of the ellipse's box: outside the mask
        assert max(cutout.size) <= thumbnails.GARMENT_VARIANTS["cutout"]


class TestCaching:
    def test_rendered_once_then_served_from_disk(self, admin_client, space, monkeypatch):
        _, image = dressed_product(0, space)
        url = image_thumbnail_url(image.pk, "overlay", list(image.garments.values_list("pk", flat=True)))
        response, _ = fetch(admin_client, url)
        assert "immutable" in response["Cache-Control"]
        rendered = thumb_files()
        assert any(name.startswith("overlay-") for name in rendered)

        def no_rendering(*args, **kwargs):
            raise AssertionError("a cached thumbnail was rendered again")

        monkeypatch.setattr(thumbnails, "_open_photo", no_rendering)
        fetch(admin_client, url)
        product_page = reverse("admin:catalog_product_change", args=[image.product_id])
        assert admin_client.get(product_page).status_code == 200  # pages only link thumbnails, never draw them
        assert thumb_files() == rendered

    def test_new_garments_give_a_new_overlay_and_drop_the_old_files(self, admin_client, space):
        _, image = dressed_product(0, space)
        old_ids = list(image.garments.values_list("pk", flat=True))
        old_garment = old_ids[0]
        fetch(admin_client, image_thumbnail_url(image.pk, "overlay", old_ids))
        fetch(admin_client, reverse("admin:catalog_garment_thumb", args=[old_garment, "cutout"]))
        before = thumb_files()

        with Image.open(image.file.path) as opened:
            photo = opened.convert("RGB")
        services.replace_garments(
            image=image,
            space=space,
            garments=[garment_for(photo, (10, 10, 60, 80), label="hat", embedding=[0, 0, 1, 0])],
        )
        new_ids = list(image.garments.values_list("pk", flat=True))
        old_url = image_thumbnail_url(image.pk, "overlay", old_ids)
        new_url = image_thumbnail_url(image.pk, "overlay", new_ids)
        assert old_url != new_url
        response, _ = fetch(admin_client, new_url)
        after = thumb_files()
        assert not (before - {n for n in before if not n.startswith(("overlay-", "garment-"))}) & after
        assert any(name.startswith("overlay-") for name in after - before)
        stale, _ = fetch(admin_client, old_url)  # an old page open in a tab still gets a picture...
        assert stale["Cache-Control"] == "private, no-cache"  # ...that its browser will not keep
        assert admin_client.get(reverse("admin:catalog_garment_thumb", args=[old_garment, "cutout"])).status_code == 404


class TestRefusals:
    def test_unknown_variant_and_missing_file_are_not_found(self, admin_client, space):
        _, image = dressed_product(0, space)
        assert admin_client.get(reverse("admin:catalog_productimage_thumb", args=[image.pk, "huge"])).status_code == 404
        Path(image.file.path).unlink()
        assert (
            admin_client.get(reverse("admin:catalog_productimage_thumb", args=[image.pk, "thumb"])).status_code == 404
        )
