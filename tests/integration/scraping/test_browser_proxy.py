"""The browser's guard proxy on its own, driven with raw sockets: what it passes on, refuses and never reaches."""

from __future__ import annotations

import select
import socket

import pytest

from scraping.browser_guard import BlockedRequest, GuardProxy
from scraping.safety import AddressPolicy
from tests.integration.scraping.browser_servers import RecordingServer, free_port, html, twin_servers

ONLY_127_0_0_1 = AddressPolicy.build(allow_private=False, allowed_networks=["127.0.0.1/32"])


@pytest.fixture
def servers():
    inside, outside = twin_servers()
    inside.routes["/hello?x=1"] = html("<p>hello</p>")
    inside.routes["/submit"] = (201, {"Content-Type": "text/plain", "Keep-Alive": "timeout=5"}, b"stored")
    outside.routes["/hello?x=1"] = html("<p>secret</p>")
    yield inside, outside
    inside.stop()
    outside.stop()


@pytest.fixture
def guard():
    proxy = GuardProxy(ONLY_127_0_0_1, idle_timeout=5.0).start()
    yield proxy
    proxy.close()


def exchange(proxy: GuardProxy, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Sends raw bytes to the proxy and reads until it closes: status, headers (lower-case names), body."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as client:
        client.sendall(raw)
        return parse_response(read_all(client))


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ")[1]), headers, body


def get(url: str, host: str, extra: str = "") -> bytes:
    return f"GET {url} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


def test_allowed_request_goes_on_in_origin_form_and_the_connection_is_not_reused(guard, servers):
    inside, outside = servers
    status, headers, body = exchange(
        guard,
        get(
            inside.url("/hello?x=1"),
            f"127.0.0.1:{inside.port}",
            "Proxy-Connection: keep-alive\r\nConnection: keep-alive\r\nX-Page: product\r\n",
        ),
    )
    assert (status, b"hello" in body) == (200, True)
    assert headers["connection"] == "close"
    [seen] = inside.requests
    assert (seen.method, seen.path, seen.headers["X-Page"], seen.headers["Connection"]) == (
        "GET",
        "/hello?x=1",
        "product",
        "close",
    )
    assert "Proxy-Connection" not in seen.headers
    assert outside.connections == 0
    assert guard.take_blocked() == []


def test_request_body_is_relayed_and_the_servers_keep_alive_is_replaced(guard, servers):
    inside, _outside = servers
    raw = (
        f"POST {inside.url('/submit')} HTTP/1.1\r\nHost: 127.0.0.1:{inside.port}\r\n"
        "Content-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"
    ).encode()
    status, headers, body = exchange(guard, raw)
    assert (status, body, headers["connection"]) == (201, b"stored", "close")
    assert "keep-alive" not in headers
    assert inside.requests[0].body == b"hello world"


def test_refused_address_is_answered_by_the_proxy_and_never_connected_to(guard, servers):
    _inside, outside = servers
    url = outside.url("/hello?x=1")
    status, headers, body = exchange(guard, get(url, f"127.0.0.2:{outside.port}"))
    assert (status, headers["x-lookalike-blocked"]) == (403, "1")
    assert b"127.0.0.2, a loopback address" in body and b"CRAWL_ALLOWED_NETWORKS" in body
    assert outside.connections == 0
    [blocked] = guard.take_blocked()
    assert (blocked.target, blocked.refused) == (url, True)
    assert guard.take_blocked() == []  # taken once


def test_tunnels_are_opened_only_to_allowed_addresses(guard, servers):
    inside, outside = servers
    with socket.create_connection(("127.0.0.1", guard.port), timeout=10) as client:
        client.sendall(f"CONNECT 127.0.0.1:{inside.port} HTTP/1.1\r\nHost: 127.0.0.1:{inside.port}\r\n\r\n".encode())
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
        client.sendall(
            f"GET /hello?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{inside.port}\r\nConnection: close\r\n\r\n".encode()
        )
        status, _headers, body = parse_response(read_all(client))
    assert (status, b"hello" in body) == (200, True)

    connect = f"CONNECT 127.0.0.2:{outside.port} HTTP/1.1\r\nHost: 127.0.0.2:{outside.port}\r\n\r\n".encode()
    status, _headers, body = exchange(guard, connect)
    assert status == 403 and b"loopback address" in body
    assert outside.connections == 0
    assert guard.take_blocked() == [
        BlockedRequest(target=f"127.0.0.2:{outside.port}", reason=body.decode().strip(), refused=True)
    ]


class FlippingResolver:
    """A name that first resolves to the allowed address and to the refused one afterwards (DNS rebinding)."""

    def __init__(self, real, answers: list[list[str]]) -> None:
        self.real = real
        self.answers = answers
        self.calls = 0

    def __call__(self, host, port, *args, **kwargs):
        if host != "shop.rebind.test":
            return self.real(host, port, *args, **kwargs)
        addresses = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port))) for address in addresses]


