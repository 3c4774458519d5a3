"""The operator's admin: pages, staff-only access, actions that enqueue, import upload, query counts."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from functools import partial
from html import unescape
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from catalog import services
from catalog.models import ImageStatus, Product, ProductImage
from tests.conftest import DEMO_DIR
from tests.integration.admin.conftest import dressed_product, make_product

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_background_processing")]


def fail(image: ProductImage, error: str = "RuntimeError: model exploded", attempts: int = 3) -> None:
    ProductImage.objects.filter(pk=image.pk).update(attempts=attempts)
    image.refresh_from_db()
    services.mark_image_failed(image, error)


def message_texts(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def catalog_pages(space):
    """One URL of every admin page this app adds or customises."""
    product, image = dressed_product(0, space)
    garment = image.garments.first()
    return [
        reverse("admin:index"),
        reverse("admin:catalog_product_changelist"),
        reverse("admin:catalog_product_change", args=[product.pk]),
        reverse("admin:catalog_productimage_changelist"),
        reverse("admin:catalog_productimage_change", args=[image.pk]),
        reverse("admin:catalog_productimage_overview"),
        reverse("admin:catalog_product_import"),
        reverse("admin:catalog_product_reindex"),
        reverse("admin:catalog_productimage_thumb", args=[image.pk, "overlay"]),
        reverse("admin:catalog_garment_thumb", args=[garment.pk, "cutout"]),
    ]


class TestAccess:
    def test_staff_get_every_page(self, admin_client, catalog_pages, current_space):
        for url in catalog_pages:
            assert admin_client.get(url).status_code == 200, url

    def test_anonymous_visitors_get_the_login_page(self, client, catalog_pages):
        for url in catalog_pages:
            response = client.get(url)
            assert response.status_code == 302, url
            assert response["Location"].startswith(reverse("admin:login")), url

    def test_logged_in_non_staff_get_the_login_page(self, client, catalog_pages):
        client.force_login(User.objects.create_user("shopper", password="x" * 12))
        for url in catalog_pages:
            response = client.get(url)
            assert response.status_code == 302, url
            assert response["Location"].startswith(reverse("admin:login")), url

    def test_staff_without_catalog_permissions_are_refused(self, client, catalog_pages):
        client.force_login(User.objects.create_user("intern", password="x" * 12, is_staff=True))
        for url in catalog_pages[1:]:  # the index itself is open to any staff member
            assert client.get(url).status_code == 403, url

    def test_posts_are_refused_to_non_staff(self, client, queued_tasks):
        image = ProductImage.objects.get(product=make_product(1))
        fail(image)
        client.force_login(User.objects.create_user("shopper", password="x" * 12))
        client.post(reverse("admin:catalog_productimage_reprocess_failed"))
        client.post(reverse("admin:catalog_product_reindex"))
        image.refresh_from_db()
        assert image.status == ImageStatus.FAILED
        assert queued_tasks() == []

    def test_products_and_photos_are_view_only(self, admin_client):
        product = make_product(1)
        url = reverse("admin:catalog_product_change", args=[product.pk])
        admin_client.post(url, {"name": "Renamed"})
        product.refresh_from_db()
        assert product.name == "Product 1"
        assert admin_client.get(reverse("admin:catalog_product_add")).status_code == 403


class TestProductList:
    def test_columns(self, admin_client):
        make_product(1, photos=2, name="Red satin midi dress", sku="RSM-1", price="59.00", category="dress")
        response = admin_client.get(reverse("admin:catalog_product_changelist"))
        html = response.content.decode()
        product = Product.objects.get(sku="RSM-1")
        first_photo = product.images.order_by("position").first()
        assert "Red satin midi dress" in html
        assert "RSM-1" in html
        assert "59.00 EUR" in html
        assert reverse("admin:catalog_productimage_thumb", args=[first_photo.pk, "thumb"]) in html
        row = response.context["cl"].result_list[0]
        assert (row.image_count, row.images_done, row.state) == (2, 0, "in_progress")
        assert "0 of 2 done" in html

    def test_search_and_filters(self, admin_client):
        make_product(1, sku="FIND-ME", shop="North", category="coat")
        make_product(2, shop="South", category="dress")
        failed = make_product(3, shop="South", category="dress")
        make_product(4, photos=0, shop="South", category="dress")
        fail(failed.images.get())
        url = reverse("admin:catalog_product_changelist")

        def names(query: str) -> set[str]:
            return {p.name for p in admin_client.get(f"{url}?{query}").context["cl"].result_list}

        assert names("q=find-me") == {"Product 1"}
        assert names("shop=North") == {"Product 1"}
        assert names("category=dress") == {"Product 2", "Product 3", "Product 4"}
        assert names("state=failed") == {"Product 3"}
        assert names("state=no_images") == {"Product 4"}
        assert names("state=in_progress") == {"Product 1", "Product 2"}

    def test_query_count_does_not_grow_with_the_catalog(self, admin_client, django_assert_max_num_queries):
        url = reverse("admin:catalog_product_changelist")

        def count_queries() -> int:
            with CaptureQueriesContext(connection) as queries:
                assert admin_client.get(url).status_code == 200
            return len(queries)

        for index in range(20):
            make_product(index, photos=2)
        small = count_queries()
        for index in range(20, 200):
            make_product(index, photos=2)
        with django_assert_max_num_queries(small):
            response = admin_client.get(url)
        assert len(response.context["cl"].result_list) == 50  # a full page of 200 products with 400 photos
        assert small == count_queries()
        assert small <= 10


class TestProductPage:
    def test_photos_garments_and_neighbours(self, admin_client, current_space):
        product, image = dressed_product(0, current_space, embedding=(1.0, 0.0, 0.0, 0.0))
        close, _ = dressed_product(1, current_space, embedding=(0.9, 0.1, 0.0, 0.0))
        response = admin_client.get(reverse("admin:catalog_product_change", args=[product.pk]))
        html = response.content.decode()
        garments = list(image.garments.order_by("pk"))
        assert f"{reverse('admin:catalog_productimage_thumb', args=[image.pk, 'overlay'])}?v=" in html
        for garment in garments:
            assert reverse("admin:catalog_garment_thumb", args=[garment.pk, "overlay"]) in html
            assert reverse("admin:catalog_garment_thumb", args=[garment.pk, "cutout"]) in html
            assert f"{garment.box_x0}, {garment.box_y0}, {garment.box_x1}, {garment.box_y1}" in html
        neighbours = [neighbour["match"] for neighbour in response.context["neighbours"]]
        assert neighbours, "the similar product must be listed"
        assert neighbours[0].product == close
        assert reverse("admin:catalog_product_change", args=[close.pk]) in html
        assert f"{neighbours[0].similarity:.1f}% similar" in html
        assert product not in [match.product for match in neighbours]

    def test_unprocessed_product_says_so(self, admin_client, current_space):
        product = make_product(1)
        html = admin_client.get(reverse("admin:catalog_product_change", args=[product.pk])).content.decode()
        assert "No garments yet" in html
        assert "No neighbours" in html


class TestImages:
    def test_search_by_id_or_product(self, admin_client):
        first = make_product(1, name="Velvet blazer").images.get()
        make_product(2)
        url = reverse("admin:catalog_productimage_changelist")
        for term, expected in [(str(first.pk), [first.pk]), ("velvet", [first.pk]), ("no such photo", [])]:
            response = admin_client.get(url, {"q": term})
            assert [image.pk for image in response.context["cl"].result_list] == expected, term

    def test_list_filters_by_status_and_shows_errors(self, admin_client):
        ok = make_product(1).images.get()
        broken = make_product(2).images.get()
        fail(broken, "ImageDecodeError: truncated JPEG")
        url = reverse("admin:catalog_productimage_changelist")
        response = admin_client.get(f"{url}?status__exact=failed")
        assert [image.pk for image in response.context["cl"].result_list] == [broken.pk]
        assert "ImageDecodeError: truncated JPEG" in response.content.decode()
        assert ok.pk not in [image.pk for image in response.context["cl"].result_list]

    def test_detail_shows_overlay_cutouts_status_error_attempts(self, admin_client, space):
        _, image = dressed_product(0, space)
        fail(image, "RuntimeError: out of memory", attempts=2)
        response = admin_client.get(reverse("admin:catalog_productimage_change", args=[image.pk]))
        html = response.content.decode()
        assert reverse("admin:catalog_productimage_thumb", args=[image.pk, "overlay-large"]) in html
        for garment in image.garments.all():
            assert reverse("admin:catalog_garment_thumb", args=[garment.pk, "cutout"]) in html
        assert "RuntimeError: out of memory" in html
        assert "Failed" in html

    def test_reprocess_selected_enqueues_exactly_those(
        self, admin_client, queued_tasks, django_capture_on_commit_callbacks
    ):
        images = [make_product(index).images.get() for index in range(3)]
        for image in images:
            fail(image)
        chosen = [images[0].pk, images[2].pk]
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(
                reverse("admin:catalog_productimage_changelist"),
                {"action": "reprocess_selected", "_selected_action": chosen},
                follow=True,
            )
        assert sorted(queued_tasks()) == [("search.tasks.process_image", (pk,)) for pk in chosen]
        statuses = dict(ProductImage.objects.values_list("pk", "status"))
        assert statuses == {images[0].pk: "pending", images[1].pk: "failed", images[2].pk: "pending"}
        assert ProductImage.objects.get(pk=images[0].pk).attempts == 0
        assert any("2 photo(s) queued" in text for text in message_texts(response))

    def test_reprocess_all_failed(self, admin_client, queued_tasks, django_capture_on_commit_callbacks):
        done = make_product(1).images.get()
        services.mark_image_done(done)
        failed = [make_product(index).images.get() for index in (2, 3)]
        for image in failed:
            fail(image)
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(reverse("admin:catalog_productimage_reprocess_failed"), follow=True)
        assert sorted(queued_tasks()) == [("search.tasks.process_image", (image.pk,)) for image in failed]
        assert ProductImage.objects.get(pk=done.pk).status == ImageStatus.DONE
        assert response.redirect_chain[-1][0] == reverse("admin:catalog_productimage_changelist")

    def test_reprocess_with_background_processing_off_says_how_to_run_it(
        self, admin_client, settings, django_capture_on_commit_callbacks
    ):
        settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
        image = make_product(1).images.get()
        fail(image)
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(reverse("admin:catalog_productimage_reprocess_failed"), follow=True)
        assert any("manage.py index" in text for text in message_texts(response))
        assert ProductImage.objects.get(pk=image.pk).status == ImageStatus.PENDING

    def test_reprocess_failed_ignores_an_outside_next_url(self, admin_client):
        response = admin_client.post(
            reverse("admin:catalog_productimage_reprocess_failed"), {"next": "https://evil.example/"}
        )
        assert response["Location"] == reverse("admin:catalog_productimage_changelist")


class TestReindex:
    def test_get_asks_post_enqueues_every_photo(self, admin_client, queued_tasks, space):
        images = [make_product(index).images.get() for index in range(2)]
        _, processed = dressed_product(0, space)
        images.append(processed)
        url = reverse("admin:catalog_product_reindex")
        assert "re-index 3 photo(s)" in admin_client.get(url).content.decode()
        assert queued_tasks() == []
        response = admin_client.post(url, follow=True)
        assert sorted(queued_tasks()) == [("search.tasks.process_image", (image.pk,)) for image in images]
        assert set(ProductImage.objects.values_list("status", flat=True)) == {ImageStatus.PENDING}
        assert any("3 photo(s) queued" in text for text in message_texts(response))


@pytest.fixture
def image_server():
    """The demo photos over real HTTP on 127.0.0.1, for files that list image URLs."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(DEMO_DIR))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class TestImportUpload:
    url = staticmethod(lambda: reverse("admin:catalog_product_import"))

    def upload(self, client, name: str, content: bytes, shop: str = ""):
        file = SimpleUploadedFile(name, content, content_type="application/octet-stream")
        return client.post(self.url(), {"file": file, "shop": shop}, follow=True)

    def test_good_rows_land_and_each_row_error_is_reported(self, admin_client, image_server, settings):
        settings.CRAWL_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # the test's image server is on loopback
        demo = json.loads((DEMO_DIR / "products.json").read_text())[0]
        rows = [
            {
                "id": "ok-1",
                "name": "Linen shirt",
                "price": "29.90",
                "currency": "EUR",
                "category": "shirt",
                "images": [f"{image_server}/{demo['images'][0]}"],
            },
            {"id": "bad-price", "name": "Scarf", "price": "cheap", "currency": "EUR"},
            {"id": "local-file", "name": "Boots", "images": ["/etc/hostname"]},
            {"id": "ok-2", "name": "Wool coat"},
        ]
        response = self.upload(admin_client, "products.json", json.dumps(rows).encode(), shop="Upload shop")
        texts = message_texts(response)
        assert any("2 product(s) imported (2 new, 0 updated), 1 image(s) added" in text for text in texts)
        assert "row 2 (id bad-price): price 'cheap' is not a number" in texts
        assert any(text.startswith("row 3 (id local-file): only http(s) image URLs") for text in texts)
        shirt = Product.objects.get(external_id="ok-1")
        assert shirt.shop == "Upload shop"
        assert shirt.images.get().source_url.endswith(demo["images"][0])
        assert set(Product.objects.values_list("external_id", flat=True)) == {"ok-1", "ok-2"}

    def test_csv_upload(self, admin_client):
        content = b"id,name,price,currency,category\nc-1,Denim jacket,80,usd,jacket\nc-2,,5,EUR,hat\n"
        texts = message_texts(self.upload(admin_client, "feed.csv", content))
        assert any("1 product(s) imported" in text for text in texts)
        assert any(text.startswith("row 2 (id c-2)") for text in texts)
        assert Product.objects.get(external_id="c-1").currency == "USD"

    @pytest.mark.parametrize(
        ("name", "content", "expected"),
        [
            ("products.json", b'[{"id": "1", "name": "A"},', "invalid JSON at line 1"),
            ("products.json", b'{"items": []}', "must be a list of products"),
            ("products.json", b"\xff\xfe\x00garbage", "not UTF-8 text"),
            ("products.xlsx", b"PK\x03\x04", "upload a .json or .csv file"),
            ("feed.csv", b"sku;title\n1;A\n", "header row with at least a 'name' column"),
        ],
    )
    def test_malformed_file_is_refused_whole_and_keeps_the_catalog(self, admin_client, name, content, expected):
        existing = make_product(1)
        response = self.upload(admin_client, name, content, shop="Kept shop")
        assert response.status_code == 200
        html = unescape(response.content.decode())
        assert expected in html
        assert "Nothing was imported" in html
        assert 'value="Kept shop"' in html
        assert list(Product.objects.all()) == [existing]

    def test_oversized_file_is_refused(self, admin_client, settings):
        settings.MAX_UPLOAD_BYTES = 100
        response = self.upload(admin_client, "products.json", b"[" + b" " * 200 + b"]")
        assert "larger than 100 bytes" in response.content.decode()


