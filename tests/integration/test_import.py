"""products.json / CSV import: good rows, re-import, malformed rows and files, the command."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from catalog.importers import ImportFileError, import_file
from catalog.models import Product, ProductImage
from tests.conftest import DEMO_DIR, demo_photo

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_background_processing")]


@pytest.fixture
def shop_dir(tmp_path):
    (tmp_path / "img").mkdir()
    shutil.copy(demo_photo("Dress"), tmp_path / "img" / "dress.jpg")
    shutil.copy(demo_photo("Shoes"), tmp_path / "img" / "shoes.jpg")
    shutil.copy(demo_photo("Shoes", 1), tmp_path / "img" / "shoes-side.jpg")
    return tmp_path


def write_json(directory, rows, name="products.json"):
    path = directory / name
    path.write_text(json.dumps(rows))
    return path


GOOD_ROWS = [
    {
        "id": "d1",
        "name": "Summer dress",
        "price": "49.90",
        "currency": "EUR",
        "category": "Dress",
        "images": ["img/dress.jpg"],
    },
    {
        "id": "s1",
        "name": "Trail shoes",
        "price": 89,
        "currency": "usd",
        "category": "Shoes",
        "images": ["img/shoes.jpg", "img/shoes-side.jpg"],
        "color": "grey",
    },
]


def test_good_rows_land_with_their_images(shop_dir):
    report = import_file(write_json(shop_dir, GOOD_ROWS), default_shop="My shop")
    assert (report.created, report.updated, report.images_added, report.errors) == (2, 0, 3, [])
    shoes = Product.objects.get(external_id="s1")
    assert shoes.price == Decimal("89.00") and shoes.currency == "USD" and shoes.colour == "grey"
    assert shoes.shop == "My shop"
    assert [image.position for image in shoes.images.all()] == [0, 1]


def test_reimport_updates_and_never_duplicates(shop_dir):
    path = write_json(shop_dir, GOOD_ROWS)
    import_file(path)
    changed = [dict(GOOD_ROWS[0], price="39.90"), GOOD_ROWS[1]]
    report = import_file(write_json(shop_dir, changed))
    assert (report.created, report.updated, report.images_added, report.images_duplicate) == (0, 2, 0, 3)
    assert Product.objects.count() == 2
    assert ProductImage.objects.count() == 3
    assert Product.objects.get(external_id="d1").price == Decimal("39.90")


def test_malformed_rows_are_reported_and_good_rows_still_land(shop_dir):
    (shop_dir / "img" / "fake.jpg").write_text("this is not a jpeg")
    rows = [
        GOOD_ROWS[0],
        {"id": "bad-price", "name": "X", "price": "cheap", "currency": "EUR", "images": []},
        {"id": "no-name", "price": "1", "currency": "EUR", "images": []},
        {"name": "no id", "images": []},
        {"id": "missing-file", "name": "Y", "images": ["img/nope.jpg"]},
        {"id": "fake-image", "name": "Z", "images": ["img/fake.jpg"]},
        {"id": "bad-images", "name": "W", "images": ["img/dress.jpg"] + [3]},
        "not an object",
        GOOD_ROWS[1],
    ]
    report = import_file(write_json(shop_dir, rows))
    assert report.created == 2
    by_row = {error.row: error.message for error in report.errors}
    assert set(by_row) == {2, 3, 4, 5, 6, 7, 8}
    assert "not a number" in by_row[2]
    assert "name is required" in by_row[3]
    assert "needs an 'id'" in by_row[4]
    assert "not found" in by_row[5]
    assert "not an image" in by_row[6]
    assert "list of paths" in by_row[7]
    assert "object" in by_row[8]
    assert set(Product.objects.values_list("external_id", flat=True)) == {"d1", "s1"}
    assert not Product.objects.filter(external_id="fake-image").exists(), "a row with a bad image stores nothing"


def test_csv_import(shop_dir):
    path = shop_dir / "products.csv"
    path.write_text(
        "id,name,price,currency,category,images,colour\n"
        "d1,Summer dress,49.90,EUR,Dress,img/dress.jpg,red\n"
        's1,"Trail shoes, grey",89,USD,Shoes,img/shoes.jpg|img/shoes-side.jpg,\n'
        "bad,Broken,abc,EUR,Shoes,,\n"
    )
    report = import_file(path)
    assert report.created == 2 and report.images_added == 3
    assert [str(error) for error in report.errors] == ["row 3 (id bad): price 'abc' is not a number"]
    assert Product.objects.get(external_id="s1").name == "Trail shoes, grey"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("products.json", "{not json", "invalid JSON at line 1"),
        ("products.json", '{"items": 1}', "must be a list"),
        ("products.csv", "", "header row"),
        ("products.xml", "<x/>", "unsupported file type"),
    ],
)
def test_unusable_files_raise_a_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ImportFileError, match=message):
        import_file(path)


def test_command_reports_rows_and_fails_when_nothing_imports(shop_dir, capsys):
    call_command("import_products", str(write_json(shop_dir, GOOD_ROWS)), "--shop", "S")
    assert "2 product(s) imported (2 new, 0 updated)" in capsys.readouterr().out
    bad = write_json(shop_dir, [{"id": "x", "images": []}], name="bad.json")
    with pytest.raises(CommandError, match="no row could be imported"):
        call_command("import_products", str(bad))
    assert "row 1 (id x): name is required" in capsys.readouterr().err
    with pytest.raises(CommandError, match="file not found"):
        call_command("import_products", str(shop_dir / "missing.json"))


def test_demo_catalog_imports_cleanly():
    report = import_file(DEMO_DIR / "products.json")
    assert report.errors == []
    assert report.created == Product.objects.count() >= 17 * 5
    assert set(Product.objects.values_list("category", flat=True)) == {
        "Blazer",
        "Blouse",
        "Body",
        "Dress",
        "Hat",
        "Hoodie",
        "Longsleeve",
        "Outwear",
        "Pants",
        "Polo",
        "Shirt",
        "Shoes",
        "Shorts",
        "Skirt",
        "T-Shirt",
        "Top",
        "Undershirt",
    }
    assert ProductImage.objects.count() == Product.objects.count()


@pytest.fixture
def photo_server(shop_dir):
    """A local HTTP server serving the shop folder's photos (127.0.0.1 only)."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(shop_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_image_urls_are_fetched_through_the_guarded_downloader(shop_dir, photo_server, settings):
    rows = [{"id": "u1", "name": "Remote dress", "images": [f"{photo_server}/img/dress.jpg"]}]
    report = import_file(write_json(shop_dir, rows))
    assert report.created == 0
    assert "refused" in report.errors[0].message and "127.0.0.1" in report.errors[0].message
    settings.CRAWL_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.CRAWL_ALLOW_PRIVATE_ADDRESSES = False
    missing = [{"id": "u2", "name": "Gone", "images": [f"{photo_server}/img/missing.jpg"]}]
    report = import_file(write_json(shop_dir, rows + missing))
    assert report.created == 1 and report.images_added == 1
    assert "HTTP 404" in report.errors[0].message
    image = Product.objects.get(external_id="u1").images.get()
    assert image.source_url == f"{photo_server}/img/dress.jpg"


