"""The browser's two deadlines (issue 14): a page whose load event never fires is read from its DOM at the
page timeout, and a very tall page is scrolled in capped steps instead of one call that outlasts the script
timeout. Needs Chromium (marked ``browser``); the servers listen on 127.0.0.1 only."""

from __future__ import annotations

import pytest
from selenium.common.exceptions import TimeoutException

from scraping.browser import BrowserSession, PageLoadError
from scraping.extract import extract_product
from scraping.safety import AddressPolicy
from tests.integration.scraping.browser_servers import RecordingServer, browser_config, html

pytestmark = pytest.mark.browser

ONLY_127_0_0_1 = AddressPolicy.build(allow_private=False, allowed_networks=["127.0.0.1/32"])
PRODUCT = """<h1>Never-loading jacket</h1><p>Product code: NL-1001</p><p>€59.00</p><button>Add to cart</button>
<img src="/img/jacket.jpg" alt="jacket">"""
# Each failed load points the image at another missing file: the window's load event keeps waiting.
BROKEN_IMAGE_LOOP = """<img src="/missing.jpg" alt="" onerror="this.src = '/missing.jpg?' + Math.random()">"""


@pytest.fixture(scope="module")
def pages():
    server = RecordingServer().start()
    server.routes["/never-loads"] = html(PRODUCT + BROKEN_IMAGE_LOOP)
    server.routes["/img/jacket.jpg"] = (200, {"Content-Type": "image/jpeg"}, b"\xff\xd8\xff\xd9")
    server.routes["/tall"] = html("<h1>Tall</h1><div style='height: 400000px'></div><p id='end'>the bottom</p>")
    server.routes["/plain"] = html("<h1>A plain page</h1>")
    yield server
    server.stop()


def test_a_page_whose_load_event_never_fires_is_read_from_its_dom(pages):
    config = browser_config(policy=ONLY_127_0_0_1, page_timeout=3.0, scroll_max_seconds=1.0, settle_max_ms=500)
    with BrowserSession(config) as session:
        snapshot = session.load(pages.url("/never-loads"))
        assert snapshot.load_timed_out is True
        record = extract_product(snapshot.html, snapshot.final_url)
        assert (record.name, record.sku, str(record.price), record.currency) == (
            "Never-loading jacket",
            "NL-1001",
            "59.00",
            "EUR",
        )
        # The browser is still usable for the next page.
        assert "A plain page" in session.load(pages.url("/plain")).html


def test_a_page_with_nothing_in_it_at_the_deadline_still_fails_as_a_timeout(pages, monkeypatch):
    config = browser_config(policy=ONLY_127_0_0_1, page_timeout=3.0, scroll_max_seconds=1.0, settle_max_ms=500)
    with BrowserSession(config) as session:
        monkeypatch.setattr(session, "_document_after_timeout", lambda url: False)
        with pytest.raises(PageLoadError) as caught:
            session.load(pages.url("/never-loads"))
        assert (caught.value.reason, caught.value.retryable) == ("timeout", True)


def test_a_very_tall_page_is_scrolled_in_steps_that_fit_the_script_timeout(pages):
    # Script timeout 11 s; one uncapped scroll through 400,000 px at 0.12 s a step would take about a minute.
    config = browser_config(
        policy=ONLY_127_0_0_1, page_timeout=5.0, scroll_max_seconds=1.0, settle_max_ms=1000, quiet_ms=100
    )
    with BrowserSession(config) as session:
        snapshot = session.load(pages.url("/tall"))
        assert "the bottom" in snapshot.html
        assert snapshot.load_timed_out is False
        assert snapshot.scroll_rounds >= 1


def test_a_load_that_get_did_not_wait_for_is_handled_like_a_load_timeout(pages):
    # Seen in CI: get() returned, then the first command waited for the still-pending load and timed out
    # ("Timed out receiving message from renderer"). The page is then read from its DOM, as when get() times out.
    config = browser_config(policy=ONLY_127_0_0_1, page_timeout=3.0, scroll_max_seconds=1.0, settle_max_ms=500)
    with BrowserSession(config) as session:
        session.start()
        driver = session.driver
        real_get, real_execute_script = driver.get, driver.execute_script
        pending = {"load": False}

        def get_without_waiting(url):
            try:
                real_get(url)
            except TimeoutException:
                pending["load"] = True

        def execute_script(script, *args):
            if pending.pop("load", False):
                raise TimeoutException("timeout: Timed out receiving message from renderer: 3.000")
            return real_execute_script(script, *args)

        driver.get, driver.execute_script = get_without_waiting, execute_script
        snapshot = session.load(pages.url("/never-loads"))
        assert pending == {}, "the pending load was not simulated"
        assert snapshot.load_timed_out is True
        assert extract_product(snapshot.html, snapshot.final_url).sku == "NL-1001"
        assert "A plain page" in session.load(pages.url("/plain")).html
