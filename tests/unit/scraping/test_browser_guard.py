"""Pure parts of the browser's guard proxy: rewriting response heads, matching blocked requests to pages."""

from __future__ import annotations

import pytest

from scraping.browser_guard import BlockedRequest, _ResponseHeadRewriter


def rewrite(*pieces: bytes) -> bytes:
    rewriter = _ResponseHeadRewriter()
    return b"".join(rewriter.feed(piece) for piece in (*pieces, b""))


def test_final_head_says_close_and_drops_keep_alive_even_when_split_across_reads():
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: keep-alive\r\n"
        b"Keep-Alive: timeout=5\r\nContent-Length: 9\r\n\r\n<p>hi</p>"
    )
    out = rewrite(response[:17], response[17:40], response[40:])
    head, body = out.split(b"\r\n\r\n", 1)
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 200 OK",
        b"Content-Type: text/html",
        b"Content-Length: 9",
        b"Connection: close",
    ]
    assert body == b"<p>hi</p>"


def test_interim_heads_pass_unchanged_and_the_body_is_never_touched():
    early_hints = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
    final = b"HTTP/1.1 200 OK\r\nContent-Length: 29\r\n\r\n"
    body = b"Connection: keep-alive\r\n\r\nabc"  # looks like a header, but is body
    out = rewrite(early_hints + final[:10], final[10:] + body)
    assert out == early_hints + b"HTTP/1.1 200 OK\r\nContent-Length: 29\r\nConnection: close\r\n\r\n" + body


def test_what_is_not_http_passes_through_whole():
    garbage = b"\x16\x03\x01" + b"x" * 70_000
    assert rewrite(garbage[:1000], garbage[1000:]) == garbage
    assert rewrite(b"half a head") == b"half a head"  # the server closed early: pass on what there was


@pytest.mark.parametrize(
    ("target", "url", "expected"),
    [
        ("http://127.0.0.2:8000/x?a=1", "http://127.0.0.2:8000/x?a=1", True),
        ("http://127.0.0.2:8000/x", "http://127.0.0.2:8000/x#details", True),
        ("http://127.0.0.2:8000/x", "http://127.0.0.2:8000/y", False),
        ("127.0.0.2:8443", "https://127.0.0.2:8443/x", True),
        ("shop.test:443", "https://shop.test/x", True),
        ("[::1]:443", "https://[::1]/x", True),
        ("127.0.0.2:80", "http://127.0.0.2/x", False),  # plain http is never tunnelled
    ],
)
def test_blocked_request_matches_the_page_it_stopped(target, url, expected):
    assert BlockedRequest(target=target, reason="refused", refused=True).matches(url) is expected
