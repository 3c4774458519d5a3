"""Chromium's own requests obey the crawler's AddressPolicy: a page on an allowed host is read, and nothing it
asks for (images, frames, fetch, XHR, WebSocket, WebRTC, redirects) reaches an address the policy refuses.

The policy of these tests allows 127.0.0.1/32 only; the "inside the network" server listens on 127.0.0.2.
"""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest
from django.test import override_settings
from selenium.webdriver.support.ui import WebDriverWait

from scraping.browser import BrowserSession, PageLoadError
from scraping.extract import extract_product
from tests.fixtures.shop.server import PHOTOS, photo_bytes
from tests.integration.scraping.browser_servers import browser_config, free_port, html, redirect, twin_servers

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def session():
    """One browser whose policy comes from the settings (BrowserConfig.policy left None), as in a crawl."""
    with override_settings(CRAWL_ALLOW_PRIVATE_ADDRESSES=False, CRAWL_ALLOWED_NETWORKS=["127.0.0.1/32"]):
        browser = BrowserSession(browser_config())
        browser.start()
    yield browser
    browser.close()


@pytest.fixture
def servers():
    inside, outside = twin_servers()
    yield inside, outside
    inside.stop()
    outside.stop()


@pytest.fixture
def udp_outside():
    """A STUN "server" inside the network: WebRTC must not send it a single datagram."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.2", 0))
        sock.setblocking(False)
        yield sock


def product_page(inside, outside, stun_port: int) -> str:
    out = outside.url
    return html(
        head=f"""<title>Harbour raincoat</title>
<script type="application/ld+json">{{"@context": "https://schema.org", "@type": "Product", "name": "Harbour raincoat",
 "sku": "HR-1", "image": "{inside.url("/img/coat.jpg")}",
 "offers": {{"@type": "Offer", "price": "59.00", "priceCurrency": "EUR"}}}}</script>
<link rel="stylesheet" href="{out("/style.css")}">""",
        body=f"""<h1>Harbour raincoat</h1>
<img src="{inside.url("/img/coat.jpg")}" width="300">
<img src="{out("/img/pixel.png")}">
<img src="{inside.url("/jump/img")}">
<img src="{outside.url("/img/tls.png", scheme="https")}">
<iframe src="{out("/frame")}"></iframe>
<iframe src="{inside.url("/jump/frame")}"></iframe>
<script>
const attempts = [];
const note = (name, promise) => attempts.push(promise.then(() => `${{name}}:answered`, () => `${{name}}:failed`));
note('fetch', fetch('{out("/api/fetch")}', {{mode: 'no-cors'}}));
note('fetch-redirected', fetch('{inside.url("/jump/api")}', {{mode: 'no-cors'}}));
note('xhr', new Promise((answered, failed) => {{
  const xhr = new XMLHttpRequest();
  xhr.open('POST', '{out("/api/xhr")}');
  xhr.onload = answered; xhr.onerror = failed; xhr.send('form=data');
}}));
note('websocket', new Promise((answered, failed) => {{
  const socket = new WebSocket('ws://127.0.0.2:{outside.port}/socket');
  socket.onopen = answered; socket.onerror = failed;
}}));
note('webrtc', new Promise(answered => {{
  const peer = new RTCPeerConnection({{iceServers: [{{urls: 'stun:127.0.0.2:{stun_port}'}}]}});
  peer.createDataChannel('probe');
  peer.onicegatheringstatechange = () => peer.iceGatheringState === 'complete' && answered();
  peer.createOffer().then(offer => peer.setLocalDescription(offer));
}}));
Promise.all(attempts).then(results => {{ document.body.dataset.attempts = results.join(' '); }});
</script>""",
    )


def test_page_is_read_while_nothing_it_asks_for_reaches_a_refused_address(session, servers, udp_outside):
    inside, outside = servers
    inside.routes.update(
        {
            "/product": product_page(inside, outside, udp_outside.getsockname()[1]),
            "/img/coat.jpg": (200, {"Content-Type": "image/jpeg"}, photo_bytes(PHOTOS["linen-front"])),
            "/jump/img": redirect(outside.url("/img/redirected.png")),
            "/jump/frame": redirect(outside.url("/frame-redirected")),
            "/jump/api": redirect(outside.url("/api/redirected")),
        }
    )
    snapshot = session.load(inside.url("/product"))
    # Every attempt has run its course (so the page did try), and each one failed fast at the proxy.
    attempts = WebDriverWait(session.driver, 15).until(lambda driver: driver.execute_script(ATTEMPTS_JS))
    assert sorted(attempts.split()) == [
        "fetch-redirected:answered",  # no-cors: the proxy's 403 is an opaque answer, not the server's
        "fetch:answered",
        "webrtc:answered",  # gathering completed without any UDP candidate
        "websocket:failed",
        "xhr:failed",
    ]

    assert outside.connections == 0
    with pytest.raises(BlockingIOError):
        udp_outside.recv(2048)
    blocked = {request.target for request in session.guard.take_blocked() if request.refused}
    assert blocked >= {
        outside.url("/img/pixel.png"),
        outside.url("/img/redirected.png"),
        outside.url("/frame"),
        outside.url("/frame-redirected"),
        outside.url("/api/fetch"),
        outside.url("/api/redirected"),
        outside.url("/api/xhr"),
        outside.url("/style.css"),
        f"127.0.0.2:{outside.port}",  # the https image and the WebSocket, as tunnels
    }

    assert set(inside.paths()) >= {"/product", "/img/coat.jpg", "/jump/img", "/jump/frame", "/jump/api"}
    record = extract_product(snapshot.html, snapshot.final_url, rendered_sizes=snapshot.rendered_sizes)
    assert (record.name, record.sku, record.price, record.currency) == (
        "Harbour raincoat",
        "HR-1",
        Decimal("59.00"),
        "EUR",
    )
    assert record.image_urls[0] == inside.url("/img/coat.jpg")
    assert snapshot.status == 200


ATTEMPTS_JS = "return document.body.dataset.attempts || null;"


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_redirect_to_a_refused_address_fails_as_refused_without_reaching_it(session, servers, scheme):
    inside, outside = servers
    target = outside.url("/admin", scheme=scheme)
    inside.routes["/moved"] = redirect(target)
    with pytest.raises(PageLoadError) as caught:
        session.load(inside.url("/moved"))
    error = caught.value
    assert (error.refused, error.retryable, error.reason, error.final_url) == (True, False, "refused", target)
    assert str(error).startswith("redirected: refused:") and "127.0.0.2, a loopback address" in str(error)
    assert outside.connections == 0


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_redirect_to_an_address_nobody_answers_is_a_retryable_network_failure(session, servers, scheme):
    inside, _outside = servers
    closed = free_port()
    inside.routes["/gone"] = redirect(f"{scheme}://127.0.0.1:{closed}/shop")
    with pytest.raises(PageLoadError) as caught:
        session.load(inside.url("/gone"))
    error = caught.value
    assert (error.refused, error.retryable, error.reason) == (False, True, "network")
    assert f"could not connect to 127.0.0.1:{closed}" in str(error)


def test_the_browser_keeps_working_after_refusals(session, servers):
    inside, outside = servers
    inside.routes["/moved"] = redirect(outside.url("/admin"))
    inside.routes["/fine"] = html("<h1>Still here</h1>")
    driver = session.driver
    with pytest.raises(PageLoadError):
        session.load(inside.url("/moved"))
    snapshot = session.load(inside.url("/fine"))
    assert "Still here" in snapshot.html
    assert session.driver is driver  # not restarted
