"""Run caps, redirects and run failures of the crawler, with canned pages instead of a browser."""

from __future__ import annotations

import json
import time

import pytest

from catalog.models import Product
from scraping import services
from scraping.browser import PageSnapshot
from scraping.crawler import Crawler, CrawlError, run_crawl
from scraping.models import CrawlPage, CrawlRun, PageStatus, RunStatus
from scraping.options import CrawlOptions
from tests.integration.scraping.test_download import jpeg

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("crawl_settings")]


class CannedBrowsers:
    """A browser pool whose pages come from a dict: {url: (final_url, html)}."""

    def __init__(self, pages: dict[str, tuple[str, str]], seconds_per_page: float = 0.0) -> None:
        self.pages = pages
        self.seconds_per_page = seconds_per_page
        self.loaded: list[str] = []

    def acquire(self):
        return self

    def release(self, session) -> None:
        pass

    def close(self) -> None:
        pass

    def load(self, url: str) -> PageSnapshot:
        self.loaded.append(url)
        time.sleep(self.seconds_per_page)
        final_url, html = self.pages[url]
        return PageSnapshot(requested_url=url, final_url=final_url, status=200, html=html, load_seconds=0.01)


def product_page(name: str, image: str, offers: dict | None = None) -> str:
    data = {
        "@type": "Product",
        "name": name,
        "image": image,
        "offers": offers or {"price": "10.00", "priceCurrency": "EUR"},
    }
    return f'<html><head><script type="application/ld+json">{json.dumps(data)}</script></head><body></body></html>'


def start(urls: list[str], pages: dict, seconds_per_page: float = 0.0, **options):
    crawl_options = CrawlOptions.build(**options)
    run = services.create_run(seed_urls=urls, options=crawl_options)
    browsers = CannedBrowsers(pages, seconds_per_page)
    summary = Crawler(crawl_options, run=run, browser_pool=browsers).crawl(urls)
    run.refresh_from_db()
    return run, summary, browsers


def test_byte_cap_stops_the_run_and_leaves_the_rest_for_resume(scripted_server, settings):
    photo = jpeg(size=(300, 300))
    urls = [scripted_server.url(f"/p/{n}") for n in range(4)]
    for n in range(4):
        scripted_server.routes[f"/img/{n}.jpg"] = (200, {"Content-Type": "image/jpeg"}, photo)
    pages = {url: (url, product_page(f"P{n}", f"/img/{n}.jpg")) for n, url in enumerate(urls)}
    settings.CRAWL_MAX_BYTES = 2 * len(photo) + 1000
    run, summary, browsers = start(urls, pages, seconds_per_page=0.3)
    assert run.status == RunStatus.FINISHED
    assert run.stop_reason == f"byte limit of {settings.CRAWL_MAX_BYTES:,} reached (CRAWL_MAX_BYTES)"
    assert run.bytes_downloaded <= settings.CRAWL_MAX_BYTES
    assert run.images_new == 2
    # The third page lost its photo to the cap; the fourth was cut off (skipped, or failed mid-way).
    assert run.pages.get(url=urls[2]).images_failed == 1
    last = run.pages.get(url=urls[3])
    assert last.status in (PageStatus.SKIPPED, PageStatus.FAILED)
    assert "byte limit" in last.error
    assert {url for url, _depth in services.resume_plan().seeds} == {urls[2], urls[3]}


def test_time_cap(scripted_server, settings):
    settings.CRAWL_MAX_SECONDS = 0
    url = scripted_server.url("/p/1")
    run, summary, browsers = start([url], {url: (url, product_page("P", "/img/1.jpg"))})
    assert "time limit" in run.stop_reason
    assert browsers.loaded == []
    assert CrawlPage.objects.get().status == PageStatus.SKIPPED
    assert "stopped early: time limit" in summary.lines()[0]


def test_redirect_into_the_private_network_is_refused(scripted_server, settings):
    settings.CRAWL_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    url = scripted_server.url("/p/1")
    run, _, _ = start([url], {url: ("http://10.0.0.7/admin", product_page("P", "/img/1.jpg"))})
    page = CrawlPage.objects.get()
    assert (page.status, page.final_url) == (PageStatus.REFUSED, "http://10.0.0.7/admin")
    assert "redirected" in page.error and "private address" in page.error
    assert not Product.objects.exists()


def test_price_without_currency_is_left_out_with_a_warning(scripted_server):
    scripted_server.routes["/img/1.jpg"] = (200, {"Content-Type": "image/jpeg"}, jpeg())
    url = scripted_server.url("/p/1")
    start([url], {url: (url, product_page("No currency", "/img/1.jpg", {"price": "12.00"}))})
    product = Product.objects.get()
    assert (product.name, product.price, product.currency) == ("No currency", None, "")
    assert CrawlPage.objects.get().warnings == ["price 12.00 was left out: the page states no currency"]


def test_unusable_profiles_fail_the_run_with_the_reason(settings, tmp_path):
    broken = tmp_path / "profiles.json"
    broken.write_text('{"profiles": [{"name": "x", "hosts": ["a"], "fields": {"price": "span[["}}]}')
    settings.CRAWL_PROFILES_FILE = str(broken)
    run = CrawlRun.objects.create(seed_urls=["https://shop.example/p/1"], options={})
    with pytest.raises(CrawlError, match="invalid CSS selector"):
        run_crawl(run)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "invalid CSS selector" in run.error


def test_a_crashing_page_fails_alone(scripted_server, monkeypatch):
    urls = [scripted_server.url("/p/1"), scripted_server.url("/p/2")]
    scripted_server.routes["/img/2.jpg"] = (200, {"Content-Type": "image/jpeg"}, jpeg())
    pages = {urls[0]: (urls[0], "<html>boom</html>"), urls[1]: (urls[1], product_page("Fine", "/img/2.jpg"))}
    real_extract = __import__("scraping.page_fetch", fromlist=["extract_product"]).extract_product

    def extract(html, url, **kwargs):
        if "boom" in html:
            raise RuntimeError("parser exploded")
        return real_extract(html, url, **kwargs)

    monkeypatch.setattr("scraping.page_fetch.extract_product", extract)
    run, _, _ = start(urls, pages)
    statuses = dict(run.pages.values_list("url", "status"))
    assert statuses == {urls[0]: PageStatus.FAILED, urls[1]: PageStatus.OK}
    assert "parser exploded" in run.pages.get(url=urls[0]).error
    assert run.status == RunStatus.FINISHED
