"""Browsers and HTTP servers for the browser tests; each server listens on one loopback address and counts connections.

Linux routes all of 127.0.0.0/8 to the loopback interface, so a server on 127.0.0.2 stands for "an address
inside the network" while a test's policy allows only 127.0.0.1/32.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scraping.browser import BrowserConfig


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class RecordingServer:
    """Answers each path from ``routes`` ((status, headers, body); 404 otherwise); counts TCP connections too."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.requests: list[SeenRequest] = []
        self.connections = 0
        self._lock = threading.Lock()
        recorder = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                accepted = super().get_request()
                with recorder._lock:
                    recorder.connections += 1
                return accepted

            def handle_error(self, request, client_address):
                """Browsers drop connections mid-answer; that is no test failure."""

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with recorder._lock:
                    recorder.requests.append(SeenRequest(self.command, self.path, dict(self.headers), body))
                status, headers, content = recorder.routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_HEAD = do_OPTIONS = _answer  # noqa: N815 - the stdlib's names

            def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
                pass

        self._server = Server((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"

    def paths(self) -> list[str]:
        with self._lock:
            return [request.path for request in self.requests]

    def start(self) -> RecordingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() of a server that never served would wait forever
            self._server.shutdown()
        self._server.server_close()


def html(body: str, head: str = "") -> tuple[int, dict[str, str], bytes]:
    return (
        200,
        {"Content-Type": "text/html; charset=utf-8"},
        f"<!doctype html><html><head>{head}</head><body>{body}</body></html>".encode(),
    )


def redirect(location: str) -> tuple[int, dict[str, str], bytes]:
    return 302, {"Location": location}, b""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def twin_servers(
    inside_host: str = "127.0.0.1", outside_host: str = "127.0.0.2"
) -> tuple[RecordingServer, RecordingServer]:
    """Two servers on the same port of two addresses (so one host name could point at either)."""
    for _attempt in range(20):
        inside = RecordingServer(inside_host)
        try:
            outside = RecordingServer(outside_host, inside.port)
        except OSError:
            inside.stop()
            continue
        return inside.start(), outside.start()
    raise RuntimeError("no port free on both addresses")


def browser_config(**overrides) -> BrowserConfig:
    from django.conf import settings

    for path in (settings.CHROMIUM_BINARY, settings.CHROMEDRIVER_PATH):
        if not Path(path).is_file():
            pytest.fail(f"{path} is missing: apt-get install chromium chromium-driver (browser tests need them)")
    options = {"page_timeout": 20.0, "scroll_max_seconds": 5.0, **overrides}
    return BrowserConfig(
        binary=settings.CHROMIUM_BINARY,
        driver_path=settings.CHROMEDRIVER_PATH,
        user_agent=settings.CRAWL_USER_AGENT,
        **options,
    )
