"""Every page of the synthetic extraction corpus (tests/fixtures/extraction) gives its expected output.

The pages reproduce the failure patterns of issue 14 on shop layouts modelled on common platforms; each
page's JSON says which. ``bench/extraction.py`` prints the same comparison as precision/recall/F1.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from scraping.extract import extract_product

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "extraction"
PAGES = sorted(path.stem for path in CORPUS.glob("*.json") if path.with_suffix(".html").exists())
SCALAR_FIELDS = ("name", "price", "currency", "sku", "availability", "colour")


def load(name: str) -> tuple[str, dict]:
    return (CORPUS / f"{name}.html").read_text(encoding="utf-8"), json.loads((CORPUS / f"{name}.json").read_text())


def test_the_corpus_covers_every_kind_of_shop_and_a_page_without_product():
    kinds = " ".join(load(name)[1]["models"] for name in PAGES).lower()
    for kind in ("shopify", "salesforce commerce", "magento", "next.js", "marketplace", "no structured data"):
        assert kind in kinds
    assert any(load(name)[1]["expected"] is None for name in PAGES)


@pytest.mark.parametrize("name", PAGES)
def test_page_gives_its_expected_product(name):
    html, spec = load(name)
    record = extract_product(html, spec["url"])
    expected = spec["expected"]
    if expected is None:
        assert record is None
        return
    assert record is not None
    got = {field: getattr(record, field) for field in SCALAR_FIELDS}
    want = {field: expected[field] for field in SCALAR_FIELDS}
    want["price"] = Decimal(want["price"]) if want["price"] is not None else None
    assert got == want
    # One URL per expected photo, no other photo, no photo twice.
    photos = [next((i for i, urls in enumerate(expected["images"]) if url in urls), None) for url in record.image_urls]
    assert None not in photos, [url for url, photo in zip(record.image_urls, photos, strict=True) if photo is None]
    assert sorted(photos) == list(range(len(expected["images"])))


@pytest.mark.parametrize("name", [name for name in PAGES if load(name)[1]["expected"] is not None])
def test_every_field_found_says_where_from_and_how_sure(name):
    html, spec = load(name)
    data = extract_product(html, spec["url"]).as_json()
    for field in (*SCALAR_FIELDS, "images"):
        if data.get(field if field != "images" else "image_urls"):
            assert data["sources"][field]
            assert 0 < data["confidence"][field] <= 1
    assert data["images"] == data["image_urls"]