@pytest.mark.parametrize("tunnel", [False, True], ids=["http", "connect"])
def test_host_is_resolved_once_and_the_checked_address_is_the_one_connected_to(guard, servers, monkeypatch, tunnel):
    inside, outside = servers  # the same port on 127.0.0.1 and 127.0.0.2
    resolver = FlippingResolver(socket.getaddrinfo, [["127.0.0.1"], ["127.0.0.2"]])
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    authority = f"shop.rebind.test:{inside.port}"
    if tunnel:
        with socket.create_connection(("127.0.0.1", guard.port), timeout=10) as client:
            client.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
            assert client.recv(4096).startswith(b"HTTP/1.1 200")
            client.sendall(f"GET /hello?x=1 HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n".encode())
            status, _headers, body = parse_response(read_all(client))
    else:
        status, _headers, body = exchange(guard, get(f"http://{authority}/hello?x=1", authority))
    assert (status, b"hello" in body) == (200, True)
    assert resolver.calls == 1
    assert (len(inside.requests), outside.connections) == (1, 0)


def test_a_name_with_any_refused_address_is_refused_whole(guard, servers, monkeypatch):
    inside, outside = servers
    monkeypatch.setattr(socket, "getaddrinfo", FlippingResolver(socket.getaddrinfo, [["127.0.0.1", "127.0.0.2"]]))
    authority = f"shop.rebind.test:{inside.port}"
    status, _headers, _body = exchange(guard, get(f"http://{authority}/hello?x=1", authority))
    assert status == 403
    assert (inside.connections, outside.connections) == (0, 0)


def test_unresolvable_or_unreachable_hosts_are_bad_gateways_not_refusals(guard, monkeypatch):
    real_getaddrinfo = socket.getaddrinfo

    def no_such_host(host, port, *args, **kwargs):
        if host != "shop.invalid":
            return real_getaddrinfo(host, port, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    closed = free_port()
    status, _headers, body = exchange(guard, get(f"http://127.0.0.1:{closed}/", f"127.0.0.1:{closed}"))
    assert status == 502 and b"could not connect" in body
    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    status, _headers, body = exchange(guard, get("http://shop.invalid/", "shop.invalid"))
    assert status == 502 and b"could not resolve host 'shop.invalid'" in body
    assert [blocked.refused for blocked in guard.take_blocked()] == [False, False]


def test_control_ports_are_never_reached_even_where_the_policy_allows(guard, servers):
    inside, _outside = servers
    guard.forbid_loopback_port(inside.port)
    status, _headers, body = exchange(guard, get(inside.url("/hello?x=1"), f"127.0.0.1:{inside.port}"))
    assert status == 403 and b"control port" in body
    status, _headers, _body = exchange(guard, get(f"http://127.0.0.1:{guard.port}/", f"127.0.0.1:{guard.port}"))
    assert status == 403  # nor the proxy itself, which would loop
    assert inside.connections == 0


def test_connections_beyond_the_limit_wait_until_a_slot_is_free():
    inside = RecordingServer().start()
    inside.routes["/"] = html("ok")
    proxy = GuardProxy(ONLY_127_0_0_1, max_connections=1, idle_timeout=5.0).start()
    try:
        holder = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        holder.sendall(b"GET ")  # takes the only slot, waiting for the rest of its head
        waiting = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        waiting.sendall(get(inside.url("/"), f"127.0.0.1:{inside.port}"))
        assert select.select([waiting], [], [], 0.3)[0] == []  # not served, not turned away: queued
        assert inside.connections == 0
        holder.close()
        status, _headers, body = parse_response(read_all(waiting))
        assert (status, b"ok" in body) == (200, True)
        waiting.close()
    finally:
        proxy.close()
        inside.stop()


def test_oversized_or_malformed_heads_are_rejected(guard, servers):
    inside, _outside = servers
    huge = get(inside.url("/"), f"127.0.0.1:{inside.port}", f"X-Padding: {'a' * 70_000}\r\n")
    assert exchange(guard, huge)[0] == 431
    assert exchange(guard, b"NONSENSE\r\n\r\n")[0] == 400
    assert exchange(guard, get("ftp://127.0.0.1/file", "127.0.0.1"))[0] == 403
    assert inside.connections == 0


def test_closing_the_proxy_ends_its_open_tunnels(servers):
    inside, _outside = servers
    proxy = GuardProxy(ONLY_127_0_0_1, idle_timeout=30.0).start()
    client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    client.sendall(f"CONNECT 127.0.0.1:{inside.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert client.recv(4096).startswith(b"HTTP/1.1 200")
    proxy.close()
    assert client.recv(4096) == b""  # closed by the proxy, not left waiting for the idle timeout
    client.close()
