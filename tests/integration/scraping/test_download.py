"""The guarded HTTP client, the image downloader and robots.txt against a real local HTTP server."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from scraping.download import ByteBudget, ByteBudgetExceeded, FetchError, ImageDownloader, SafeHttpClient
from scraping.politeness import HostThrottle
from scraping.robots import RobotsCache
from scraping.safety import AddressPolicy, UnsafeURL

UA = "LookalikeBot/0.1 (+https://github.com/lookalike)"
LOOPBACK_ONLY = AddressPolicy.build(allow_private=False, allowed_networks=["127.0.0.1/32"])


def jpeg(size=(120, 90), colour=(10, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG")
    return buffer.getvalue()


def client(policy=LOOPBACK_ONLY, **kwargs) -> SafeHttpClient:
    return SafeHttpClient(policy=policy, user_agent=UA, timeout=5.0, **kwargs)


def downloader(http=None, retries=2, max_bytes=1_000_000) -> tuple[ImageDownloader, list]:
    sleeps: list[float] = []
    return (
        ImageDownloader(
            client=http or client(),
            throttle=HostThrottle(delay=0),
            max_bytes=max_bytes,
            retries=retries,
            backoff=0.5,
            sleep=sleeps.append,
        ),
        sleeps,
    )


class TestSafeHttpClient:
    def test_fetches_with_honest_user_agent(self, scripted_server):
        scripted_server.routes["/x"] = (200, {"Content-Type": "text/plain"}, b"hello")
        result = client().get(scripted_server.url("/x"), max_bytes=100)
        assert (result.status, result.body, result.content_type) == (200, b"hello", "text/plain")
        assert scripted_server.headers_seen[-1]["User-Agent"] == UA

    def test_loopback_refused_unless_allowed_and_nothing_is_sent(self, scripted_server):
        with pytest.raises(UnsafeURL, match="loopback"):
            client(policy=AddressPolicy()).get(scripted_server.url("/x"), max_bytes=100)
        assert scripted_server.hits == {}

    def test_every_redirect_hop_is_checked(self, scripted_server):
        # 127.0.0.2 is loopback too, but only 127.0.0.1 is allowed: the redirect must not be followed.
        scripted_server.routes["/jump"] = (302, {"Location": scripted_server.url("/x", host="127.0.0.2")}, b"")
        with pytest.raises(UnsafeURL, match="127.0.0.2"):
            client().get(scripted_server.url("/jump"), max_bytes=100)
        scripted_server.routes["/to-file"] = (302, {"Location": "file:///etc/passwd"}, b"")
        with pytest.raises(UnsafeURL, match="not an http"):
            client().get(scripted_server.url("/to-file"), max_bytes=100)

    def test_redirects_are_followed_and_limited(self, scripted_server):
        scripted_server.routes["/a"] = (301, {"Location": "/b"}, b"")
        scripted_server.routes["/b"] = (200, {}, b"done")
        result = client().get(scripted_server.url("/a"), max_bytes=100)
        assert (result.final_url, result.body) == (scripted_server.url("/b"), b"done")
        scripted_server.routes["/loop"] = (302, {"Location": "/loop"}, b"")
        with pytest.raises(FetchError, match="redirects"):
            client().get(scripted_server.url("/loop"), max_bytes=100)

    def test_size_cap_declared_and_streamed(self, scripted_server):
        scripted_server.routes["/big"] = (200, {}, b"x" * 5000)
        with pytest.raises(FetchError, match="5,000 bytes"):
            client().get(scripted_server.url("/big"), max_bytes=1000)
        scripted_server.routes["/chunky"] = (200, {"Connection": "close", "Content-Length": ""}, b"z" * 5000)
        with pytest.raises(FetchError, match="larger than"):
            client().get(scripted_server.url("/chunky"), max_bytes=1000)

    def test_run_byte_budget(self, scripted_server):
        scripted_server.routes["/x"] = (200, {}, b"x" * 600)
        budget = ByteBudget(1000)
        http = client(budget=budget)
        http.get(scripted_server.url("/x"), max_bytes=10_000)
        with pytest.raises(ByteBudgetExceeded, match="CRAWL_MAX_BYTES"):
            http.get(scripted_server.url("/x"), max_bytes=10_000)
        assert budget.exhausted

    def test_connection_refused_is_retryable(self, scripted_server):
        url = scripted_server.url("/x")
        scripted_server.stop()
        with pytest.raises(FetchError) as caught:
            client().get(url, max_bytes=100)
        assert caught.value.retryable


class TestImageDownloader:
    def test_good_photo(self, scripted_server):
        body = jpeg()
        scripted_server.routes["/p.jpg"] = (200, {"Content-Type": "image/jpeg"}, body)
        image = downloader()[0].download(scripted_server.url("/p.jpg"), referer="http://127.0.0.1/page")
        assert (image.width, image.height, image.sha256) == (120, 90, hashlib.sha256(body).hexdigest())
        assert scripted_server.headers_seen[-1]["Referer"] == "http://127.0.0.1/page"

    def test_transient_errors_are_retried_with_backoff(self, scripted_server):
        scripted_server.routes["/p.jpg"] = [
            (503, {}, b"busy"),
            (500, {}, b"oops"),
            (200, {"Content-Type": "image/jpeg"}, jpeg()),
        ]
        loader, sleeps = downloader(retries=2)
        loader.download(scripted_server.url("/p.jpg"))
        assert scripted_server.hits["/p.jpg"] == 3
        assert sleeps == [0.5, 1.0]

    def test_gives_up_after_the_retries(self, scripted_server):
        scripted_server.routes["/p.jpg"] = (503, {"Retry-After": "3"}, b"busy")
        loader, sleeps = downloader(retries=1)
        with pytest.raises(FetchError, match="gave up after 2 tries"):
            loader.download(scripted_server.url("/p.jpg"))
        assert sleeps == [3.0]

    @pytest.mark.parametrize(
        ("status", "headers", "body", "message"),
        [
            (404, {}, b"", "HTTP 404"),
            (200, {"Content-Type": "text/html"}, b"<html>", "not a photo"),
            (200, {"Content-Type": "image/svg+xml"}, b"<svg/>", "not a photo"),
            (200, {"Content-Type": "image/jpeg"}, b"\xff\xd8\xff garbage", "not an image|damaged"),
        ],
    )
    def test_permanent_failures_are_not_retried(self, scripted_server, status, headers, body, message):
        scripted_server.routes["/p.jpg"] = (status, headers, body)
        loader, sleeps = downloader()
        with pytest.raises(FetchError, match=message):
            loader.download(scripted_server.url("/p.jpg"))
        assert scripted_server.hits["/p.jpg"] == 1
        assert sleeps == []

    def test_size_cap(self, scripted_server):
        scripted_server.routes["/p.jpg"] = (200, {"Content-Type": "image/jpeg"}, jpeg(size=(800, 800)))
        with pytest.raises(FetchError, match="allowed"):
            downloader(max_bytes=500)[0].download(scripted_server.url("/p.jpg"))


class TestRobots:
    def cache(self, **kwargs) -> RobotsCache:
        return RobotsCache(client=client(), user_agent=UA, **kwargs)

    def test_rules_and_crawl_delay_for_our_agent(self, scripted_server):
        scripted_server.routes["/robots.txt"] = (
            200,
            {},
            b"User-agent: LookalikeBot\nDisallow: /private/\nCrawl-delay: 3\n\nUser-agent: *\nDisallow: /\n",
        )
        robots = self.cache()
        assert robots.verdict(scripted_server.url("/p/1")).allowed
        assert robots.verdict(scripted_server.url("/p/1")).crawl_delay == 3
        refused = robots.verdict(scripted_server.url("/private/x"))
        assert not refused.allowed and "robots.txt" in refused.reason
        assert scripted_server.hits["/robots.txt"] == 1  # read once per site

    def test_missing_robots_allows_and_server_error_refuses(self, scripted_server):
        assert self.cache().verdict(scripted_server.url("/p/1")).allowed
        scripted_server.routes["/robots.txt"] = (503, {}, b"")
        verdict = self.cache().verdict(scripted_server.url("/p/1"))
        assert not verdict.allowed and "503" in verdict.reason
        scripted_server.routes["/robots.txt"] = (403, {}, b"")
        assert not self.cache().verdict(scripted_server.url("/p/1")).allowed

    def test_own_hosts_skip_robots(self, scripted_server):
        scripted_server.routes["/robots.txt"] = (200, {}, b"User-agent: *\nDisallow: /\n")
        assert not self.cache().verdict(scripted_server.url("/p/1")).allowed
        assert self.cache(ignore_hosts=["127.0.0.1"]).verdict(scripted_server.url("/p/1")).allowed
