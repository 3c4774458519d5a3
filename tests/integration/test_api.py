"""REST API against a small demo catalog indexed with the bundled real embedder (offline profile)."""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from catalog.importers import import_file
from catalog.models import Product, ProductImage
from search import tasks
from search.pipeline.base import Box, Detector
from search.pipeline.registry import reset_pipeline
from tests.conftest import DEMO_DIR
from tests.fixtures.indexed import index_images

pytestmark = pytest.mark.django_db

INDEXED_CATEGORIES = {"T-Shirt": 4, "Shoes": 4, "Dress": 3, "Pants": 3}


class NothingDetector(Detector):
    """A detector that finds no garment (the whole-photo fallback)."""

    name = "finds nothing"

    def detect(self, images):
        return [[] for _ in images]


class TwoBoxDetector(Detector):
    """Two garments: a large upper box and a small lower one."""

    name = "two boxes"

    def detect(self, images):
        return [
            [
                Box(0, 0, image.width, image.height * 0.6, label="top", score=0.9),
                Box(0, image.height * 0.7, image.width / 2, image.height, label="shoes", score=0.8),
            ]
            for image in images
        ]


@pytest.fixture
def offline_pipeline(settings):
    settings.LOOKALIKE_PROFILE = "offline"
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
    reset_pipeline()
    yield
    reset_pipeline()


@pytest.fixture
def indexed_catalog(offline_pipeline, tmp_path, demo_products):
    """Demo products of a few categories, the first photo of each category held back as a query."""
    chosen, held_back = [], {}
    for product in demo_products:
        category = product["category"]
        if category not in INDEXED_CATEGORIES:
            continue
        if category not in held_back:
            held_back[category] = DEMO_DIR / product["images"][0]
            continue
        if sum(p["category"] == category for p in chosen) < INDEXED_CATEGORIES[category]:
            chosen.append(dict(product, images=[str(DEMO_DIR / product["images"][0])]))
    path = tmp_path / "products.json"
    path.write_text(json.dumps(chosen))
    report = import_file(path)
    assert not report.errors
    index_images(list(ProductImage.objects.filter(product__in=Product.objects.all())))
    return held_back


@pytest.fixture
def client():
    cache.clear()  # throttle counters
    return APIClient()


def post_photo(client, path_or_bytes, **fields):
    content = path_or_bytes if isinstance(path_or_bytes, bytes) else path_or_bytes.read_bytes()
    upload = io.BytesIO(content)
    upload.name = "query.jpg"
    return client.post("/api/search/", {"image": upload, **fields}, format="multipart")


