"""The extraction rules of issue 14 one by one, on small pages: codes, prices, availability, photos, text."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from lxml import html as lxml_html

from scraping.extract import extract_product, is_isbn
from scraping.nextdata import payload_product
from scraping.page_text import is_placeholder, unescape, without_size_suffix
from scraping.photo_urls import dom_image_candidates, photo_key, size_hint
from scraping.visible import read_visible

URL = "https://shop.example/p/item"


def page(head: str = "", body: str = "", html_attrs: str = "") -> str:
    return f"<!doctype html><html {html_attrs}><head>{head}</head><body>{body}</body></html>"


def ld(data) -> str:
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


def offer(price="10.00", availability="InStock", **extra):
    return {"@type": "Offer", "price": price, "priceCurrency": "EUR", "availability": availability, **extra}


# --- photos -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("https://c.example/w/1920/p/a.jpg", "https://c.example/w/769/p/a.jpg"),
        ("https://c.example/p/a.jpg?imwidth=1600", "https://c.example/p/a.jpg?imwidth=400"),
        ("https://c.example/p/a_800x800.jpg?v=2", "https://c.example/p/a_1200x.jpg?v=2"),
        ("https://c.example/g/AbC/s-l400.jpg", "https://c.example/g/AbC/s-l1600.jpg"),
        ("https://c.example/is/image/B/A1_01?$pdp_main$", "https://c.example/is/image/B/A1_01?$zoom$"),
        ("https://c.example/i/a.jpg?sw=600&sh=600&sm=fit", "https://c.example/i/a.jpg?sw=1200&sh=1200"),
        ("https://c.example/_next/image?url=https%3A%2F%2Fm.example%2Fa.jpg&w=640&q=75", "https://m.example/a.jpg"),
        (
            "https://c.example/media/cache/0123456789abcdef0123456789abcdef/a/b/ab1.jpg",
            "https://c.example/media/cache/fedcba9876543210fedcba9876543210/a/b/ab1.jpg",
        ),
        ("https://c.example/cdn-cgi/image/width=800,quality=75/p/a.jpg", "https://c.example/p/a.jpg"),
        ("https://c.example/il/1/55/il_794xN.55_k3.jpg", "https://c.example/il/1/55/il_fullxfull.55_k3.jpg"),
    ],
)
def test_sizes_of_one_photo_share_a_key(one, other):
    assert photo_key(one) == photo_key(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("https://c.example/g/AbC/s-l1600.jpg", "https://c.example/g/XyZ/s-l1600.jpg"),
        ("https://c.example/w/800/p/a.jpg", "https://c.example/w/800/p/b.jpg"),
        ("https://c.example/is/image/B/A1_01?$pdp$", "https://c.example/is/image/B/A1_02?$pdp$"),
        ("https://c.example/_next/image?url=%2Fa.jpg&w=640", "https://c.example/_next/image?url=%2Fb.jpg&w=640"),
    ],
)
def test_different_photos_keep_different_keys(one, other):
    assert photo_key(one) != photo_key(other)


def test_size_hints_of_the_new_forms():
    assert size_hint("https://c.example/i/a.jpg?sw=1200&sh=1200") == 1200
    assert size_hint("https://c.example/w/1920/p/a.jpg") == 1920
    assert size_hint("https://c.example/g/AbC/s-l1600.jpg") == 1600
    assert size_hint("https://c.example/il/1/il_794xN.55.jpg") == 794


def test_class_words_of_page_wrappers_do_not_drop_the_gallery():
    body = """<div class="page-wrapper header-sticky"><nav><img src="/img/menu-teaser.jpg"></nav>
    <main><h1>Shirt</h1><div class="gallery"><img src="/img/shirt-1.jpg"><img src="/img/shirt-2.jpg"></div>
    </main></div>"""
    tree = lxml_html.fromstring(page(body=body, html_attrs='class="nav-open cookies-accepted"'))
    urls = [group[0][0] for group in dom_image_candidates(tree, URL)]
    assert urls == ["https://shop.example/img/shirt-1.jpg", "https://shop.example/img/shirt-2.jpg"]


def test_images_linking_to_other_pages_are_tiles_not_photos():
    body = """<h1>Tee</h1><a href="/img/tee-big.jpg"><img src="/img/tee.jpg"></a>
    <a href="/p/item"><img src="/img/tee-swatch-navy.jpg"></a>
    <a href="/p/other-tee"><img src="/img/other-tee.jpg"></a>"""
    tree = lxml_html.fromstring(page(body=body))
    urls = [group[0][0] for group in dom_image_candidates(tree, URL, page_url=URL)]
    assert urls == ["https://shop.example/img/tee.jpg", "https://shop.example/img/tee-swatch-navy.jpg"]


def test_structured_gallery_keeps_page_photos_of_its_section_only():
    data = {"@type": "Product", "name": "Coat", "image": ["/img/coat-1.jpg"], "offers": offer()}
    body = """<div class="banner-slot"><img src="/img/winter-edit.jpg"></div>
    <section><div class="media"><img src="/img/coat-1.jpg?w=800"><img src="/img/coat-2.jpg?w=800"></div>
    <div><h1>Coat</h1></div></section><section><h2>Also</h2><img src="/img/scarf.jpg"></section>"""
    record = extract_product(page(ld(data), body), URL)
    assert record.image_urls == [
        "https://shop.example/img/coat-1.jpg?w=800",
        "https://shop.example/img/coat-2.jpg?w=800",
    ]


def test_other_colourways_photos_are_left_out():
    group = {
        "@type": "ProductGroup",
        "name": "Tee",
        "image": ["/img/tee-red.jpg", "/img/tee-navy.jpg"],
        "hasVariant": [
            {
                "@type": "Product",
                "color": "Red",
                "url": "/p/item?c=red",
                "image": "/img/tee-red.jpg",
                "offers": offer(),
            },
            {
                "@type": "Product",
                "color": "Navy",
                "url": "/p/item?c=navy",
                "image": "/img/tee-navy.jpg",
                "offers": offer(),
            },
        ],
    }
    record = extract_product(page(ld(group)), URL + "?c=navy")
    assert (record.colour, record.image_urls) == ("Navy", ["https://shop.example/img/tee-navy.jpg"])


# --- codes --------------------------------------------------------------------------------------------


def test_model_code_over_size_variant_skus():
    group = {
        "@type": "ProductGroup",
        "name": "Jumper",
        "productGroupID": "JM-1",
        "hasVariant": [
            {"@type": "Product", "sku": "JM-1-S", "size": "S", "offers": offer()},
            {"@type": "Product", "sku": "JM-1-M", "size": "M", "offers": offer()},
        ],
    }
    assert extract_product(page(ld(group)), URL).sku == "JM-1"
    sized_offers = {
        "@type": "Product",
        "name": "Jumper",
        "offers": [offer(sku="KN-20-XS"), offer(sku="KN-20-M"), offer(sku="KN-20-XL")],
    }
    record = extract_product(page(ld(sized_offers)), URL)
    assert record.sku == "KN-20"
    assert record.confidence["sku"] < 0.8  # inferred: says so
    colour_offers = {"@type": "Product", "name": "Jumper", "offers": [offer(sku="KN-20-RED"), offer(sku="KN-20-BLUE")]}
    assert extract_product(page(ld(colour_offers)), URL).sku == "KN-20-RED"  # not sizes: no shared code


def test_displayed_code_wins_and_keeps_its_formatting():
    data = {"@type": "Product", "name": "Shirt", "sku": "4667999", "offers": offer()}
    body = "<main><h1>Shirt</h1><p>Art.-Nr. 466/7999</p><p>10,00 €</p></main>"
    record = extract_product(page(ld(data), body), URL)
    assert (record.sku, record.sources["sku"]) == ("466/7999", "page")
    other = {"@type": "Product", "name": "Shirt", "sku": "000104522", "offers": offer()}
    body = "<main><h1>Shirt</h1><p>Item #: SH-55</p><p>€10.00</p></main>"
    record = extract_product(page(ld(other), body), URL)
    assert record.sku == "SH-55" and record.confidence["sku"] < 0.7  # a disagreement: not sure
    same = {"@type": "Product", "name": "Shirt", "sku": "SH-55", "offers": offer()}
    assert extract_product(page(ld(same), body), URL).confidence["sku"] > 0.9  # both agree


def test_no_isbn_as_sku():
    head = """<meta property="og:type" content="product"><meta property="og:title" content="Book">
    <meta property="product:price:amount" content="12"><meta property="product:price:currency" content="EUR">
    <meta property="product:retailer_item_id" content="9781234567897">"""
    record = extract_product(page(head), URL)
    assert (record.sku, record.gtin) == (None, "9781234567897")
    data = {"@type": "Product", "name": "Book", "productID": "isbn:9781234567897", "offers": offer()}
    record = extract_product(page(ld(data)), URL)
    assert (record.sku, record.gtin) == (None, "9781234567897")
    assert is_isbn("978-1-234-56789-7") and is_isbn("0306406152")
    assert not is_isbn("9781234567890") and not is_isbn("4006381333931")


def test_microdata_product_id_without_variants():
    body = """<div itemscope itemtype="https://schema.org/Product"><h1 itemprop="name">Cap</h1>
    <meta itemprop="productID" content="sku:CP-9"></div>"""
    assert extract_product(page(body=body), URL).sku == "CP-9"


# --- prices -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "offers",
    [
        {"@type": "AggregateOffer", "lowprice": "39.90", "pricecurrency": "EUR"},
        {
            "@type": "AggregateOffer",
            "lowPrice": {"@type": "PriceSpecification", "price": "39.90"},
            "priceCurrency": "EUR",
        },
        {"@type": "AggregateOffer", "lowPrice": {"@value": "39.90"}, "priceCurrency": "EUR"},
    ],
)
def test_low_price_lower_case_or_nested(offers):
    record = extract_product(page(ld({"@type": "Product", "name": "Boot", "offers": offers})), URL)
    assert (record.price, record.currency) == (Decimal("39.90"), "EUR")


def test_data_vocabulary_microdata():
    body = """<div itemscope itemtype="http://data-vocabulary.org/Product"><h1 itemprop="name">Tote</h1>
    <div itemprop="offerDetails" itemscope itemtype="http://data-vocabulary.org/Offer">
    <meta itemprop="currency" content="USD"><span itemprop="price">24.50</span>
    <span itemprop="availability" content="out_of_stock">Sold out</span></div></div>"""
    record = extract_product(page(body=body), URL)
    assert (record.price, record.currency, record.availability) == (Decimal("24.50"), "USD", "out_of_stock")


def test_sale_price_beats_the_structured_list_price_the_page_strikes_through():
    data = {"@type": "Product", "name": "Parka", "offers": offer(price="200.00")}
    body = '<div><h1>Parka</h1><span class="price"><del>€200.00</del> <span>€150.00</span></span></div>'
    record = extract_product(page(ld(data), body), URL)
    assert (record.price, record.sources["price"]) == (Decimal("150.00"), "page")


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        ("<s>£95.00</s> <b>£71.25</b>", "71.25"),
        ("<span>Was £95.00</span> <span>Now £71.25</span>", "71.25"),
        ('<span class="price--compare">£95.00</span><span>£71.25</span>', "71.25"),
        ('<span style="text-decoration: line-through">£95.00</span> £71.25', "71.25"),
        ("<span>statt 95,00 €</span> <span>71,25 €</span>", "71.25"),
        ("<span>£71.25</span> <span>You save £23.75</span>", "71.25"),
    ],
)
def test_visible_price_is_the_one_to_pay(prices, expected):
    body = f"<div><h1>Overshirt</h1><div>{prices}</div><button>Add to basket</button></div>"
    record = extract_product(page(body=body), URL)
    assert record.price == Decimal(expected)
    assert record.sources["price"] == "page"


def test_recommendation_prices_are_not_the_product_price():
    body = """<div class="product"><h1>Overshirt</h1><p>Product code: OS-1</p></div>
    <div class="tiles"><a href="/p/tee"><span>Tee</span><span>£25.00</span></a></div>"""
    assert extract_product(page(body=body), URL) is None  # no price of its own: no product


# --- availability -------------------------------------------------------------------------------------


def test_one_size_in_stock_makes_the_product_in_stock():
    sizes = [offer(availability="OutOfStock", sku="A-S"), offer(sku="A-M")]
    assert extract_product(page(ld({"@type": "Product", "name": "A", "offers": sizes})), URL).availability == "in_stock"
    gone = [offer(availability="OutOfStock", sku="A-S"), offer(availability="SoldOut", sku="A-M")]
    assert (
        extract_product(page(ld({"@type": "Product", "name": "A", "offers": gone})), URL).availability == "out_of_stock"
    )


def test_stock_of_another_colour_does_not_count():
    def variant(colour, size, availability):
        url = f"/p/item?colour={colour}&size={size}"
        return {
            "@type": "Product",
            "color": colour,
            "size": size,
            "url": url,
            "offers": offer(availability=availability),
        }

    group = {
        "@type": "ProductGroup",
        "name": "Tee",
        "hasVariant": [
            variant("red", "s", "InStock"),
            variant("navy", "s", "OutOfStock"),
            variant("navy", "m", "OutOfStock"),
        ],
    }
    assert extract_product(page(ld(group)), URL + "?colour=navy").availability == "out_of_stock"
    assert extract_product(page(ld(group)), URL + "?colour=red").availability == "in_stock"


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("<p>In stock</p>", "in_stock"),
        ("<p>Sofort lieferbar</p>", "in_stock"),
        ("<p>Only 2 left</p>", "in_stock"),
        ("<p>Épuisé</p>", "out_of_stock"),
        ("<p>Agotado</p>", "out_of_stock"),
        ("<label>XS (sold out)</label>", None),
        ('<button disabled class="x">Add to cart</button>', "out_of_stock"),
    ],
)
def test_visible_availability(block, expected):
    body = f"<div><h1>Tee</h1><p>€20.00</p><p>SKU: T-100</p>{block}</div>"
    assert extract_product(page(body=body), URL).availability == expected


# --- the visible page ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "code"),
    [
        ("Product code: CO-7781", "CO-7781"),
        ("Item #: HL5521-NV", "HL5521-NV"),
        ("Style No. 5521", "5521"),
        ("Art. Nr. 12.345.67", "12.345.67"),
        ("Artikelnummer: 100234", "100234"),
        ("Réf. : 8841-220", "8841-220"),
        ("Referencia: ZA-3321", "ZA-3321"),
        ("Codice articolo: GV-902", "GV-902"),
        ("Style it with jeans", None),
    ],
)
def test_product_code_labels_in_several_languages(label, code):
    tree = lxml_html.fromstring(page(body=f"<div><h1>Jacket</h1><p>€99.00</p><p>{label}</p></div>"))
    assert read_visible(tree, URL, URL).sku == code


def test_a_page_without_structured_data_is_read_from_what_it_shows():
    body = """<div class="layout"><div class="media"><img src="/img/jacket-1.jpg"><img src="/img/jacket-2.jpg"></div>
    <div class="info"><h1>Field jacket</h1><p>CHF 249.00</p><p>Colour: Olive</p><p>Style: FJ-100</p>
    <p>In stock</p><button>Add to cart</button></div></div>
    <div class="more"><a href="/p/cap"><img src="/img/cap.jpg"></a><span>CHF 39.00</span></div>"""
    record = extract_product(page(body=body), URL)
    assert (record.name, record.price, record.currency, record.sku, record.colour, record.availability) == (
        "Field jacket",
        Decimal("249.00"),
        "CHF",
        "FJ-100",
        "Olive",
        "in_stock",
    )
    assert record.image_urls == ["https://shop.example/img/jacket-1.jpg", "https://shop.example/img/jacket-2.jpg"]
    assert set(record.sources.values()) == {"page", "page-url"}
    assert all(value <= 0.6 for value in record.confidence.values())


def test_a_listing_with_quick_add_buttons_is_no_product():
    tiles = "".join(
        f"<li><span>Tee {i}</span><span>€{i}0.00</span><button>Add to cart</button></li>" for i in (1, 2, 3)
    )
    assert extract_product(page(body=f"<main><h1>T-shirts</h1><ul>{tiles}</ul></main>"), URL) is None


# --- payloads -----------------------------------------------------------------------------------------


def test_next_flight_payload_gallery():
    product = {"title": "Camp shirt", "sku": "CS-1", "price": {"amount": "65.00", "currencyCode": "GBP"},
               "images": [{"src": "https://cdn.example/cs-1-a.jpg"}, {"src": "https://cdn.example/cs-1-b.jpg"}],
               "related": [{"title": "Other", "images": [{"src": "https://cdn.example/other.jpg"}]}]}  # fmt: skip
    chunk = json.dumps([1, f'4:["$","div",null,{json.dumps(product)}]\n'])
    html = page(body=f"<h1>Camp shirt</h1><script>self.__next_f.push({chunk})</script>")
    found = payload_product(lxml_html.fromstring(html), URL, "Camp shirt")
    assert (found.sku, found.price, found.currency) == ("CS-1", Decimal("65.00"), "GBP")
    assert found.images == ["https://cdn.example/cs-1-a.jpg", "https://cdn.example/cs-1-b.jpg"]


def test_next_data_with_cent_amounts_in_a_nested_variant():
    data = {"props": {"pageProps": {"product": {"name": "Trousers", "masterVariant": {
        "sku": "TR-1", "prices": [{"value": {"centAmount": 7950, "currencyCode": "EUR", "fractionDigits": 2}}],
        "images": [{"url": "https://cdn.example/tr-1.jpg"}], "availability": {"isOnStock": False}}}}}}  # fmt: skip
    html = page(body=f'<h1>Trousers</h1><script id="__NEXT_DATA__" type="application/json">{json.dumps(data)}</script>')
    found = payload_product(lxml_html.fromstring(html), URL, "Trousers")
    assert (found.sku, found.price, found.currency, found.availability) == (
        "TR-1",
        Decimal("79.50"),
        "EUR",
        "out_of_stock",
    )


# --- text ---------------------------------------------------------------------------------------------


def test_entities_and_placeholders_in_structured_values():
    data = {"@type": "Product", "name": "Tom &amp;amp; Jo Bols&oacute;", "brand": "$metabrand", "color": "{{ colour }}"}
    record = extract_product(page(ld({**data, "offers": offer()})), URL)
    assert (record.name, record.brand, record.colour) == ("Tom & Jo Bolsó", None, None)
    assert unescape("Andr&eacute;s") == "Andrés" and unescape("A & B;") == "A & B;"
    assert is_placeholder("${color}") and is_placeholder("%BRAND%") and not is_placeholder("$12")


def test_variant_names_lose_their_size():
    group = {
        "@type": "ProductGroup",
        "name": "Merino crew",
        "hasVariant": [
            {"@type": "Product", "name": "Merino crew - S", "size": "S", "offers": offer()},
            {"@type": "Product", "name": "Merino crew - M", "size": "M", "offers": offer()},
        ],
    }
    assert extract_product(page(ld(group)), URL).name == "Merino crew"
    single = {"@type": "Product", "name": "Denim jacket, Size 38", "offers": [offer(sku="D-38"), offer(sku="D-40")]}
    assert extract_product(page(ld(single)), URL).name == "Denim jacket"
    assert without_size_suffix("Air Max 90") == "Air Max 90"
    assert without_size_suffix("Boots - Black") == "Boots - Black"


def test_og_title_with_the_shop_name_gives_way_to_the_page_title():
    head = """<meta property="og:type" content="product"><meta property="og:title" content="Linen trousers | Dune">
    <meta property="product:price:amount" content="79"><meta property="product:price:currency" content="EUR">"""
    record = extract_product(page(head, "<h1>Linen trousers</h1>"), URL)
    assert record.name == "Linen trousers"


def test_one_photo_under_two_hosts_is_one_photo():
    data = {
        "@type": "Product",
        "name": "Shirt",
        "image": "https://cdn.shopify.com/s/files/1/06/files/shirt-red-1.jpg?v=9",
    }
    body = """<div><div class="media"><img src="//shop.example/cdn/shop/files/shirt-red-1.jpg?v=9&amp;width=900">
    <img src="//shop.example/cdn/shop/files/shirt-red-2.jpg?v=9&amp;width=900"></div><h1>Shirt</h1></div>"""
    record = extract_product(page(ld({**data, "offers": offer()}), body), URL)
    assert record.image_urls == [
        "https://shop.example/cdn/shop/files/shirt-red-1.jpg?v=9&width=900",
        "https://shop.example/cdn/shop/files/shirt-red-2.jpg?v=9&width=900",
    ]


@pytest.mark.parametrize(
    "noise",
    [
        "<p>Free shipping over £50</p>",
        "<p>Pay in 4 instalments of £17.81</p>",
        "<p>or £7.50 per month with Klarna</p>",
    ],
)
def test_amounts_that_are_not_the_price(noise):
    body = f"<div><h1>Overshirt</h1>{noise}<p>£71.25</p><button>Add to basket</button></div>"
    assert extract_product(page(body=body), URL).price == Decimal("71.25")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Notify me when available", "out_of_stock"), ("Free delivery available", None), ("Available in 3 colours", None)],
)
def test_availability_texts_about_something_else(text, expected):
    body = f"<div><h1>Tee</h1><p>€20.00</p><p>SKU: T-100</p><p>{text}</p></div>"
    assert extract_product(page(body=body), URL).availability == expected


def test_style_words_are_not_codes():
    tree = lxml_html.fromstring(page(body="<div><h1>Bag</h1><p>€99.00</p><p>Style: 2-in-1 backpack</p></div>"))
    assert read_visible(tree, URL, URL).sku is None


def test_a_bare_dollar_follows_the_pages_region():
    body = "<div><h1>Parka</h1><p>$349.00</p><button>Add to cart</button></div>"
    assert extract_product(page(body=body, html_attrs='lang="en-CA"'), URL).currency == "CAD"
    assert extract_product(page(body=body, html_attrs='lang="en-US"'), URL).currency == "USD"


def test_a_heading_that_is_not_the_product_does_not_override_its_data():
    data = {"@type": "Product", "name": "Wool coat", "sku": "WC-1", "offers": offer(price="300.00")}
    body = "<div><h1>Winter sale</h1><p>Item #: PROMO-2024</p><p><s>€300.00</s> €99.00</p></div>"
    record = extract_product(page(ld(data), body), URL)
    assert (record.sku, record.price) == ("WC-1", Decimal("300.00"))


def test_a_working_buy_button_is_a_guess_at_stock():
    body = "<div><h1>Tee</h1><p>€20.00</p><button>Add to cart</button></div>"
    record = extract_product(page(body=body), URL)
    assert (record.availability, record.confidence["availability"]) == ("in_stock", 0.5)


def test_a_zoom_link_around_a_photo_is_its_largest_size():
    body = """<div><div class="media"><a href="/img/coat-01_1600x1600.jpg"><img src="/img/coat-01_800x800.jpg"></a>
    <a href="/img/coat-02_zoom.jpg"><img src="/img/coat-02.jpg"></a>
    <img src="/img/coat-03_600x.jpg" data-zoom="/img/coat-03_2000x.jpg"></div>
    <h1>Coat</h1><p>€90.00</p><button>Add to cart</button></div>"""
    record = extract_product(page(body=body), URL)
    assert record.image_urls == [
        "https://shop.example/img/coat-01_1600x1600.jpg",
        "https://shop.example/img/coat-02_zoom.jpg",
        "https://shop.example/img/coat-03_2000x.jpg",
    ]


def test_of_several_labelled_codes_the_structured_sku_is_kept():
    data = {"@type": "Product", "name": "Boot", "sku": "BT-100-BLK", "offers": offer()}
    body = "<div><h1>Boot</h1><p>Model: RG-2</p><p>SKU: BT-100-BLK</p><p>€120.00</p></div>"
    record = extract_product(page(ld(data), body), URL)
    assert (record.sku, record.sources["sku"], record.confidence["sku"]) == ("BT-100-BLK", "json-ld", 0.97)
