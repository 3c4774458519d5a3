"""Bulk writes behind the fast import and crawl storage: the same outcome as one record or photo at a time."""

from __future__ import annotations

import hashlib
import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from PIL import Image

from catalog import importers, services
from catalog.models import Product, ProductImage
from core.photos import check_photo
from tests.conftest import demo_photo

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_background_processing")]

SNAPSHOT_FIELDS = ("source_url", "external_id", "shop", "name", "price", "currency", "colour", "category")


def jpeg_bytes(colour=(200, 30, 30), size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def snapshot() -> list[tuple]:
    return sorted(Product.objects.values_list(*SNAPSHOT_FIELDS), key=repr)


def seed() -> None:
    services.upsert_product(
        source_url="https://shop.example/p/1", shop="S", name="Stored by URL", price="5", currency="EUR"
    )
    services.upsert_product(external_id="e-1", shop="S", name="Stored by id")
    services.upsert_product(external_id="e-2", shop="S", name="Id, later a URL", price="7", currency="USD")


RECORDS = [
    services.ProductInput(external_id="n-1", shop="S", fields={"name": "New by id", "price": "9.5", "currency": "eur"}),
    services.ProductInput(source_url="https://shop.example/p/9", shop="S", fields={"name": " New by URL "}),
    services.ProductInput(source_url="https://shop.example/p/1", shop="S", fields={"colour": "red"}),
    services.ProductInput(external_id="e-1", shop="S", fields={"category": "Dress", "name": "Renamed"}),
    # The same product twice in one call: the later record wins.
    services.ProductInput(external_id="n-1", shop="S", fields={"price": "11"}),
    # A stored id that now comes with its URL: one row, which gets the URL.
    services.ProductInput(
        source_url="https://shop.example/p/2", external_id="e-2", shop="S", fields={"colour": "blue"}
    ),
    # The product just reached by (S, e-2) again, now through its new URL only.
    services.ProductInput(source_url="https://shop.example/p/2", shop="S", fields={"category": "Coat"}),
    # The same id in another shop is another product.
    services.ProductInput(external_id="e-1", shop="T", fields={"name": "Other shop"}),
    # Bad records: each fails alone with upsert_product's message.
    services.ProductInput(external_id="bad-1", shop="S", fields={"name": "Negative", "price": "-1", "currency": "EUR"}),
    services.ProductInput(external_id="bad-2", shop="S", fields={"price": "3"}),
    services.ProductInput(external_id="e-1", shop="S", fields={"price": "3"}),
    services.ProductInput(shop="S", fields={"name": "No key"}),
    services.ProductInput(external_id="bad-3", shop="S", fields={"name": "Bad currency", "currency": "EURO"}),
]


def outcome(result) -> tuple:
    if isinstance(result, Exception):
        return ("error", str(result))
    product, created = result
    return ("created" if created else "updated", product.pk is not None)


def test_upsert_products_gives_what_upsert_product_gives_record_by_record():
    seed()
    before = transaction.savepoint()
    one_by_one = []
    for item in RECORDS:
        try:
            one_by_one.append(
                services.upsert_product(
                    source_url=item.source_url, external_id=item.external_id, shop=item.shop, **item.fields
                )
            )
        except services.InvalidProduct as exc:
            one_by_one.append(exc)
    expected = snapshot()
    transaction.savepoint_rollback(before)
    assert snapshot() != expected, "the records change the catalog"

    in_bulk = services.upsert_products(RECORDS)

    assert [outcome(r) for r in in_bulk] == [outcome(r) for r in one_by_one]
    assert snapshot() == expected
    assert Product.objects.get(external_id="n-1").price == Decimal("11.00")
    assert Product.objects.get(external_id="e-2").source_url == "https://shop.example/p/2"


def test_upsert_products_uses_a_few_queries_and_leaves_unchanged_products_alone():
    seed()
    stored = {p.pk: p.updated_at for p in Product.objects.all()}
    items = [services.ProductInput(external_id=f"q-{n}", shop="S", fields={"name": f"P{n}"}) for n in range(40)]
    with CaptureQueriesContext(connection) as queries:
        services.upsert_products(items)
    assert len(queries) <= 6, [q["sql"][:80] for q in queries]
    again = [services.ProductInput(external_id="e-1", shop="S", fields={"name": "Stored by id"})]
    with CaptureQueriesContext(connection) as queries:
        [(product, created)] = services.upsert_products(again)
    assert not created and not any(q["sql"].startswith("UPDATE") for q in queries)
    assert Product.objects.get(pk=product.pk).updated_at == stored[product.pk], "nothing changed, nothing written"


def photo(colour) -> object:
    return check_photo(jpeg_bytes(colour=colour))


def test_add_images_stores_each_new_photo_once_in_order_and_skips_known_ones(django_capture_on_commit_callbacks):
    from catalog.signals import images_need_processing

    first, second = (services.upsert_product(external_id=key, name=key)[0] for key in ("a", "b"))
    known, _ = services.add_image(product=first, content=jpeg_bytes(colour=(1, 2, 3)))
    red, blue = photo((200, 0, 0)), photo((0, 0, 200))
    sends = []

    def listener(sender, image_ids, **kwargs):
        sends.append(list(image_ids))

    images_need_processing.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            results = services.add_images(
                [
                    services.NewPhoto(first, photo((1, 2, 3))),  # stored already
                    services.NewPhoto(first, red, source_url="https://shop.example/red.jpg"),
                    services.NewPhoto(first, red),  # the same bytes again in the same call
                    services.NewPhoto(second, red),  # the same bytes for another product: its own photo
                    services.NewPhoto(first, blue),
                ]
            )
    finally:
        images_need_processing.disconnect(listener)
    assert [created for _image, created in results] == [False, True, False, True, True]
    assert results[0][0].pk == known.pk and results[2][0].pk == results[1][0].pk
    assert list(first.images.values_list("position", flat=True)) == [0, 1, 2]
    stored = ProductImage.objects.get(pk=results[1][0].pk)
    assert stored.source_url == "https://shop.example/red.jpg" and (stored.width, stored.height) == (64, 48)
    assert stored.sha256 == hashlib.sha256(red.content).hexdigest()
    assert stored.file.read() == red.content
    assert sends == [[results[1][0].pk, results[3][0].pk, results[4][0].pk]], "one send for the batch"


def test_add_images_that_fail_leave_no_rows_and_no_files(settings, monkeypatch):
    product = services.upsert_product(external_id="a", name="A")[0]

    def refuse(*args, **kwargs):
        raise DatabaseError("the database went away")

    monkeypatch.setattr(ProductImage.objects, "bulk_create", refuse)
    with pytest.raises(DatabaseError), transaction.atomic():
        services.add_images([services.NewPhoto(product, photo(colour)) for colour in ((200, 0, 0), (0, 200, 0))])
    assert ProductImage.objects.count() == 0
    assert not [path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()]


def test_an_import_whose_bulk_write_fails_is_written_row_by_row(tmp_path, monkeypatch, caplog):
    (tmp_path / "dress.jpg").write_bytes(demo_photo("Dress").read_bytes())
    rows = [
        {"id": "d1", "name": "Dress", "price": "10", "currency": "EUR", "images": ["dress.jpg"]},
        {"id": "bad", "name": "Bad", "price": "-1", "currency": "EUR", "images": ["dress.jpg"]},
        {"id": "missing", "name": "Missing photo", "images": ["nowhere.jpg"]},
        {"id": "d2", "name": "Dress 2", "images": ["dress.jpg"]},
    ]
    calls = []

    def fail_once(items):
        calls.append(len(items))
        raise DatabaseError("a concurrent writer took a key")

    monkeypatch.setattr(services, "add_images", fail_once)
    report = importers.import_records(rows, base_dir=tmp_path)
    assert calls == [2], "the bulk write was tried once, for the two good rows"
    assert "writing them one by one" in caplog.text
    assert (report.created, report.updated, report.images_added) == (2, 0, 2)
    assert [(error.row, error.product_id) for error in report.errors] == [(2, "bad"), (3, "missing")]
    assert "image file not found" in report.errors[1].message
    assert set(Product.objects.values_list("external_id", flat=True)) == {"d1", "d2"}


def test_enqueue_images_queues_one_task_per_image_with_one_insert(monkeypatch):
    from django_q.conf import Conf
    from django_q.models import OrmQ
    from django_q.signing import SignedPackage

    from search import tasks

    monkeypatch.setattr(Conf, "SYNC", False)
    with CaptureQueriesContext(connection) as queries:
        tasks.enqueue_images([11, 12, 13])
    assert sum(q["sql"].startswith("INSERT") for q in queries) == 1
    packages = [SignedPackage.loads(row.payload) for row in OrmQ.objects.order_by("id")]
    assert [(p["func"], p["args"], p["name"], p["group"]) for p in packages] == [
        ("search.tasks.process_image", (n,), f"process-image-{n}", tasks.TASK_GROUP) for n in (11, 12, 13)
    ]
    assert len({p["id"] for p in packages}) == 3


def test_crawled_photos_arriving_together_are_stored_together():
    from scraping import services as scraping_services
    from scraping.download import DownloadedImage

    first, second = (services.upsert_product(external_id=key, name=key)[0] for key in ("a", "b"))

    def download(colour, n):
        checked = photo(colour)
        url = f"https://shop.example/{n}.jpg"
        return DownloadedImage(url, url, "image/jpeg", hashlib.sha256(checked.content).hexdigest(), checked)

    red, blue = download((200, 0, 0), 1), download((0, 0, 200), 2)
    results = scraping_services.store_photos([(first, red), (second, red), (first, blue), (first, red)])
    assert [created for _image, created in results] == [True, True, True, False]
    assert list(first.images.values_list("source_url", flat=True)) == [red.url, blue.url]
    assert second.images.get().source_url == red.url
