"""Fetching robots.txt and product photos without letting a page steer us into the private network.

Every hop (the first request and each redirect) is checked by ``AddressPolicy`` and the socket is opened
to exactly the addresses that were checked, never to a second DNS answer. Bodies are read with a size
cap and a deadline; images must say they are images and decode with Pillow before anyone stores them.
"""

from __future__ import annotations

import hashlib
import http.client
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urljoin, urlsplit

from core.photos import CheckedPhoto, PhotoError, check_photo
from scraping.politeness import HostThrottle
from scraping.safety import AddressPolicy, UnsafeURL, check_url_syntax, connect_checked

REDIRECT_STATUSES = {301, 302, 303, 307, 308}
RETRYABLE_STATUSES = {408, 425, 429, 500, 502, 503, 504}
CHUNK = 64 * 1024
MAX_RETRY_AFTER_SECONDS = 60.0


class FetchError(Exception):
    """A fetch that failed; ``retryable`` says whether trying again later may help."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None, retry_after=None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class ByteBudgetExceeded(FetchError):
    """The run has downloaded as many bytes as CRAWL_MAX_BYTES allows."""


class ByteBudget:
    """Bytes downloaded by one run, shared by its threads, with a hard cap."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, amount: int) -> None:
        with self._lock:
            if self.used + amount > self.limit:
                self.used = self.limit
                raise ByteBudgetExceeded(f"run byte limit reached ({self.limit:,} bytes, CRAWL_MAX_BYTES)")
            self.used += amount

    @property
    def exhausted(self) -> bool:
        with self._lock:
            return self.used >= self.limit


class _GuardedHTTPConnection(http.client.HTTPConnection):
    """Connects only to addresses that passed the policy (resolved once, here)."""

    policy: AddressPolicy
    checked_url: str = ""

    def connect(self) -> None:
        infos = self.policy.resolve(self.host, self.port, url=self.checked_url)
        self.sock = connect_checked(infos, self.timeout)


class _GuardedHTTPSConnection(http.client.HTTPSConnection, _GuardedHTTPConnection):
    """TLS on top of the guarded socket (HTTPSConnection.connect calls the guarded connect first)."""


@dataclass(frozen=True)
class FetchResult:
    url: str
    final_url: str
    status: int
    headers: Message
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get_content_type() if self.headers.get("Content-Type") else ""


