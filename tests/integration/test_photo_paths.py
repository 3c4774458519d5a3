"""Every format and colour mode, and every hostile file, through every path that stores or searches a photo:
API upload, products.json import, crawl download + store, and photo search. One check (core.photos) serves
them all, so they must agree: a good photo is stored/searched everywhere, a bad one refused everywhere."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from PIL import Image
from rest_framework.test import APIClient

from catalog import services
from catalog.importers import import_file
from catalog.models import ProductImage
from scraping.download import FetchError, ImageDownloader, SafeHttpClient
from scraping.politeness import HostThrottle
from scraping.safety import AddressPolicy
from search.pipeline.registry import reset_pipeline
from tests.fixtures.photo_corpus import good_photos, hostile_files
from tests.integration.scraping.conftest import ScriptedServer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_background_processing")]

GOOD = good_photos()
HOSTILE = hostile_files()
GOOD_IDS = [name for name, _ in GOOD]
HOSTILE_IDS = [name for name, *_ in HOSTILE]
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


def shown_size(content: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(content)).size


@pytest.fixture
def product():
    product, _ = services.upsert_product(external_id="p1", name="Test product", shop="test")
    return product


@pytest.fixture
def operator():
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_superuser("ops", "ops@example.com", "pw"))
    return client


@pytest.fixture(scope="module")
def photo_server():
    server = ScriptedServer().start()
    for name, content in GOOD:
        fmt = Image.open(io.BytesIO(content)).format
        server.routes[f"/{name}"] = (200, {"Content-Type": CONTENT_TYPES.get(fmt, f"image/{fmt.lower()}")}, content)
    for name, content, *_ in HOSTILE:
        server.routes[f"/{name}"] = (200, {"Content-Type": "image/jpeg"}, content)
    yield server
    server.stop()


def downloader() -> ImageDownloader:
    policy = AddressPolicy.build(allow_private=False, allowed_networks=["127.0.0.1/32"])
    client = SafeHttpClient(policy=policy, user_agent="LookalikeBot/test", timeout=5.0)
    return ImageDownloader(client=client, throttle=HostThrottle(delay=0), max_bytes=10**6, retries=0, backoff=0)


@pytest.fixture
def offline_search(settings):
    settings.LOOKALIKE_PROFILE = "offline"
    reset_pipeline()
    yield APIClient()
    reset_pipeline()


def search(client, content: bytes):
    upload = io.BytesIO(content)
    upload.name = "query.jpg"
    return client.post("/api/search/", {"image": upload, "k": 3}, format="multipart")


@pytest.mark.parametrize(("name", "content"), GOOD, ids=GOOD_IDS)
class TestEveryGoodPhoto:
    def test_api_upload_stores_it(self, operator, product, name, content):
        response = operator.post(f"/api/products/{product.pk}/images/", {"image": io.BytesIO(content)})
        assert response.status_code == 201, response.content
        image = ProductImage.objects.get(pk=response.json()["id"])
        assert (image.width, image.height) == shown_size(content)
        assert image.file.read() == content

    def test_import_stores_it(self, tmp_path, name, content):
        (tmp_path / "photo.bin").write_bytes(content)
        rows = [{"id": "a", "name": "A", "images": ["photo.bin"]}, {"id": "b", "name": "B"}]
        (tmp_path / "products.json").write_text(json.dumps(rows))
        report = import_file(tmp_path / "products.json")
        assert report.errors == [] and (report.created, report.images_added) == (2, 1)

    def test_crawl_download_stores_it_without_a_second_check(self, photo_server, product, monkeypatch, name, content):
        downloaded = downloader().download(photo_server.url(f"/{name}"))
        monkeypatch.setattr(services, "check_photo", lambda *_: pytest.fail("decoded a second time"))
        image, created = services.add_image(product=product, photo=downloaded.photo, source_url=downloaded.url)
        assert created and (image.width, image.height) == shown_size(content)

    def test_photo_search_answers(self, offline_search, name, content):
        response = search(offline_search, content)
        assert response.status_code == 200, response.content
        assert response.json()["query"]["image_size"] == list(shown_size(content))


@pytest.mark.parametrize(("name", "content", "status", "code"), HOSTILE, ids=HOSTILE_IDS)
class TestEveryHostileFile:
    def test_api_upload_refuses_it_clearly(self, operator, product, name, content, status, code):
        response = operator.post(f"/api/products/{product.pk}/images/", {"image": io.BytesIO(content)})
        assert response.status_code == status, response.content
        assert response.json()["error"]["code"] == code
        assert ProductImage.objects.count() == 0

    def test_import_reports_the_row_and_keeps_the_others(self, tmp_path, name, content, status, code):
        (tmp_path / "bad.bin").write_bytes(content)
        rows = [{"id": "bad", "name": "Bad", "images": ["bad.bin"]}, {"id": "ok", "name": "Fine"}]
        (tmp_path / "products.json").write_text(json.dumps(rows))
        report = import_file(tmp_path / "products.json")
        assert [error.product_id for error in report.errors] == ["bad"]
        assert report.created == 1 and ProductImage.objects.count() == 0

    def test_crawl_download_refuses_it(self, photo_server, name, content, status, code):
        with pytest.raises(FetchError) as refused:
            downloader().download(photo_server.url(f"/{name}"))
        assert len(str(refused.value)) > 20

    def test_photo_search_refuses_it_clearly(self, offline_search, name, content, status, code):
        response = search(offline_search, content)
        assert response.status_code == status, response.content
        assert response.json()["error"]["code"] == code
