"""HTML -> ProductRecord, without a browser: every structured-data form shops use, and the fallbacks."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from scraping.extract import extract_product, find_links, normalize_availability
from scraping.profiles import parse_profiles

URL = "https://shop.example/p/shirt"


def page(head: str = "", body: str = "") -> str:
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"


def ld(data, wrap: str = "") -> str:
    text = json.dumps(data)
    if wrap == "cdata":
        text = f"//<![CDATA[\n{text}\n//]]>"
    elif wrap == "comment":
        text = f"<!--\n{text}\n-->"
    return f'<script type="application/ld+json">{text}</script>'


SHIRT = {
    "@context": "https://schema.org",
    "@type": "Product",
    "name": "Linen shirt",
    "sku": "LS-1",
    "gtin13": "4006381333931",
    "mpn": "M-1",
    "brand": {"@type": "Brand", "name": "Nordlys"},
    "color": "Blue",
    "image": ["/img/shirt.jpg", {"@type": "ImageObject", "url": "/img/shirt-back.jpg"}],
    "offers": {"@type": "Offer", "price": "7,95", "priceCurrency": "EUR", "availability": "https://schema.org/InStock"},
}


class TestJsonLd:
    def test_plain_product(self):
        record = extract_product(page(ld(SHIRT)), URL)
        assert record.name == "Linen shirt"
        assert (record.sku, record.gtin, record.mpn, record.brand, record.colour) == (
            "LS-1",
            "4006381333931",
            "M-1",
            "Nordlys",
            "Blue",
        )
        assert (record.price, record.currency, record.availability) == (Decimal("7.95"), "EUR", "in_stock")
        assert record.image_urls == ["https://shop.example/img/shirt.jpg", "https://shop.example/img/shirt-back.jpg"]
        assert record.sources["price"] == "json-ld"
        assert record.sources["name"] == "json-ld"

    @pytest.mark.parametrize("wrap", ["cdata", "comment"])
    def test_wrapped_scripts(self, wrap):
        assert extract_product(page(ld(SHIRT, wrap)), URL).name == "Linen shirt"

    def test_graph_array_and_lowercase_type(self):
        data = [
            {"@context": "https://schema.org", "@graph": [{"@type": "BreadcrumbList"}, {**SHIRT, "@type": "product"}]}
        ]
        assert extract_product(page(ld(data)), URL).sku == "LS-1"

    def test_type_list_and_prefixed_keys(self):
        data = {
            "@type": ["schema:Product", "Thing"],
            "schema:name": "Prefixed",
            "offers": {"price": 12, "priceCurrency": "usd"},
        }
        record = extract_product(page(ld(data)), URL)
        assert (record.name, record.price, record.currency) == ("Prefixed", Decimal("12"), "USD")

    def test_id_references_in_graph(self):
        data = {
            "@graph": [
                {"@type": "Product", "@id": "#p", "name": "Ref", "offers": {"@id": "#o"}},
                {"@type": "Offer", "@id": "#o", "price": "19.50", "priceCurrency": "EUR"},
            ]
        }
        assert extract_product(page(ld(data)), URL).price == Decimal("19.50")

    def test_broken_block_does_not_spoil_the_others(self):
        html = page('<script type="application/ld+json">{"name": oops}</script>' + ld(SHIRT))
        assert extract_product(html, URL).name == "Linen shirt"

    def test_trailing_commas_and_comments_are_tolerated(self):
        text = '{"@type": "Product", // a comment\n "name": "Lenient",}'
        assert extract_product(page(f'<script type="application/ld+json">{text}</script>'), URL).name == "Lenient"

    def test_aggregate_offer_and_price_specification(self):
        agg = {
            "@type": "Product",
            "name": "A",
            "offers": {"@type": "AggregateOffer", "lowPrice": "5.00", "priceCurrency": "EUR"},
        }
        assert extract_product(page(ld(agg)), URL).price == Decimal("5.00")
        spec = {
            "@type": "Product",
            "name": "B",
            "offers": {
                "@type": "Offer",
                "priceSpecification": [
                    {"price": "99.00", "priceCurrency": "EUR", "priceType": "https://schema.org/ListPrice"},
                    {"price": "79.00", "priceCurrency": "EUR"},
                ],
            },
        }
        assert extract_product(page(ld(spec)), URL).price == Decimal("79.00")

    def test_listing_page_with_item_list_is_not_a_product(self):
        data = {
            "@type": "ItemList",
            "itemListElement": [
                {"@type": "ListItem", "item": {"@type": "Product", "name": "One", "url": "/p/1"}},
                {"@type": "ListItem", "item": {"@type": "Product", "name": "Two", "url": "/p/2"}},
            ],
        }
        assert extract_product(page(ld(data)), "https://shop.example/catalog") is None

    def test_main_product_is_the_one_of_this_url(self):
        other = {**SHIRT, "name": "Related", "url": "/p/other", "sku": "X"}
        this = {**SHIRT, "name": "This one", "url": "/p/shirt"}
        assert extract_product(page(ld(other) + ld(this)), URL).name == "This one"

    def test_html_in_description_is_stripped(self):
        data = {**SHIRT, "description": "<p>Soft &amp; <b>light</b></p>"}
        assert extract_product(page(ld(data)), URL).description == "Soft & light"


GROUP = {
    "@context": "https://schema.org",
    "@type": "ProductGroup",
    "name": "Coat",
    "brand": "Hallberg",
    "image": "/img/coat.jpg",
    "hasVariant": [
        {
            "@type": "Product",
            "sku": "C-BLK",
            "color": "Black",
            "url": "/p/coat?color=black",
            "image": "/img/coat-black.jpg",
            "offers": {"price": "1.299,00", "priceCurrency": "EUR", "availability": "InStock"},
        },
        {
            "@type": "Product",
            "sku": "C-GRY",
            "color": "Grey",
            "url": "/p/coat?color=grey",
            "image": "/img/coat-grey.jpg",
            "offers": {"price": "1.349,00", "priceCurrency": "EUR", "availability": "OutOfStock"},
        },
    ],
}


class TestVariants:
    def test_variant_of_the_page_url_wins(self):
        record = extract_product(page(ld(GROUP)), "https://shop.example/p/coat?color=grey")
        assert (record.sku, record.colour, record.price, record.availability) == (
            "C-GRY",
            "Grey",
            Decimal("1349.00"),
            "out_of_stock",
        )
        assert record.name == "Coat"
        assert record.brand == "Hallberg"
        assert record.image_urls[0] == "https://shop.example/img/coat-grey.jpg"

    def test_first_variant_without_other_evidence(self):
        record = extract_product(page(ld(GROUP)), "https://shop.example/p/coat")
        assert (record.sku, record.price) == ("C-BLK", Decimal("1299.00"))

    def test_sku_shown_elsewhere_on_the_page_wins(self):
        head = ld(GROUP) + '<meta property="product:retailer_item_id" content="C-GRY">'
        assert extract_product(page(head), "https://shop.example/p/coat").sku == "C-GRY"

    def test_price_shown_in_meta_picks_the_offer(self):
        data = {
            "@type": "Product",
            "name": "Tee",
            "offers": [
                {"@type": "Offer", "price": "10.00", "priceCurrency": "EUR", "sku": "T-S"},
                {"@type": "Offer", "price": "12.00", "priceCurrency": "EUR", "sku": "T-XL"},
            ],
        }
        head = ld(data) + '<meta property="product:price:amount" content="12.00">'
        assert extract_product(page(head), URL).price == Decimal("12.00")

    def test_variant_id_in_query_string(self):
        data = {
            "@type": "Product",
            "name": "Sneaker",
            "offers": [
                {"@type": "Offer", "price": "80", "priceCurrency": "EUR", "sku": "111"},
                {"@type": "Offer", "price": "90", "priceCurrency": "EUR", "sku": "222"},
            ],
        }
        assert extract_product(page(ld(data)), URL + "?variant=222").price == Decimal("90")


class TestMicrodataAndRdfa:
    def test_microdata_in_any_attribute_case(self):
        body = """<div ITEMSCOPE ITEMTYPE="http://SCHEMA.org/Product"><h1 ItemProp="name">Tee</h1>
        <img itemProp="image" src="/img/tee.jpg"><div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
        <meta itemprop="price" content="19.99"><meta itemprop="priceCurrency" content="USD">
        <link itemprop="availability" href="https://schema.org/OutOfStock"></div>
        <div itemprop="brand" itemscope itemtype="https://schema.org/Brand">
        <span itemprop="name">Ink</span></div></div>"""
        record = extract_product(page(body=body), URL)
        assert (record.name, record.price, record.currency, record.brand) == ("Tee", Decimal("19.99"), "USD", "Ink")
        assert record.availability == "out_of_stock"
        assert record.image_urls == ["https://shop.example/img/tee.jpg"]
        assert record.sources["name"] == "microdata"

    def test_rdfa(self):
        body = """<div vocab="https://schema.org/" typeof="Product"><h1 property="name">Hoodie</h1>
        <img property="image" src="/img/hoodie.jpg"><span property="color">Green</span>
        <div property="offers" typeof="Offer"><span property="price" content="59.00">59,00 €</span>
        <meta property="priceCurrency" content="EUR"></div>
        <div property="brand" typeof="Brand"><span property="name">Loop</span></div></div>"""
        record = extract_product(page(body=body), URL)
        assert (record.name, record.price, record.currency, record.brand, record.colour) == (
            "Hoodie",
            Decimal("59.00"),
            "EUR",
            "Loop",
            "Green",
        )
        assert record.sources["price"] == "rdfa"
        assert "https://shop.example/img/hoodie.jpg" in record.image_urls

    def test_json_ld_wins_field_by_field_and_others_fill_gaps(self):
        data = {"@type": "Product", "name": "From JSON-LD"}
        body = """<div itemscope itemtype="https://schema.org/Product"><span itemprop="name">From microdata</span>
        <span itemprop="color">Red</span></div>"""
        record = extract_product(page(ld(data), body), URL)
        assert (record.name, record.colour) == ("From JSON-LD", "Red")
        assert record.sources == {"name": "json-ld", "colour": "microdata", "canonical_url": "page-url"}


class TestOpenGraph:
    HEAD = """<meta property="og:type" content="product"><meta property="og:title" content="Silk scarf">
    <meta property="og:image" content="/img/scarf.jpg"><meta property="og:image" content="/img/scarf-2.jpg">
    <meta property="product:price:amount" content="24,95"><meta property="product:price:currency" content="EUR">
    <meta property="product:availability" content="out of stock"><meta name="product:brand" content="Seta">"""

    def test_opengraph_only(self):
        record = extract_product(page(self.HEAD), URL)
        assert (record.name, record.price, record.currency, record.availability, record.brand) == (
            "Silk scarf",
            Decimal("24.95"),
            "EUR",
            "out_of_stock",
            "Seta",
        )
        assert record.image_urls == ["https://shop.example/img/scarf.jpg", "https://shop.example/img/scarf-2.jpg"]
        assert record.sources["price"] == "opengraph"

    def test_an_article_with_og_tags_is_no_product(self):
        head = '<meta property="og:type" content="article"><meta property="og:title" content="Blog">'
        assert extract_product(page(head), URL) is None


class TestProfiles:
    PROFILES = parse_profiles(
        {
            "profiles": [
                {
                    "name": "plain",
                    "hosts": ["shop.example"],
                    "url_pattern": "/p/",
                    "fields": {
                        "name": "h1.title",
                        "price": ".price",
                        "brand": {"selector": "[data-brand]", "attr": "data-brand"},
                        "currency": {"value": "EUR"},
                        "availability": ".stock",
                        "images": ".gallery img",
                    },
                }
            ]
        }
    )

    BODY = """<h1 class="title">Denim jacket</h1><span class="price">1.299,00</span><i data-brand="Riveted"></i>
    <span class="stock">Sold out</span><div class="gallery">
    <img data-src="/img/denim.jpg" src="/static/placeholder.gif"></div><img src="/img/other-product.jpg">"""

    def test_profile_fills_what_structured_data_lacks(self):
        record = extract_product(page(body=self.BODY), URL, profile=self.PROFILES[0])
        assert (record.name, record.price, record.currency, record.brand, record.availability) == (
            "Denim jacket",
            Decimal("1299.00"),
            "EUR",
            "Riveted",
            "out_of_stock",
        )
        assert record.image_urls == ["https://shop.example/img/denim.jpg"]
        assert record.sources["name"] == "profile:plain"

    def test_structured_data_beats_the_profile(self):
        html = page(ld({"@type": "Product", "name": "Structured name"}), self.BODY)
        record = extract_product(html, URL, profile=self.PROFILES[0])
        assert record.name == "Structured name"
        assert record.price == Decimal("1299.00")
        assert record.sources["price"] == "profile:plain"

    def test_without_profile_a_plain_page_is_no_product(self):
        assert extract_product(page(body=self.BODY), URL) is None


class TestPageDetails:
    def test_canonical_link_is_the_product_key_and_loses_tracking(self):
        head = '<link rel="canonical" href="/p/shirt?utm_source=mail#top">' + ld(SHIRT)
        record = extract_product(page(head), URL + "?color=blue")
        assert record.canonical_url == "https://shop.example/p/shirt"
        assert record.sources["canonical_url"] == "link-canonical"

    def test_canonical_on_another_site_is_ignored(self):
        head = '<link rel="canonical" href="https://evil.example/p/1">' + ld(SHIRT)
        assert extract_product(page(head), URL).canonical_url == URL

    def test_base_href_resolves_relative_urls(self):
        head = '<base href="https://cdn.shop.example/assets/">' + ld({**SHIRT, "image": "shirt.jpg"})
        assert extract_product(page(head), URL).image_urls == ["https://cdn.shop.example/assets/shirt.jpg"]

    def test_empty_and_garbage_input(self):
        assert extract_product("", URL) is None
        assert extract_product("   ", URL) is None
        assert extract_product("<<<>>>not html", URL) is None

    def test_json_output_has_plain_values(self):
        data = extract_product(page(ld(SHIRT)), URL).as_json()
        assert data["price"] == "7.95"
        json.dumps(data)


class TestImagesOnThePage:
    def test_lazy_srcset_picture_and_furniture(self):
        body = """<header><img src="/img/logo.png"></header>
        <img srcset="/img/a-400.jpg 400w, /img/a-1200.jpg 1200w" src="/img/a-400.jpg">
        <picture><source srcset="/img/b-800.webp 800w">
        <img data-src="/img/b-small.jpg" src="data:image/gif;base64,R0"></picture>
        <img src="/img/icon-cart.png"><img src="/img/badge-sale.jpg"><img src="/img/c.jpg" width="16" height="16">
        <img src="/favicon.ico"><img src="/img/vector.svg">
        <div class="related-products"><img src="/img/other.jpg"></div><footer><img src="/img/pay.jpg"></footer>"""
        record = extract_product(page(ld({**SHIRT, "image": "/img/a-1200.jpg"}), body), URL)
        assert record.image_urls == ["https://shop.example/img/a-1200.jpg", "https://shop.example/img/b-800.webp"]

    def test_sizes_of_one_photo_collapse_to_the_largest(self):
        data = {**SHIRT, "image": ["/img/p.jpg?w=400", "/img/p.jpg?w=1600&q=80", "/img/p_800x800.jpg"]}
        assert extract_product(page(ld(data)), URL).image_urls == ["https://shop.example/img/p.jpg?w=1600&q=80"]

    def test_rendered_size_filters_tiny_images(self):
        body = '<img src="/img/dot.jpg"><img src="/img/photo.jpg">'
        record = extract_product(
            page(ld({**SHIRT, "image": []}), body),
            URL,
            rendered_sizes={
                "https://shop.example/img/dot.jpg": (24, 24),
                "https://shop.example/img/photo.jpg": (800, 1000),
            },
        )
        assert record.image_urls == ["https://shop.example/img/photo.jpg"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://schema.org/InStock", "in_stock"),
        ("http://schema.org/OutOfStock", "out_of_stock"),
        ("SoldOut", "out_of_stock"),
        ("in stock", "in_stock"),
        ("oos", "out_of_stock"),
        ("Only 2 left – in stock", "in_stock"),
        ("Sold out online", "out_of_stock"),
        ("maybe", None),
        (None, None),
    ],
)
def test_availability(value, expected):
    assert normalize_availability(value) == expected


def test_find_links_same_site_only():
    html = """<a class="card" href="/p/1">1</a><a class="card" href="https://shop.example/p/2#x">2</a>
    <a class="card" href="https://other.example/p/3">3</a><div class="card"><a href="/p/4">4</a></div>
    <a class="card" href="mailto:x@shop.example">m</a><a class="card" href="/p/1">dup</a>"""
    assert find_links(html, "https://shop.example/catalog", ".card") == [
        "https://shop.example/p/1",
        "https://shop.example/p/2",
        "https://shop.example/p/4",
    ]
