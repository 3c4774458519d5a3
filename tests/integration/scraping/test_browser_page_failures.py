"""Pages that used to trip the browser up: dialogs (alert, confirm, prompt, beforeunload) and redirect loops."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from scraping import browser as browser_module
from scraping.browser import BrowserSession, PageLoadError
from scraping.safety import AddressPolicy
from tests.integration.scraping.browser_servers import RecordingServer, browser_config, html, redirect

pytestmark = pytest.mark.browser

ONLY_127_0_0_1 = AddressPolicy.build(allow_private=False, allowed_networks=["127.0.0.1/32"])
# Short settling: these pages have nothing to lazy-load, and each load would otherwise take a second.
QUICK = {"policy": ONLY_127_0_0_1, "quiet_ms": 100, "scroll_pause": 0.05}

AFTER = "<p id='after'>{text}</p>"
DIALOG_PAGES = {
    "/alert-inline": "<script>alert('Welcome!')</script>" + AFTER.format(text="read after the alert"),
    "/alert-later": AFTER.format(text="read while an alert is due")
    + "<script>setTimeout(() => alert('Sale!'), 150)</script>",
    "/confirm-and-prompt": """<p id='after'>answers:</p><script>
        const answers = [confirm('Are you over 18?'), prompt('Your postcode?')];
        document.getElementById('after').textContent = 'answers: ' + JSON.stringify(answers);
        </script>""",
    "/alert-from-a-fresh-frame": """<p id='after'>read after the frame's alert</p><script>
        const frame = document.createElement('iframe');
        document.body.appendChild(frame);
        setTimeout(() => frame.contentWindow.alert('from a frame'), 100);
        </script>""",
    "/alert-while-scrolling": """<div style='height: 4000px'></div><p id='after'>read at the bottom</p><script>
        addEventListener('scroll', () => {
          if (scrollY > 1500 && !window.warned) { window.warned = true; alert('Wait!'); }
        });
        </script>""",
}
EXPECTED_TEXT = {
    "/alert-inline": "read after the alert",
    "/alert-later": "read while an alert is due",
    "/confirm-and-prompt": "answers: [false,null]",
    "/alert-from-a-fresh-frame": "read after the frame's alert",
    "/alert-while-scrolling": "read at the bottom",
}


@pytest.fixture(scope="module")
def pages():
    server = RecordingServer().start()
    for path, body in DIALOG_PAGES.items():
        server.routes[path] = html(body)
    server.routes["/plain"] = html("<h1>A plain page</h1>")
    server.routes["/leave-me"] = html(
        "<button id='stay'>Stay</button><script>"
        "onbeforeunload = event => { event.preventDefault(); return 'Leave?'; };"
        "addEventListener('beforeunload', event => { event.preventDefault(); event.returnValue = 'Leave?'; });"
        "</script>"
    )
    server.routes["/loop"] = redirect("/loop")
    server.routes["/ping"] = redirect("/pong")
    server.routes["/pong"] = redirect("/ping")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def session():
    browser = BrowserSession(browser_config(**QUICK))
    browser.start()
    yield browser
    browser.close()


def rendered_text(session: BrowserSession) -> str:
    return session.driver.find_element(By.ID, "after").text


@pytest.mark.parametrize("path", list(DIALOG_PAGES))
def test_dialogs_are_answered_and_the_page_is_read_normally(session, pages, path):
    driver = session.driver
    snapshot = session.load(pages.url(path))
    assert rendered_text(session) == EXPECTED_TEXT[path]
    assert EXPECTED_TEXT[path] in snapshot.html
    assert session.driver is driver  # no restart


def test_a_dialog_that_gets_past_the_page_script_is_dismissed_by_the_driver(pages, monkeypatch):
    """The second line of defence: without the script that answers dialogs, chromedriver dismisses them."""
    monkeypatch.setattr(browser_module, "SILENCE_DIALOGS_JS", "")
    with BrowserSession(browser_config(**QUICK)) as bare:
        driver = bare.driver
        for path in ("/alert-inline", "/alert-later"):
            snapshot = bare.load(pages.url(path))
            assert EXPECTED_TEXT[path] in snapshot.html
        assert bare.driver is driver


def test_a_page_that_asks_before_unloading_is_left_all_the_same(session, pages):
    session.load(pages.url("/leave-me"))
    session.driver.find_element(By.ID, "stay").click()  # a real click: the page may now show its prompt
    snapshot = session.load(pages.url("/plain"))
    assert (snapshot.final_url, "A plain page" in snapshot.html) == (pages.url("/plain"), True)


@pytest.mark.parametrize("path", ["/loop", "/ping"])
def test_redirect_loop_is_a_distinct_retryable_failure(session, pages, path):
    driver = session.driver
    with pytest.raises(PageLoadError) as caught:
        session.load(pages.url(path))
    error = caught.value
    assert (error.redirect_loop, error.retryable, error.refused) == (True, True, False)
    assert (error.reason, error.net_error, error.status) == ("redirect_loop", "ERR_TOO_MANY_REDIRECTS", None)
    assert str(error) == f"{pages.url(path)} redirects in a loop (net::ERR_TOO_MANY_REDIRECTS)"
    assert session.driver is driver
    assert "A plain page" in session.load(pages.url("/plain")).html  # the browser is fine afterwards


def test_a_browser_whose_proxy_died_fails_the_page_and_starts_afresh(pages):
    with BrowserSession(browser_config(**QUICK)) as browser:
        first_driver = browser.driver
        browser.guard.close()
        with pytest.raises(PageLoadError) as caught:
            browser.load(pages.url("/plain"))
        assert (caught.value.retryable, caught.value.net_error) == (True, "ERR_PROXY_CONNECTION_FAILED")
        snapshot = browser.load(pages.url("/plain"))
        assert "A plain page" in snapshot.html
        assert browser.driver is not first_driver
