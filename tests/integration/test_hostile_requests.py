"""Hostile requests answered in the one error shape, with the right status, and nothing written:
forged X-Forwarded-For, staff without permissions, requests Django refuses before DRF sees them."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.test import Client
from PIL import Image
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from catalog import services
from catalog.importers import ImportFileError, parse_records
from catalog.models import Product, ProductImage
from search.views import PageSearchThrottle

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_background_processing")]


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 120, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def tight_search_rate(monkeypatch, settings):
    settings.LOOKALIKE_PROFILE = "offline"
    cache.clear()
    rates = {**ScopedRateThrottle.THROTTLE_RATES, "search": "3/min"}
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", rates)
    monkeypatch.setattr(PageSearchThrottle, "THROTTLE_RATES", rates)
    yield
    cache.clear()


class TestThrottleIdentity:
    def test_a_forged_forwarded_for_does_not_buy_a_fresh_identity(self, tight_search_rate):
        client = APIClient()
        statuses = [
            client.get("/api/search/", {"q": "dress"}, HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").status_code for n in range(5)
        ]
        assert statuses[3:] == [429, 429], statuses

    def test_behind_a_trusted_proxy_the_forwarded_client_counts(self, tight_search_rate, monkeypatch):
        from rest_framework.settings import api_settings

        monkeypatch.setattr(api_settings, "NUM_PROXIES", 1)
        client = APIClient()
        statuses = [
            client.get("/api/search/", {"q": "dress"}, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code
            for n in range(5)
        ]
        assert 429 not in statuses, "each forwarded client has its own budget behind one trusted proxy"

    def test_the_page_text_search_is_throttled_too(self, tight_search_rate):
        client = Client()
        responses = [client.get("/", {"q": "dress"}, HTTP_X_FORWARDED_FOR=f"10.0.1.{n}") for n in range(5)]
        assert [r.status_code for r in responses[:3]] == [200, 200, 200]
        assert responses[3].status_code == 429
        assert b"Too many searches" in responses[3].content


@pytest.fixture
def product():
    product, _ = services.upsert_product(external_id="p1", name="Coat", shop="s")
    return product


def staff(*codenames: str) -> APIClient:
    user = User.objects.create_user(f"staff-{len(codenames)}-{'-'.join(codenames)}"[:150], is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="catalog", codename__in=codenames))
    client = APIClient()
    client.force_authenticate(user)
    return client


class TestStaffNeedModelPermissions:
    def test_staff_without_permissions_can_read_but_not_write(self, product):
        client = staff()
        assert client.get(f"/api/products/{product.pk}/").status_code == 200
        refused = [
            client.post("/api/products/", {"external_id": "p2", "name": "X"}, format="json"),
            client.patch(f"/api/products/{product.pk}/", {"name": "Renamed"}, format="json"),
            client.delete(f"/api/products/{product.pk}/"),
            client.post(f"/api/products/{product.pk}/images/", {"image": io.BytesIO(jpeg())}),
        ]
        assert [r.status_code for r in refused] == [403, 403, 403, 403]
        assert {r.json()["error"]["code"] for r in refused} == {"permission_denied"}
        product.refresh_from_db()
        assert product.name == "Coat" and Product.objects.count() == 1 and ProductImage.objects.count() == 0

    def test_each_write_needs_its_own_permission(self, product):
        editor = staff("change_product")
        assert editor.patch(f"/api/products/{product.pk}/", {"name": "Renamed"}, format="json").status_code == 200
        assert editor.delete(f"/api/products/{product.pk}/").status_code == 403
        assert editor.post(f"/api/products/{product.pk}/images/", {"image": io.BytesIO(jpeg())}).status_code == 403
        uploader = staff("add_productimage")
        assert uploader.post(f"/api/products/{product.pk}/images/", {"image": io.BytesIO(jpeg())}).status_code == 201
        assert staff("delete_product").delete(f"/api/products/{product.pk}/").status_code == 204


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "production"])
class TestRefusedBeforeDrf:
    """Django refuses these while DRF parses the request; the answer is still JSON in the one shape."""

    def post(self, settings, debug, data):
        settings.DEBUG = debug
        return Client().post("/api/search/", data)

    def test_too_many_fields(self, settings, debug):
        response = self.post(settings, debug, {f"f{n}": "x" for n in range(1100)})
        assert response.status_code == 400 and response.json()["error"]["code"] == "too_many_fields"

    def test_too_many_files(self, settings, debug):
        files = {f"file{n}": io.BytesIO(b"x") for n in range(120)}
        response = self.post(settings, debug, files)
        assert response.status_code == 400 and response.json()["error"]["code"] == "too_many_files"

    def test_a_huge_text_field(self, settings, debug):
        response = self.post(settings, debug, {"image": io.BytesIO(jpeg()), "q": "x" * (17 * 1024 * 1024)})
        assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"

    def test_unknown_api_url(self, settings, debug):
        settings.DEBUG = debug
        response = Client().get("/api/no-such-thing/")
        if debug:  # Django's technical 404 page is a development aid; production answers JSON
            assert response.status_code == 404
        else:
            assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_deeply_nested_json_import_is_a_clear_file_error():
    with pytest.raises(ImportFileError, match="nested too deeply"):
        parse_records("[" * 200_000 + "]" * 200_000, suffix=".json")
    assert json.loads("[[[]]]") == [[[]]]  # ordinary nesting still parses