class SafeHttpClient:
    """A small GET-only HTTP client for the crawler: policy-checked hops, honest User-Agent, size cap."""

    def __init__(
        self,
        *,
        policy: AddressPolicy,
        user_agent: str,
        timeout: float,
        max_redirects: int = 5,
        budget: ByteBudget | None = None,
    ) -> None:
        self.policy = policy
        self.user_agent = user_agent
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.budget = budget
        self._tls = ssl.create_default_context()

    def get(self, url: str, *, max_bytes: int, headers: dict[str, str] | None = None) -> FetchResult:
        deadline = time.monotonic() + self.timeout
        current = url
        for _hop in range(self.max_redirects + 1):
            status, response_headers, body = self._get_once(
                current, max_bytes=max_bytes, headers=headers, deadline=deadline
            )
            location = response_headers.get("Location")
            if status in REDIRECT_STATUSES and location:
                current = urljoin(current, location.strip())
                continue
            return FetchResult(url=url, final_url=current, status=status, headers=response_headers, body=body)
        raise FetchError(f"more than {self.max_redirects} redirects starting at {url}")

    def _get_once(self, url: str, *, max_bytes: int, headers, deadline: float) -> tuple[int, Message, bytes]:
        host, port = check_url_syntax(url)
        parts = urlsplit(url)
        if parts.scheme.lower() == "https":
            connection = _GuardedHTTPSConnection(host, port, timeout=self.timeout, context=self._tls)
        else:
            connection = _GuardedHTTPConnection(host, port, timeout=self.timeout)
        connection.policy = self.policy
        connection.checked_url = url
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        request_headers = {"User-Agent": self.user_agent, "Accept-Encoding": "identity", "Connection": "close"}
        request_headers.update(headers or {})
        try:
            connection.request("GET", target, headers=request_headers)
            response = connection.getresponse()
            if response.status in REDIRECT_STATUSES:
                return response.status, response.headers, b""
            declared = response.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"{url} is {int(declared):,} bytes, more than the {max_bytes:,} allowed")
            body = self._read_capped(response, url=url, max_bytes=max_bytes, deadline=deadline)
            return response.status, response.headers, body
        except UnsafeURL:
            raise
        except TimeoutError as exc:
            raise FetchError(f"{url} timed out after {self.timeout:g}s", retryable=True) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"{url} could not be fetched ({exc.__class__.__name__}: {exc})", retryable=True) from exc
        finally:
            connection.close()

    def _read_capped(self, response, *, url: str, max_bytes: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise FetchError(f"{url} took longer than {self.timeout:g}s to download", retryable=True)
            chunk = response.read(CHUNK)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(f"{url} is larger than the {max_bytes:,} bytes allowed")
            if self.budget is not None:
                self.budget.take(len(chunk))
            chunks.append(chunk)


@dataclass(frozen=True)
class DownloadedImage:
    url: str
    final_url: str
    content_type: str
    sha256: str
    photo: CheckedPhoto  # checked and decoded once here; stored as is, without a second decode

    @property
    def content(self) -> bytes:
        return self.photo.content

    @property
    def width(self) -> int:
        return self.photo.width

    @property
    def height(self) -> int:
        return self.photo.height


def _retry_after_seconds(headers: Message) -> float | None:
    raw = (headers.get("Retry-After") or "").strip()
    return min(float(raw), MAX_RETRY_AFTER_SECONDS) if raw.isdigit() else None


class ImageDownloader:
    """Downloads one photo: polite per host, retried with exponential backoff when the failure is transient."""

    def __init__(
        self,
        *,
        client: SafeHttpClient,
        throttle: HostThrottle,
        max_bytes: int,
        retries: int,
        backoff: float,
        sleep=time.sleep,
    ) -> None:
        self.client = client
        self.throttle = throttle
        self.max_bytes = max_bytes
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep

    def download(self, url: str, *, referer: str = "") -> DownloadedImage:
        attempt = 0
        while True:
            try:
                return self._download_once(url, referer=referer)
            except (UnsafeURL, ByteBudgetExceeded):
                raise
            except FetchError as exc:
                if not exc.retryable or attempt >= self.retries:
                    if attempt:
                        raise FetchError(f"{exc} (gave up after {attempt + 1} tries)", status=exc.status) from exc
                    raise
                wait = exc.retry_after if exc.retry_after is not None else self.backoff * (2**attempt)
                attempt += 1
                self._sleep(wait)

    def _download_once(self, url: str, *, referer: str) -> DownloadedImage:
        host, _port = check_url_syntax(url)
        headers = {"Accept": "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.8"}
        if referer:
            headers["Referer"] = referer
        with self.throttle.request(host):
            result = self.client.get(url, max_bytes=self.max_bytes, headers=headers)
        if result.status != 200:
            raise FetchError(
                f"{url} answered HTTP {result.status}",
                retryable=result.status in RETRYABLE_STATUSES,
                status=result.status,
                retry_after=_retry_after_seconds(result.headers),
            )
        content_type = result.content_type
        if not content_type.startswith("image/") or content_type == "image/svg+xml":
            raise FetchError(f"{url} is not a photo (Content-Type {content_type or 'missing'})", status=200)
        try:
            photo = check_photo(result.body)
        except PhotoError as exc:
            raise FetchError(f"{url}: {exc}", status=200) from exc
        return DownloadedImage(
            url=url,
            final_url=result.final_url,
            content_type=content_type,
            sha256=hashlib.sha256(result.body).hexdigest(),
            photo=photo,
        )


def fetch_image_bytes(url: str) -> bytes:
    """One guarded download for catalog imports that list image URLs: the crawler's address policy,
    User-Agent, timeout and size cap (set as ``CATALOG_IMAGE_FETCHER``); errors are ValueErrors."""
    from django.conf import settings

    client = SafeHttpClient(
        policy=AddressPolicy.from_settings(),
        user_agent=settings.CRAWL_USER_AGENT,
        timeout=settings.CRAWL_IMAGE_TIMEOUT_SECONDS,
    )
    try:
        result = client.get(url, max_bytes=settings.CRAWL_IMAGE_MAX_BYTES)
    except FetchError as exc:
        raise ValueError(str(exc)) from exc
    if result.status != 200:
        raise ValueError(f"{url} answered HTTP {result.status}")
    return result.body