class TestOverview:
    def test_counts_queue_throughput_and_errors(self, admin_client, queued_tasks):
        images = [make_product(index).images.get() for index in range(5)]
        services.mark_image_done(images[0])
        services.mark_image_done(images[1])
        ProductImage.objects.filter(pk=images[1].pk).update(processed_at=timezone.now() - timedelta(hours=2))
        fail(images[2], "ModelLoadError: weights missing")
        from search.tasks import enqueue_image

        enqueue_image(images[3].pk)
        enqueue_image(images[4].pk)
        response = admin_client.get(reverse("admin:catalog_productimage_overview"))
        html = response.content.decode()
        assert dict((status, n) for _, status, n in response.context["status_counts"]) == {
            "pending": 2,
            "processing": 0,
            "done": 2,
            "failed": 1,
        }
        assert response.context["queue_length"] == 2
        assert response.context["last_hour"] == {"done": 1, "failed": 1}
        assert "ModelLoadError: weights missing" in html
        assert reverse("admin:django_q_failure_changelist") in html
        assert reverse("admin:django_q_success_changelist") in html

    def test_reachable_from_the_admin_index(self, admin_client):
        html = admin_client.get(reverse("admin:index")).content.decode()
        assert reverse("admin:catalog_productimage_overview") in html
        assert reverse("admin:catalog_product_import") in html
        assert reverse("admin:catalog_product_reindex") in html
        assert reverse("admin:scraping_crawlrun_add") in html  # the crawl engineers' "Start a crawl" form
