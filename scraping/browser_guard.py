"""A forward proxy on loopback that Chromium is forced through, so that every request of the browser obeys the policy.

Navigations, redirects, images, frames, fetch/XHR and WebSockets all reach the network only through this proxy:
it resolves the host once, judges every address with the policy and connects to exactly the address it checked,
so a host name cannot answer one address to the check and another to the connection (DNS rebinding).

Why a proxy and not DevTools request interception: interception sees a URL, but Chromium then resolves the host
itself, which leaves the rebinding gap open. Why hand-written: proxy.py runs its acceptors in other processes (the
policy and the log of blocked requests live in this one) and mitmproxy brings a whole TLS-intercepting stack; what is
needed here is small: CONNECT tunnels (https, wss) and absolute-form http requests, one request per connection.
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import logging
import selectors
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from scraping.safety import AddressPolicy, UnsafeURL, check_url_syntax, connect_checked

logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
CHUNK = 64 * 1024
# Headers that belong to one hop; the proxy sets its own "Connection: close" instead.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer"}


@dataclass(frozen=True)
class BlockedRequest:
    """A request the proxy did not pass on: ``refused`` by the policy, or its address could not be reached."""

    target: str  # the URL of an http request, "host:port" of a tunnel
    reason: str
    refused: bool

    def matches(self, url: str) -> bool:
        """Whether this is the request (or the tunnel) that loading ``url`` needed."""
        if self.target == url.split("#", 1)[0]:
            return True
        parts = urlsplit(url)
        if parts.scheme not in ("https", "wss") or not parts.hostname:
            return False
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return self.target == f"{host}:{parts.port or 443}"


class _Blocked(Exception):
    def __init__(self, reason: str, *, refused: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused


class GuardProxy:
    """The proxy of one browser: a listening thread plus one thread per connection, at most ``max_connections``."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        connect_timeout: float = 10.0,
        idle_timeout: float = 30.0,
        max_connections: int = 64,
        keep_blocked: int = 200,
    ) -> None:
        self.policy = policy
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._forbidden_ports = {self.port}  # loopback ports never to connect to: this proxy, the browser's controls
        self._blocked: collections.deque[BlockedRequest] = collections.deque(maxlen=keep_blocked)
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=f"browser-guard-{self.port}", daemon=True)

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    @property
    def proxy_server(self) -> str:
        """The value of Chromium's ``--proxy-server``."""
        return f"http://127.0.0.1:{self.port}"

    def forbid_loopback_port(self, port: int) -> None:
        """Never connect to this port on loopback (chromedriver's and DevTools' control ports), whatever the policy."""
        self._forbidden_ports.add(int(port))

    def start(self) -> GuardProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        self._listener.close()
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread waiting on it, which then closes it
        self._thread.join(timeout=2)

    def take_blocked(self) -> list[BlockedRequest]:
        """Requests blocked since the last call, oldest first."""
        with self._lock:
            blocked = list(self._blocked)
            self._blocked.clear()
        return blocked

    # --- connections --------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        """Accepts only while a slot is free: beyond ``max_connections`` clients wait in the listen backlog."""
        while not self._closed.is_set():
            if not self._slots.acquire(timeout=0.5):
                continue
            try:
                client, _address = self._listener.accept()
            except OSError:
                self._slots.release()
                if self._closed.is_set():
                    return
                logger.warning("the browser's proxy could not accept a connection", exc_info=True)
                time.sleep(0.1)  # out of file descriptors, say: try again rather than strand the browser
                continue
            self._track(client)
            try:
                threading.Thread(target=self._serve, args=(client,), name="browser-guard-conn", daemon=True).start()
            except RuntimeError:  # no thread to be had
                self._forget(client)
                self._slots.release()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)
        if self._closed.is_set():  # opened while close() ran: end it as close() would have
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        _close(sock)

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            client.settimeout(self.idle_timeout)
            head, rest = _read_head(client)
            if head is None:
                return
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            parts = request_line.split(" ")
            if len(parts) != 3:
                _answer(client, 400, "malformed request line")
                return
            method, target, version = parts
            try:
                if method.upper() == "CONNECT":
                    upstream = self._open_tunnel(client, target)
                    if rest:
                        upstream.sendall(rest)
                    self._relay(client, upstream, rewrite_response=False)
                else:
                    upstream, upgrade = self._forward_request(method, target, version, header_lines, rest)
                    self._relay(client, upstream, rewrite_response=not upgrade)
            except _Blocked as blocked:
                self._record(BlockedRequest(target=target, reason=blocked.reason, refused=blocked.refused))
                _answer(client, 403 if blocked.refused else 502, blocked.reason)
        except (OSError, ValueError, UnicodeError):
            logger.debug("browser proxy connection ended early", exc_info=True)
        finally:
            if upstream is not None:
                self._forget(upstream)
            self._forget(client)
            self._slots.release()

    def _record(self, blocked: BlockedRequest) -> None:
        logger.debug("browser request blocked: %s (%s)", blocked.target, blocked.reason)
        with self._lock:
            self._blocked.append(blocked)

    def _open_tunnel(self, client: socket.socket, target: str) -> socket.socket:
        parts = urlsplit(f"//{target}")
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            host = port = None
        if not host or not port:
            raise _Blocked(f"refused: {target!r} is not host:port", refused=True)
        upstream = self._connect(host, port, url=f"{host}:{port}")
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        return upstream

    def _forward_request(self, method: str, target: str, version: str, header_lines: list[str], rest: bytes):
        """Sends the request on in origin form; returns the upstream socket and whether it asked for an upgrade."""
        try:
            host, port = check_url_syntax(target)
        except UnsafeURL as exc:
            raise _Blocked(str(exc), refused=True) from exc
        if urlsplit(target).scheme.lower() != "http":
            raise _Blocked(f"refused: {target!r} must be tunnelled (CONNECT), not forwarded", refused=True)
        parts = urlsplit(target)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = [line for line in header_lines if line and ":" in line]
        upgrade = any(line.split(":", 1)[0].strip().lower() == "upgrade" for line in headers)
        kept = [line for line in headers if line.split(":", 1)[0].strip().lower() not in HOP_BY_HOP]
        kept.append("Connection: upgrade" if upgrade else "Connection: close")
        head = "\r\n".join([f"{method} {path} {version}", *kept]) + "\r\n\r\n"
        upstream = self._connect(host, port, url=target)
        upstream.sendall(head.encode("latin-1"))
        if rest:
            upstream.sendall(rest)
        return upstream, upgrade

    def _connect(self, host: str, port: int, *, url: str) -> socket.socket:
        """A socket to one of the addresses the policy allowed for host:port (resolved once, here)."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise _Blocked(f"could not resolve host {host!r} ({getattr(exc, 'strerror', exc)})", refused=False) from exc
        for *_rest, sockaddr in infos:  # every address must pass, as in AddressPolicy.resolve
            ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            try:
                self.policy.check_ip(ip, url=url)
            except UnsafeURL as exc:
                raise _Blocked(str(exc), refused=True) from exc
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            if ip.is_loopback and sockaddr[1] in self._forbidden_ports:
                raise _Blocked(f"refused: {url} is the browser's own control port", refused=True)
        try:
            sock = connect_checked(infos, self.connect_timeout)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise _Blocked(f"could not connect to {host}:{port} ({reason})", refused=False) from exc
        sock.settimeout(self.idle_timeout)
        self._track(sock)
        return sock

    def _relay(self, client: socket.socket, upstream: socket.socket, *, rewrite_response: bool) -> None:
        """Copies bytes both ways until the server is done (or the line is idle for ``idle_timeout``)."""
        rewriter = _ResponseHeadRewriter() if rewrite_response else None
        peer = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ)
            selector.register(upstream, selectors.EVENT_READ)
            while not self._closed.is_set():
                events = selector.select(self.idle_timeout)
                if not events:
                    return
                for key, _mask in events:
                    source = key.fileobj
                    data = source.recv(CHUNK)
                    if source is upstream:
                        passed = rewriter.feed(data) if rewriter is not None else data
                        if passed:
                            client.sendall(passed)
                        if not data:
                            return  # the server closed: the response (or tunnel) is over
                        continue
                    if not data:
                        if rewriter is not None:
                            return  # a browser that closes wants nothing more of this request
                        selector.unregister(client)
                        with contextlib.suppress(OSError):
                            upstream.shutdown(socket.SHUT_WR)
                        continue
                    peer[source].sendall(data)


class _ResponseHeadRewriter:
    """Makes the response's final head say "Connection: close", so Chromium never reuses the proxy connection."""

    def __init__(self) -> None:
        self._buffer = b""
        self._done = False

    def feed(self, data: bytes) -> bytes:
        if not data:
            out, self._buffer = self._buffer, b""
            return out
        if self._done:
            return data
        self._buffer += data
        out = b""
        while not self._done:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:  # not HTTP as we know it: pass it on untouched
                    self._done = True
                    out, self._buffer = out + self._buffer, b""
                return out
            head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
            status_line, *lines = head.split(b"\r\n")
            fields = status_line.split(b" ", 2)
            interim = len(fields) > 1 and fields[1].startswith(b"1") and fields[1] != b"101"
            if not interim:
                lines = [
                    line for line in lines if line.split(b":", 1)[0].strip().lower().decode("latin-1") not in HOP_BY_HOP
                ]
                lines.append(b"Connection: close")
                self._done = True
            out += b"\r\n".join([status_line, *lines]) + b"\r\n\r\n"
        out, self._buffer = out + self._buffer, b""
        return out


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    """The request head (without the blank line) and whatever followed it; None if the client went away."""
    buffer = b""
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end > MAX_HEAD_BYTES or (end < 0 and len(buffer) > MAX_HEAD_BYTES):
            _answer(sock, 431, "request head too large")
            return None, b""
        if end >= 0:
            return buffer[:end], buffer[end + 4 :]
        data = sock.recv(CHUNK)
        if not data:
            return None, b""
        buffer += data


def _answer(sock: socket.socket, status: int, reason: str) -> None:
    """A short plain-text answer from the proxy itself (the header tells it from a site's own answers).

    What the client sent and nobody read is drained before closing: closing over unread bytes sends a reset,
    which can destroy the answer before the client reads it.
    """
    titles = {400: "Bad Request", 403: "Forbidden", 431: "Request Header Fields Too Large", 502: "Bad Gateway"}
    body = f"{reason}\n".encode()
    head = (
        f"HTTP/1.1 {status} {titles[status]}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "X-Lookalike-Blocked: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):
        sock.sendall(head.encode("latin-1") + body)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(1.0)
        drained = 0
        while drained < 1024 * 1024 and (data := sock.recv(CHUNK)):
            drained += len(data)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
