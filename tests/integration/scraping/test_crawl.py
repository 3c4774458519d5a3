"""``manage.py crawl`` with a real headless Chromium against the fixture shop on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Product, ProductImage
from scraping.browser import BrowserConfig, BrowserSession, PageLoadError
from scraping.models import CrawlPage, CrawlRun, PageStatus, RunStatus
from tests.fixtures.shop.server import PHOTOS, photo_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.browser, pytest.mark.usefixtures("crawl_settings", "shared_browsers")]


def crawl(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("crawl", *args, "--no-progress", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def product(shop, path: str) -> Product:
    return Product.objects.get(source_url=shop.url(path))


def downloads(shop, settings) -> dict:
    """Requests the downloader (not the browser) made, per path."""
    return shop.fetched_by(settings.CRAWL_USER_AGENT)


def test_listing_is_followed_to_every_kind_of_product_page(shop, settings):
    shop.failing.add("/products/zip-hoodie")
    out, err = crawl(shop.url("/catalog"), "--follow", "--json")

    run = CrawlRun.objects.get()
    assert run.status == RunStatus.FINISHED
    statuses = dict(CrawlPage.objects.values_list("url", "status"))
    assert statuses == {
        shop.url("/catalog"): PageStatus.NO_PRODUCT,
        shop.url("/catalog?page=2"): PageStatus.NO_PRODUCT,
        shop.url("/products/linen-shirt"): PageStatus.OK,
        shop.url("/products/wool-coat?color=grey"): PageStatus.OK,
        shop.url("/products/silk-scarf"): PageStatus.OK,
        shop.url("/plain/denim-jacket"): PageStatus.OK,
        shop.url("/products/graphic-tee"): PageStatus.OK,
        shop.url("/products/zip-hoodie"): PageStatus.FAILED,
        shop.url("/private/staff-only"): PageStatus.REFUSED,
    }
    failed = CrawlPage.objects.get(status=PageStatus.FAILED)
    assert (failed.http_status, failed.error) == (500, f"{shop.url('/products/zip-hoodie')} answered HTTP 500")
    assert "robots.txt" in CrawlPage.objects.get(status=PageStatus.REFUSED).error
    assert shop.hits["/private/staff-only"] == 0
    assert shop.hits["/about"] == 0  # nav links are not product links
    assert all(page.load_seconds > 0 for page in CrawlPage.objects.exclude(status=PageStatus.REFUSED))

    # JSON-LD rendered by JavaScript, photos that only appear while scrolling, srcset sizes collapsed.
    linen = product(shop, "/products/linen-shirt")
    assert (linen.name, linen.price, linen.currency, linen.availability) == (
        "Linen shirt",
        Decimal("7.95"),
        "EUR",
        "in_stock",
    )
    assert (linen.brand, linen.sku, linen.gtin, linen.mpn, linen.colour) == (
        "Nordlys",
        "LS-001",
        "4006381333931",
        "NL-LS-1",
        "Blue",
    )
    assert sorted(linen.images.values_list("source_url", flat=True)) == [
        shop.url("/img/linen-back.jpg"),
        shop.url("/img/linen-detail.jpg"),
        shop.url("/img/linen-front.jpg"),
    ]
    # ProductGroup: the grey variant of the crawled URL, stored under the canonical URL.
    coat = product(shop, "/products/wool-coat")
    assert (coat.price, coat.currency, coat.colour, coat.sku, coat.availability) == (
        Decimal("1349.00"),
        "EUR",
        "Grey",
        "WC-GRY",
        "out_of_stock",
    )
    assert coat.images.count() == 2
    # OpenGraph only; the same photo under a second URL is stored once.
    scarf = product(shop, "/products/silk-scarf")
    assert (scarf.price, scarf.currency, scarf.availability, scarf.brand) == (
        Decimal("24.95"),
        "EUR",
        "out_of_stock",
        "Seta",
    )
    assert scarf.images.count() == 2
    assert CrawlPage.objects.get(url=shop.url("/products/silk-scarf")).images_duplicate == 1
    # Only the selector profile finds this one.
    denim = product(shop, "/plain/denim-jacket")
    assert (denim.name, denim.price, denim.currency, denim.brand, denim.sku) == (
        "Denim jacket",
        Decimal("2449"),
        "USD",
        "Riveted",
        "DJ-77",
    )
    assert denim.images.count() == 2
    # Microdata; its broken photo is reported, the good one stored.
    tee = product(shop, "/products/graphic-tee")
    assert (tee.price, tee.currency, tee.images.count()) == (Decimal("19.99"), "USD", 1)
    tee_page = CrawlPage.objects.get(url=shop.url("/products/graphic-tee"))
    assert tee_page.images_failed == 1
    assert tee_page.image_errors[0]["url"] == shop.url("/img/tee-broken.jpg")

    # The photo shared by coat and scarf: downloaded once, stored for both, same bytes.
    shared = ProductImage.objects.filter(sha256=hashlib.sha256(photo_bytes(PHOTOS["shared-scarf"])).hexdigest())
    assert sorted(image.product_id for image in shared) == sorted([coat.pk, scarf.pk])
    fetched = downloads(shop, settings)
    assert fetched["/img/shared-scarf.jpg"] == 1
    assert fetched["/img/other-product.jpg"] == 0  # recommendations are not this product's photos
    assert fetched["/static/logo.png"] == 0
    assert all("LookalikeBot/0.1" in agent for _path, agent in shop.requests)
    assert {image.status for image in ProductImage.objects.all()} == {"pending"}
    assert all(
        not image.file.name.endswith(("linen-front.jpg", "tee-front.jpg")) for image in ProductImage.objects.all()
    )

    assert (run.pages_ok, run.pages_failed, run.pages_no_product, run.pages_refused) == (5, 1, 2, 1)
    assert (run.products_new, run.products_updated) == (5, 0)
    assert (run.images_new, run.images_duplicate, run.images_failed) == (10, 1, 1)
    assert run.bytes_downloaded > 0

    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 9
    linen_line = next(line for line in lines if line["url"] == shop.url("/products/linen-shirt"))
    assert (linen_line["price"], linen_line["currency"], linen_line["product"]) == ("7.95", "EUR", "new")
    assert linen_line["sources"]["price"] == "json-ld"
    assert len(linen_line["image_urls"]) == 3
    denim_line = next(line for line in lines if line["url"] == shop.url("/plain/denim-jacket"))
    assert denim_line["sources"]["name"] == "profile:fixture-plain"
    assert "5 ok, 1 failed" in err
    assert "images: 10 new, 1 duplicate, 1 failed" in err


def test_resume_retries_only_what_failed_or_was_left_out(shop, settings):
    shop.failing.add("/products/zip-hoodie")
    linen, hoodie, scarf = (
        shop.url(p) for p in ("/products/linen-shirt", "/products/zip-hoodie", "/products/silk-scarf")
    )
    crawl(linen, hoodie, scarf, "--max-pages", "2")
    first = CrawlRun.objects.get()
    assert first.stop_reason == "page limit of 2 reached"
    assert dict(first.pages.values_list("url", "status")) == {
        linen: PageStatus.OK,
        hoodie: PageStatus.FAILED,
        scarf: PageStatus.SKIPPED,
    }

    shop.failing.clear()
    shop.reset_counts()
    out, _ = crawl("--resume")
    second = CrawlRun.objects.exclude(pk=first.pk).get()
    assert second.resumed_from == first
    assert dict(second.pages.values_list("url", "status")) == {hoodie: PageStatus.OK, scarf: PageStatus.OK}
    assert shop.hits["/products/linen-shirt"] == 0
    zip_hoodie = Product.objects.get(source_url=hoodie)
    assert (zip_hoodie.name, zip_hoodie.price, zip_hoodie.currency, zip_hoodie.brand) == (
        "Zip hoodie",
        Decimal("59.00"),
        "EUR",
        "Loop",
    )
    assert f"Crawl run {second.pk} finished" in out

    out, _ = crawl("--resume")
    assert out.strip() == f"Crawl run {second.pk} left nothing to retry."


def test_recrawl_updates_fields_adds_missing_photos_and_never_duplicates(shop, settings):
    urls = [shop.url("/products/linen-shirt"), shop.url("/products/silk-scarf")]
    crawl(*urls)
    assert (Product.objects.count(), ProductImage.objects.count()) == (2, 5)
    linen = product(shop, "/products/linen-shirt")
    Product.objects.filter(pk=linen.pk).update(price=Decimal("1.00"), name="Stale name")
    linen.images.filter(source_url=shop.url("/img/linen-back.jpg")).delete()
    shop.reset_counts()

    crawl(*urls)
    assert (Product.objects.count(), ProductImage.objects.count()) == (2, 5)
    linen.refresh_from_db()
    assert (linen.name, linen.price) == ("Linen shirt", Decimal("7.95"))
    run = CrawlRun.objects.order_by("-id").first()
    assert (run.products_new, run.products_updated) == (0, 2)
    assert (run.images_new, run.images_duplicate, run.images_failed) == (1, 5, 0)
    # Photos stored from a URL are not downloaded again: only the deleted one, and of the scarf's two URLs
    # with the same bytes the one that was not stored under its own URL (whichever arrived second).
    fetched = downloads(shop, settings)
    assert fetched.pop("/robots.txt") == 1
    assert fetched.pop("/img/linen-back.jpg") == 1
    assert list(fetched.values()) == [1]
    assert set(fetched) < {"/img/shared-scarf.jpg", "/img/scarf-copy.jpg"}


def test_slow_page_is_waited_for(shop):
    crawl(shop.url("/slow/rain-jacket"))
    page = CrawlPage.objects.get()
    assert page.status == PageStatus.OK
    assert page.load_seconds >= 2
    rain = Product.objects.get()
    assert (rain.name, rain.price, rain.currency, rain.images.count()) == ("Rain jacket", Decimal("89.00"), "GBP", 1)


def test_private_address_is_refused_unless_allowed(shop, settings):
    settings.CRAWL_ALLOWED_NETWORKS = []
    crawl(shop.url("/products/linen-shirt"), "http://10.0.0.1/products/1")
    pages = CrawlPage.objects.order_by("id")
    assert [page.status for page in pages] == [PageStatus.REFUSED, PageStatus.REFUSED]
    assert "loopback address" in pages[0].error and "CRAWL_ALLOWED_NETWORKS" in pages[0].error
    assert "private address" in pages[1].error
    assert shop.requests == []
    assert not Product.objects.exists()


def test_dry_run_prints_and_stores_nothing(shop, settings, tmp_path):
    targets = tmp_path / "urls.txt"
    targets.write_text(f"# the shop's scarf\n\n{shop.url('/products/silk-scarf')}  # OpenGraph only\n")
    out, _ = crawl(str(targets), "--dry-run")
    assert f"would be new: Silk scarf | 24.95 EUR | 3 image(s) | {shop.url('/products/silk-scarf')}" in out
    assert "Dry run (nothing stored)" in out
    assert not Product.objects.exists()
    assert not CrawlRun.objects.exists()
    assert sum(downloads(shop, settings).values()) == 1  # robots.txt only, no photos


def test_bad_targets_are_explained():
    with pytest.raises(CommandError, match="neither an http"):
        crawl("not-a-url-or-file")
    with pytest.raises(CommandError, match="either URLs or --resume"):
        crawl("http://127.0.0.1/", "--resume")
    with pytest.raises(CommandError, match="no earlier crawl run"):
        crawl("--resume")
    with pytest.raises(CommandError, match="concurrency"):
        crawl("http://127.0.0.1/", "--concurrency", "0")


def test_page_load_timeout_is_a_retryable_failure(shop, settings):
    config = BrowserConfig(
        binary=settings.CHROMIUM_BINARY,
        driver_path=settings.CHROMEDRIVER_PATH,
        user_agent=settings.CRAWL_USER_AGENT,
        page_timeout=0.5,
    )
    with BrowserSession(config) as session, pytest.raises(PageLoadError, match="did not finish loading") as caught:
        session.load(shop.url("/slow/rain-jacket"))
    assert caught.value.retryable
