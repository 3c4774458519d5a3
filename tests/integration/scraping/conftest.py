"""Fixtures of the crawler tests: a scriptable HTTP server, the fixture shop, crawl settings, shared browsers."""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fixtures.shop.server import PROFILES_FILE, ShopServer


class ScriptedServer:
    """Answers each path from ``routes``: (status, headers, body), or a list of them served in turn."""

    def __init__(self) -> None:
        self.routes: dict[str, object] = {}
        self.hits: Counter[str] = Counter()
        self.headers_seen: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - the stdlib's name
                server.hits[self.path] += 1
                server.headers_seen.append(dict(self.headers))
                route = server.routes.get(self.path, (404, {}, b"not found"))
                if isinstance(route, list):
                    route = route.pop(0) if len(route) > 1 else route[0]
                status, headers, body = route
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def scripted_server():
    server = ScriptedServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shop():
    with ShopServer(slow_seconds=2.0) as server:
        yield server


@pytest.fixture
def crawl_settings(settings, shop):
    """Settings of a test crawl: loopback allowed explicitly, no delays, the fixture shop's profiles."""
    settings.CRAWL_ALLOW_PRIVATE_ADDRESSES = False
    settings.CRAWL_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.CRAWL_ALLOWED_HOSTS_IGNORE_ROBOTS = []
    settings.CRAWL_DELAY_SECONDS = 0.0
    settings.CRAWL_CONCURRENCY = 1
    settings.CRAWL_PAGE_RETRIES = 0
    settings.CRAWL_IMAGE_RETRIES = 1
    settings.CRAWL_RETRY_BACKOFF_SECONDS = 0.01
    settings.CRAWL_PAGE_TIMEOUT_SECONDS = 20.0
    settings.CRAWL_PROFILES_FILE = str(PROFILES_FILE)
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
    shop.failing.clear()
    shop.reset_counts()
    return settings


@pytest.fixture(scope="module")
def browser_pool():
    from django.conf import settings

    for path in (settings.CHROMIUM_BINARY, settings.CHROMEDRIVER_PATH):
        if not Path(path).is_file():
            pytest.fail(f"{path} is missing: apt-get install chromium chromium-driver (browser tests need them)")
    from scraping.browser import BrowserConfig, BrowserPool

    pool = BrowserPool(
        BrowserConfig(
            binary=settings.CHROMIUM_BINARY,
            driver_path=settings.CHROMEDRIVER_PATH,
            user_agent=settings.CRAWL_USER_AGENT,
            page_timeout=20.0,
            scroll_max_seconds=10.0,
        )
    )
    yield pool
    pool.close()


@pytest.fixture
def shared_browsers(monkeypatch, browser_pool):
    """Crawls started by the command, the task or the API use the module's browsers."""

    class Borrowed:
        def acquire(self):
            return browser_pool.acquire()

        def release(self, session):
            browser_pool.release(session)

        def close(self):
            """The module closes the real pool."""

    monkeypatch.setattr("scraping.crawler.open_browser_pool", lambda options: Borrowed())
    return browser_pool
