"""Which URLs the crawler may touch: only http(s), and no private, loopback or link-local address.

The check resolves the host name and judges every address it resolves to, so a public name that points
inside the network is refused as well. The downloader then connects only to the addresses checked here
(see ``download.py``), which closes the window in which DNS could answer differently a second time.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

ALLOWED_SCHEMES = ("http", "https")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class UnsafeURL(ValueError):
    """A URL the crawler refuses to fetch; the message says why and which setting would allow it."""


def _describe(ip: IPAddress) -> str | None:
    """Why an address is not public, in words; None for a public address."""
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Private addresses are refused unless ``allow_private`` or one of ``allowed_networks`` covers them."""

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = field(default_factory=tuple)

    @classmethod
    def build(cls, *, allow_private: bool, allowed_networks: Iterable[str]) -> AddressPolicy:
        networks = []
        for raw in allowed_networks:
            try:
                networks.append(ipaddress.ip_network(raw.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(
                    f"CRAWL_ALLOWED_NETWORKS entry {raw!r} is not a network (use CIDR, e.g. 127.0.0.0/8)"
                ) from exc
        return cls(allow_private=allow_private, allowed_networks=tuple(networks))

    @classmethod
    def from_settings(cls) -> AddressPolicy:
        from django.conf import settings

        return cls.build(
            allow_private=settings.CRAWL_ALLOW_PRIVATE_ADDRESSES, allowed_networks=settings.CRAWL_ALLOWED_NETWORKS
        )

    def check_ip(self, ip: IPAddress, *, url: str = "") -> None:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
        problem = _describe(ip)
        if problem is None or self.allow_private:
            return
        if any(ip in network for network in self.allowed_networks):
            return
        where = f"{url} resolves to {ip}" if url else str(ip)
        raise UnsafeURL(
            f"refused: {where}, {problem} (set CRAWL_ALLOWED_NETWORKS or CRAWL_ALLOW_PRIVATE_ADDRESSES to allow it)"
        )

    def resolve(self, host: str, port: int, *, url: str = "") -> list[tuple]:
        """``getaddrinfo`` results for host:port, refusing them all if any address is not allowed."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise UnsafeURL(f"refused: cannot resolve host {host!r} ({exc.strerror})") from exc
        if not infos:
            raise UnsafeURL(f"refused: host {host!r} resolves to no address")
        for info in infos:
            self.check_ip(ipaddress.ip_address(info[4][0].split("%", 1)[0]), url=url or host)
        return infos

    def check_url(self, url: str) -> tuple[str, int]:
        """Validate scheme and addresses of ``url``; returns (host, port) for the caller to connect to."""
        host, port = check_url_syntax(url)
        self.resolve(host, port, url=url)
        return host, port


def check_url_syntax(url: str) -> tuple[str, int]:
    """Scheme, host and port of an absolute http(s) URL without credentials, or UnsafeURL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"refused: {url!r} is not a valid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeURL(f"refused: {url!r} is not an http(s) URL")
    if not parts.hostname:
        raise UnsafeURL(f"refused: {url!r} has no host")
    if parts.username or parts.password:
        raise UnsafeURL(f"refused: {url!r} carries credentials")
    return parts.hostname, port or (443 if scheme == "https" else 80)


def connect_checked(infos: Iterable[tuple], timeout: float) -> socket.socket:
    """A socket connected to the first of ``infos`` (getaddrinfo rows the policy already checked) that
    answers: the address connected to is always one that was checked, never a second DNS answer."""
    last_error: OSError | None = None
    for family, socktype, proto, _name, sockaddr in infos:
        sock = socket.socket(family, socktype, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        return sock
    raise last_error or OSError("no address to connect to")
