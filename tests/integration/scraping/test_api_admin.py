"""Starting crawls from the admin and the staff API: queued as a django-q2 task (run in-process here)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from catalog.models import Product
from scraping.models import CrawlRun, PageStatus, RunStatus

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.urls("tests.integration.scraping.urls"),
    pytest.mark.usefixtures("crawl_settings"),
]


@pytest.fixture
def staff():
    return get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-for-tests-only")


@pytest.fixture
def api(staff) -> APIClient:
    client = APIClient()
    client.force_authenticate(staff)
    return client


@pytest.mark.browser
def test_staff_api_starts_a_crawl_and_reports_it(api, shop, shared_browsers):
    response = api.post("/api/crawls/", {"urls": [shop.url("/products/silk-scarf")], "delay": 0}, format="json")
    assert response.status_code == 202, response.content
    run = CrawlRun.objects.get()
    assert response["Location"].endswith(f"/api/crawls/{run.pk}/")
    status = api.get(f"/api/crawls/{run.pk}/").json()
    assert (status["status"], status["pages_ok"], status["products_new"], status["images_new"]) == (
        RunStatus.FINISHED,
        1,
        1,
        2,
    )
    assert status["problems"] == []
    assert run.requested_by.username == "ops"
    assert Product.objects.get().price == Decimal("24.95")


def test_api_reports_failed_pages(api, shop, settings):
    settings.CRAWL_ALLOWED_NETWORKS = []
    response = api.post("/api/crawls/", {"urls": [shop.url("/products/silk-scarf")]}, format="json")
    assert response.status_code == 202
    problems = api.get(response["Location"]).json()["problems"]
    assert [(p["status"], "loopback" in p["error"]) for p in problems] == [(PageStatus.REFUSED, True)]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"urls": []}, "urls"),
        ({"urls": ["ftp://shop.example/x"]}, "urls"),
        ({"urls": ["https://shop.example/p"], "concurrency": 0}, "concurrency"),
        ({"urls": ["https://shop.example/p"], "link_selector": "a[["}, "CSS selector"),
    ],
)
def test_api_rejects_bad_requests_and_stores_nothing(api, payload, field):
    response = api.post("/api/crawls/", payload, format="json")
    assert response.status_code == 400
    assert field in response.content.decode()
    assert not CrawlRun.objects.exists()


def test_api_is_for_staff_only(shop):
    user = get_user_model().objects.create_user("shopper", password="pw-for-tests-only")
    client = APIClient()
    assert client.get("/api/crawls/").status_code in (401, 403)
    client.force_authenticate(user)
    assert client.post("/api/crawls/", {"urls": [shop.url("/")]}, format="json").status_code == 403
    assert not CrawlRun.objects.exists()


@pytest.mark.browser
def test_admin_form_enqueues_a_crawl(client, staff, shop, shared_browsers):
    client.force_login(staff)
    form_page = client.get("/admin/scraping/crawlrun/add/")
    assert form_page.status_code == 200
    assert b"Start crawl" in form_page.content
    response = client.post(
        "/admin/scraping/crawlrun/add/",
        {"urls": f"# scarf\n{shop.url('/products/silk-scarf')}\n", "delay": "0"},
    )
    run = CrawlRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/scraping/crawlrun/{run.pk}/change/"
    assert (run.status, run.pages_ok) == (RunStatus.FINISHED, 1)
    detail = client.get(response["Location"])
    assert detail.status_code == 200
    assert shop.url("/products/silk-scarf").encode() in detail.content
    assert client.get("/admin/scraping/crawlpage/?status__exact=ok").status_code == 200


def test_admin_form_explains_bad_input(client, staff):
    client.force_login(staff)
    response = client.post("/admin/scraping/crawlrun/add/", {"urls": "not a url"})
    assert response.status_code == 200
    assert b"is not an absolute http(s) URL" in response.content
    assert not CrawlRun.objects.exists()


@pytest.mark.browser
def test_a_crawl_longer_than_its_slice_goes_on_in_new_tasks_until_done(api, shop, shared_browsers, settings):
    """A task crawls for CRAWL_TASK_SLICE_SECONDS (here: one page), records its frontier and queues the next."""
    settings.CRAWL_TASK_SLICE_SECONDS = 0.000001
    listing = shop.url("/catalog?page=2")
    response = api.post("/api/crawls/", {"urls": [listing], "follow": True, "delay": 0}, format="json")
    assert response.status_code == 202, response.content
    run = CrawlRun.objects.get()
    status = api.get(response["Location"]).json()
    assert (status["status"], status["error"], status["stop_reason"]) == (RunStatus.FINISHED, "", "")
    assert status["slices"] == run.pages.count() == 5  # one page a slice: the run outlived four tasks
    assert dict(run.pages.values_list("url", "status")) == {
        listing: PageStatus.NO_PRODUCT,
        shop.url("/plain/denim-jacket"): PageStatus.OK,
        shop.url("/products/graphic-tee"): PageStatus.OK,
        shop.url("/products/zip-hoodie"): PageStatus.OK,
        shop.url("/private/staff-only"): PageStatus.REFUSED,
    }
    counters = [status[name] for name in ("pages_ok", "pages_no_product", "pages_refused", "pages_failed")]
    assert counters == [3, 1, 1, 0]
    assert [status[name] for name in ("products_new", "images_new", "images_failed")] == [3, 4, 1]
    assert status["crawl_seconds"] > 0
    assert all(
        shop.hits[path] == 1 for path in ("/plain/denim-jacket", "/products/graphic-tee", "/products/zip-hoodie")
    )
    assert shop.hits["/catalog"] == 1
    assert Product.objects.count() == 3


@pytest.fixture
def staff_without_permissions():
    return get_user_model().objects.create_user("clerk", password="pw-for-tests-only", is_staff=True)


def test_staff_without_the_crawl_permissions_get_403_in_the_error_shape(staff_without_permissions, shop):
    client = APIClient()
    client.force_authenticate(staff_without_permissions)
    response = client.post("/api/crawls/", {"urls": [shop.url("/products/silk-scarf")]}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert client.get("/api/crawls/").status_code == 403
    assert not CrawlRun.objects.exists()


def test_staff_with_the_add_permission_start_a_crawl(staff_without_permissions, shop, settings):
    from django.contrib.auth.models import Permission

    settings.CRAWL_ALLOWED_NETWORKS = []  # refused at once: no browser needed to see the run go through
    staff_without_permissions.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="scraping", codename__in=["add_crawlrun", "view_crawlrun"])
    )
    client = APIClient()
    client.force_authenticate(get_user_model().objects.get(pk=staff_without_permissions.pk))
    response = client.post("/api/crawls/", {"urls": [shop.url("/products/silk-scarf")]}, format="json")
    assert response.status_code == 202, response.content
    assert client.get(response["Location"]).json()["pages_refused"] == 1
    assert CrawlRun.objects.get().requested_by == staff_without_permissions