def test_a_bad_row_inside_a_batch_loses_only_itself_and_photos_are_queued_once_per_batch(
    shop_dir, django_capture_on_commit_callbacks
):
    """Several rows per transaction: the bad row's savepoint rolls back, its neighbours land, one bulk send."""
    from catalog import importers
    from catalog.signals import images_need_processing

    announced = []

    def listener(sender, image_ids, **kwargs):
        announced.extend(image_ids)

    rows = [
        *GOOD_ROWS,
        {"id": "bad", "name": "Half a row", "price": "-1", "currency": "EUR", "images": ["img/dress.jpg"]},
        {"id": "h1", "name": "Hat", "images": ["img/shoes-side.jpg"]},
    ]
    images_need_processing.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            report = importers.import_records(rows, base_dir=shop_dir, batch_rows=3)
    finally:
        images_need_processing.disconnect(listener)
    assert [error.product_id for error in report.errors] == ["bad"]
    assert (report.created, report.images_added) == (3, 4)
    assert not Product.objects.filter(external_id="bad").exists()
    assert sorted(announced) == sorted(ProductImage.objects.values_list("pk", flat=True)), "only stored photos"
    # Per batch one id-collecting callback for its photos and one send: 2 batches (3 rows + 1 row).
    assert len(callbacks) == 2 + 2
    again = importers.import_records(rows, base_dir=shop_dir, batch_rows=3)
    assert (again.created, again.updated, again.images_added, again.images_duplicate) == (0, 3, 0, 4)
    assert Product.objects.count() == 3 and ProductImage.objects.count() == 4
