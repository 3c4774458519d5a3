"""Locale-aware prices and same-photo URL grouping."""

from __future__ import annotations

from decimal import Decimal

import pytest

from scraping.photo_urls import looks_like_furniture, parse_srcset, photo_key, select_photos, size_hint
from scraping.prices import currency_code, parse_price


@pytest.mark.parametrize(
    ("text", "hint", "amount", "currency"),
    [
        ("7,95 EUR", None, "7.95", "EUR"),
        ("$2.449", None, "2449", "USD"),
        ("1.299,00 €", None, "1299.00", "EUR"),
        ("1,299.00", "GBP", "1299.00", "GBP"),
        ("CHF 1'299.50", None, "1299.50", "CHF"),
        ("12.50", "eur", "12.50", "EUR"),
        ("$49", "CAD", "49", "CAD"),  # the page's stated currency beats the ambiguous symbol
        ("1 299,00 zł", None, "1299.00", "PLN"),
        ("£30", None, "30", "GBP"),
    ],
)
def test_parse_price_text(text, hint, amount, currency):
    assert parse_price(text, currency_hint=hint) == (Decimal(amount), currency)


def test_parse_price_numbers_and_nothing():
    assert parse_price(19.9, currency_hint="USD") == (Decimal("19.9"), "USD")
    assert parse_price(0) == (Decimal("0"), None)
    assert parse_price("call us") == (None, None)
    assert parse_price(None, currency_hint="EUR") == (None, "EUR")
    assert parse_price(True) == (None, None)
    assert parse_price(-5) == (None, None)


def test_currency_code():
    assert currency_code("eur") == "EUR"
    assert currency_code("€") == "EUR"
    assert currency_code("kr") is None  # ambiguous: SEK, NOK, DKK
    assert currency_code("") is None


def test_srcset_keeps_commas_inside_urls():
    base = "https://cdn.example/p/"
    assert parse_srcset("a.jpg 400w,b.jpg 800w, /c/w_800,h_600/d.jpg 1200w, e.jpg", base) == [
        ("https://cdn.example/p/a.jpg", 400.0),
        ("https://cdn.example/p/b.jpg", 800.0),
        ("https://cdn.example/c/w_800,h_600/d.jpg", 1200.0),
        ("https://cdn.example/p/e.jpg", 0.0),
    ]
    assert parse_srcset("x.jpg 1x, y.jpg 2x", base)[1] == ("https://cdn.example/p/y.jpg", 2000.0)


@pytest.mark.parametrize(
    "url",
    [
        "https://s.example/img/shirt-400w.jpg",
        "https://s.example/img/shirt_800x800.jpg?v=17",
        "https://s.example/img/shirt.jpg?w=1200&q=80",
        "https://s.example/img/shirt@2x.png",
        "https://s.example/img/shirt_large.webp",
    ],
)
def test_sizes_of_one_photo_share_a_key(url):
    assert photo_key(url) == photo_key("https://s.example/img/shirt.jpg")


def test_different_photos_keep_different_keys():
    assert photo_key("https://s.example/img/shirt-front.jpg") != photo_key("https://s.example/img/shirt-back.jpg")
    assert photo_key("https://s.example/img/p.jpg?id=1") != photo_key("https://s.example/img/p.jpg?id=2")
    assert photo_key("https://a.example/img/p.jpg") != photo_key("https://b.example/img/p.jpg")


def test_size_hint():
    assert size_hint("https://s.example/p.jpg?width=640") == 640
    assert size_hint("https://s.example/p_1024x1024.jpg") == 1024
    assert size_hint("https://s.example/p.jpg") == 0


def test_select_photos_merges_element_groups_and_keys():
    groups = [
        [("https://s.example/a-small.jpg", 200), ("https://s.example/a-big-version.jpg", 1600)],  # one element
        [("https://s.example/a-big-version.jpg?w=800", 800)],  # same key as above
        [("https://s.example/b.jpg", 0)],
    ]
    assert select_photos(groups) == ["https://s.example/a-big-version.jpg", "https://s.example/b.jpg"]


@pytest.mark.parametrize(
    ("url", "furniture"),
    [
        ("https://s.example/static/logo.png", True),
        ("https://s.example/icons/cart.png", False),  # judged by the file name, the folder is not enough
        ("https://s.example/img/icon-cart.png", True),
        ("https://s.example/favicon.ico", True),
        ("https://s.example/img/badge_new.jpg", True),
        ("https://s.example/img/pic.svg", True),
        ("https://s.example/img/iconic-dress.jpg", False),
        ("https://s.example/img/dress.jpg", False),
    ],
)
def test_furniture(url, furniture):
    assert looks_like_furniture(url) is furniture