class TestImageSearch:
    def test_tshirt_photo_returns_tshirts_first(self, client, indexed_catalog):
        response = post_photo(client, indexed_catalog["T-Shirt"], k=6)
        assert response.status_code == 200, response.content
        body = response.json()
        categories = [r["product"]["category"] for r in body["results"]]
        assert len(categories) == 6
        assert categories[0] == "T-Shirt"
        assert categories[:4].count("T-Shirt") >= 2, categories
        assert "Shoes" not in categories[:4], categories

    def test_shoe_photo_returns_shoes_first(self, client, indexed_catalog):
        body = post_photo(client, indexed_catalog["Shoes"], k=4).json()
        categories = [r["product"]["category"] for r in body["results"]]
        # 4 of 14 products are shoes: a random ranking puts 3 of them in the top 4 about 1 time in 25
        assert categories[0] == "Shoes" and categories[:4].count("Shoes") >= 3, categories

    def test_result_shape(self, client, indexed_catalog, settings):
        settings.LOOKALIKE_DETECTOR, settings.LOOKALIKE_SEGMENTER = "whole-image", "box"  # a box known in advance
        reset_pipeline()
        body = post_photo(client, indexed_catalog["Dress"], k=3).json()
        query = body["query"]
        assert query["type"] == "image"
        assert len(query["garments"]) == 1 and query["chosen"] == 0
        width, height = query["image_size"]
        assert query["garments"][0]["box"] == [0, 0, width, height], "the whole-image detector searches the whole photo"
        first = body["results"][0]
        assert set(first["product"]) >= {"id", "name", "external_id", "sku", "price", "currency", "url"}
        assert 0 < first["similarity"] <= 100
        assert first["similarity"] == pytest.approx(100 * (1 - first["distance"]), abs=0.1)
        similarities = [r["similarity"] for r in body["results"]]
        assert similarities == sorted(similarities, reverse=True)
        assert first["image_url"].startswith("http://testserver/media/")
        # A stored cutout is WebP; one that would be the whole photo is not stored and the photo stands in.
        assert first["cutout_url"].endswith(".webp") or first["cutout_url"] == first["image_url"]
        assert len({r["product"]["id"] for r in body["results"]}) == 3, "products, not vectors"

    def test_filters_combine_with_vector_order(self, client, indexed_catalog):
        body = post_photo(client, indexed_catalog["T-Shirt"], k=10, category="Shoes").json()
        assert {r["product"]["category"] for r in body["results"]} == {"Shoes"}
        assert len(body["results"]) == INDEXED_CATEGORIES["Shoes"]
        prices = Product.objects.order_by("price").values_list("price", flat=True)
        ceiling = prices[len(prices) // 2]
        body = post_photo(client, indexed_catalog["T-Shirt"], k=20, max_price=str(ceiling)).json()
        assert body["results"] and all(float(r["product"]["price"]) <= float(ceiling) for r in body["results"])

    def test_no_garment_found_searches_the_whole_photo_and_says_so(self, client, indexed_catalog, settings):
        settings.LOOKALIKE_DETECTOR = "tests.integration.test_api.NothingDetector"
        reset_pipeline()
        body = post_photo(client, indexed_catalog["Dress"], k=3).json()
        assert body["query"]["whole_image"] is True
        assert "No garment was found" in body["query"]["notice"]
        assert len(body["results"]) == 3

    def test_several_garments_largest_searched_by_default(self, client, indexed_catalog, settings):
        settings.LOOKALIKE_DETECTOR = "tests.integration.test_api.TwoBoxDetector"
        reset_pipeline()
        body = post_photo(client, indexed_catalog["Dress"], k=3).json()
        garments = body["query"]["garments"]
        assert [g["label"] for g in garments] == ["top", "shoes"]
        assert body["query"]["chosen"] == 0, "the larger box"
        other = post_photo(client, indexed_catalog["Dress"], k=3, garment=1).json()
        assert other["query"]["chosen"] == 1
        assert [r["distance"] for r in other["results"]] != [r["distance"] for r in body["results"]]

    def test_box_and_garment_selection(self, client, indexed_catalog):
        response = post_photo(client, indexed_catalog["Dress"], k=3, box="10,10,200,300")
        assert response.status_code == 200
        assert response.json()["query"]["garments"][0]["box"] == [10, 10, 200, 300]
        response = post_photo(client, indexed_catalog["Dress"], garment=3)
        assert response.status_code == 400
        assert "garment 3 does not exist" in response.json()["error"]["message"]


def png_with_huge_header(width=60000, height=60000) -> bytes:
    """A tiny PNG whose header claims a huge canvas (decompression bomb)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 100))
        + chunk(b"IEND", b"")
    )


def jpeg(size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


class TestHostileUploads:
    @pytest.mark.parametrize(
        ("content", "status", "code"),
        [
            (b"", 400, "empty_file"),
            (jpeg()[:120], 400, "invalid_image"),
            (b"GIF89a<script>alert(1)</script>", 415, "unsupported_format"),
            (b"%PDF-1.4 not a photo", 415, "unsupported_format"),
            (b"just some text, renamed to .jpg", 415, "unsupported_format"),
            (jpeg() + b"<html><script>alert(1)</script></html>", 400, "polyglot_file"),
            (jpeg() + b"PK\x03\x04zip-appended", 400, "polyglot_file"),
            (png_with_huge_header(), 400, "invalid_image"),
        ],
        ids=["zero-bytes", "truncated", "gif-script", "pdf", "text", "html-polyglot", "zip-polyglot", "bomb"],
    )
    def test_each_bad_upload_gets_a_clear_4xx(self, client, offline_pipeline, content, status, code):
        response = post_photo(client, content)
        assert response.status_code == status, response.content
        error = response.json()["error"]
        assert error["message"] and len(error["message"]) > 10
        if code:
            assert error["code"] == code

    def test_too_large_is_413(self, client, offline_pipeline, settings):
        settings.MAX_UPLOAD_BYTES = 1000
        response = post_photo(client, jpeg((400, 400)) + b"\0" * 2000)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "too_large"

    def test_missing_image_and_bad_params(self, client, offline_pipeline):
        response = client.post("/api/search/", {"k": 3}, format="multipart")
        assert response.status_code == 400 and response.json()["error"]["code"] == "missing_image"
        response = post_photo(client, jpeg(), k=0, box="1,2,3")
        body = response.json()["error"]
        assert response.status_code == 400 and set(body["details"]) == {"k", "box"}

    @pytest.mark.parametrize("mode", ["RGBA", "P", "L", "CMYK", "I;16", "1", "LA"])
    def test_every_colour_mode_is_searchable(self, client, offline_pipeline, mode):
        image = Image.new("RGB", (50, 40), (200, 40, 40)).convert(mode if mode != "I;16" else "I")
        if mode == "I;16":
            image = Image.new("I;16", (50, 40), 30000)
        buffer = io.BytesIO()
        image.save(buffer, format="TIFF" if mode in {"CMYK", "I;16"} else "PNG")
        response = post_photo(client, buffer.getvalue())
        assert response.status_code == 200, response.content

    def test_exif_rotation_is_applied(self, client, offline_pipeline):
        image = Image.new("RGB", (80, 40), (0, 200, 0))
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 degrees on display
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", exif=exif)
        body = post_photo(client, buffer.getvalue()).json()
        assert body["query"]["image_size"] == [40, 80]


class TestTextSearch:
    def test_offline_profile_answers_text_with_keyword_search(self, client, indexed_catalog):
        """Issue 13: without a text tower, text search is keyword search (it used to be a 400)."""
        response = client.get("/api/search/", {"q": "dress", "k": 3})
        assert response.status_code == 200, response.content
        results = response.json()["results"]
        assert results and results[0]["product"]["category"] == "Dress"
        assert {tuple(r["matched_by"]) for r in results} == {("keyword",)}

    def test_text_search_with_a_clip_embedder(self, client, settings, tiny_model_dirs, tmp_path, demo_products):
        settings.LOOKALIKE_PROFILE = "offline"
        settings.LOOKALIKE_EMBEDDER = "clip"
        settings.LOOKALIKE_EMBEDDER_MODEL = str(tiny_model_dirs["embedder"])
        settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
        reset_pipeline()
        try:
            rows = [dict(p, images=[str(DEMO_DIR / p["images"][0])]) for p in demo_products[:5]]
            (tmp_path / "p.json").write_text(json.dumps(rows))
            import_file(tmp_path / "p.json")
            tasks.process_images(list(Product.objects.values_list("images__id", flat=True)))
            response = client.get("/api/search/", {"q": "red satin midi dress", "k": 3})
            assert response.status_code == 200, response.content
            body = response.json()
            assert body["query"] == {"type": "text", "text": "red satin midi dress"}
            assert len(body["results"]) == 3
            response = client.get("/api/search/", {"q": "", "k": 3})
            assert response.status_code == 400
        finally:
            reset_pipeline()


class TestProducts:
    def test_list_is_paginated_and_filterable(self, client, indexed_catalog):
        body = client.get("/api/products/", {"category": "Shoes"}).json()
        assert body["count"] == INDEXED_CATEGORIES["Shoes"]
        assert {p["category"] for p in body["results"]} == {"Shoes"}
        assert client.get("/api/products/", {"min_price": "abc"}).status_code == 400

    def test_detail_and_404(self, client, indexed_catalog):
        product = Product.objects.first()
        assert client.get(f"/api/products/{product.pk}/").json()["name"] == product.name
        response = client.get("/api/products/999999/")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"

    def test_more_like_this_uses_stored_vectors(self, client, indexed_catalog, monkeypatch):
        from search.pipeline.runner import Pipeline

        def no_model_calls(*args, **kwargs):
            raise AssertionError("more like this must not run the model")

        monkeypatch.setattr(Pipeline, "process", no_model_calls)
        shoe = Product.objects.filter(category="Shoes").first()
        body = client.get(f"/api/products/{shoe.pk}/similar/", {"k": 3}).json()
        ids = [r["product"]["id"] for r in body["results"]]
        assert shoe.pk not in ids and len(ids) == 3
        categories = [r["product"]["category"] for r in body["results"]]
        assert categories.count("Shoes") >= 2, categories  # 3 other shoes among 13: chance about 1 in 9

    def test_writes_need_staff_with_permissions_and_go_through_services(self, client, offline_pipeline):
        payload = {"external_id": "api-1", "name": "API jacket", "price": "59.00", "currency": "eur", "shop": "S"}
        assert client.post("/api/products/", payload, format="json").status_code in (401, 403)
        staff = User.objects.create_user("staff", password="pw", is_staff=True)
        staff.user_permissions.set(
            Permission.objects.filter(
                content_type__app_label="catalog",
                codename__in=["add_product", "change_product", "delete_product", "add_productimage"],
            )
        )
        token = Token.objects.create(user=staff)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        response = client.post("/api/products/", payload, format="json")
        assert response.status_code == 201, response.content
        assert response.json()["currency"] == "EUR", "normalised by the service"
        again = client.post("/api/products/", dict(payload, name="API jacket v2"), format="json")
        assert again.json()["id"] == response.json()["id"], "upsert, not a duplicate"
        pk = response.json()["id"]
        assert client.patch(f"/api/products/{pk}/", {"price": "-1"}, format="json").status_code == 400
        upload = io.BytesIO(jpeg())
        upload.name = "x.jpg"
        response = client.post(f"/api/products/{pk}/images/", {"image": upload}, format="multipart")
        assert response.status_code == 201 and response.json()["status"] == "pending"
        assert client.delete(f"/api/products/{pk}/").status_code == 204
        assert not Product.objects.filter(pk=pk).exists()


def test_near_duplicates_are_listed_for_staff_only(client, indexed_catalog, demo_products, tmp_path):
    # The same photo sold as a second product (another shop) is a near-duplicate.
    shoe = next(p for p in demo_products if p["category"] == "Shoes" and Product.objects.filter(external_id=p["id"]))
    copy = dict(shoe, shop="Another shop", images=[str(DEMO_DIR / shoe["images"][0])])
    (tmp_path / "copy.json").write_text(json.dumps([copy]))
    import_file(tmp_path / "copy.json")
    tasks.process_images(list(Product.objects.filter(shop="Another shop").values_list("images__id", flat=True)))
    assert client.get("/api/products/duplicates/").status_code in (401, 403)
    client.force_authenticate(User.objects.create_user("boss", is_staff=True))
    pairs = client.get("/api/products/duplicates/").json()["results"]
    assert len(pairs) == 1
    assert {pairs[0]["first"]["external_id"]} == {pairs[0]["second"]["external_id"]} == {shoe["id"]}
    assert pairs[0]["similarity"] >= 99.9
    assert client.get("/api/products/duplicates/", {"min_similarity": "x"}).status_code == 400


def test_search_is_throttled(client, offline_pipeline, settings):
    from rest_framework.settings import api_settings
    from rest_framework.throttling import ScopedRateThrottle

    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "search": "3/min"}
    original = ScopedRateThrottle.THROTTLE_RATES
    ScopedRateThrottle.THROTTLE_RATES = rates
    try:
        statuses = [client.get("/api/search/", {"q": "dress"}).status_code for _ in range(4)]
    finally:
        ScopedRateThrottle.THROTTLE_RATES = original
    assert statuses[:3] == [200, 200, 200] and statuses[3] == 429  # keyword search answers (issue 13)


def test_openapi_schema_and_docs(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/search/", "/api/products/", "/api/products/{id}/similar/", "/api/crawls/"} <= set(paths)
    assert client.post("/api/crawls/", {"urls": ["https://shop.example/p/1"]}, format="json").status_code in (401, 403)
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
