"""Rendered HTML in, a ``ProductRecord`` out: no browser, no database, so every rule is unit-testable.

Sources, best first, each field taken from the first that has it (``sources`` says which):
1. schema.org ``Product``/``ProductGroup`` structured data: JSON-LD (parsed per script, so one broken
   block spoils nothing else; ``@graph``, arrays, ``@id`` references, CDATA and comment wrappers, any
   ``@type`` case), microdata and RDFa (through extruct);
2. OpenGraph and product meta tags (``og:*``, ``product:price:*``);
3. the site's CSS selector profile.
When variants disagree, the variant the page shows wins: the one whose URL is the page URL, whose id is
in the query string, whose SKU or price the page shows elsewhere; else the first one listed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import extruct
import jstyleson
from cssselect import GenericTranslator
from lxml import etree
from lxml import html as lxml_html

from catalog.vocabulary import PAGE_FIELDS
from scraping.photo_urls import absolute_url, dom_image_candidates, looks_like_furniture, select_photos
from scraping.prices import parse_price
from scraping.profiles import SiteProfile

logger = logging.getLogger(__name__)

PRODUCT_TYPES = {"product", "productgroup", "productmodel", "individualproduct", "someproducts"}
LIST_TYPES = {"itemlist", "offercatalog", "collectionpage", "searchresultspage"}
SCHEMA_PREFIXES = ("http://schema.org/", "https://schema.org/")
GTIN_KEYS = ("gtin", "gtin13", "gtin14", "gtin12", "gtin8", "isbn")
IN_STOCK = {
    "instock",
    "instoreonly",
    "onlineonly",
    "limitedavailability",
    "madetoorder",
    "available",
    "availablefororder",
    "yes",
    "true",
    "auflager",
    "lieferbar",
    "endisponible",
    "disponible",
}
OUT_OF_STOCK = {
    "outofstock",
    "soldout",
    "discontinued",
    "backorder",
    "preorder",
    "presale",
    "oos",
    "unavailable",
    "notavailable",
    "no",
    "false",
    "ausverkauft",
    "nichtlieferbar",
    "epuise",
    "agotado",
}
TRACKING_PARAMS = re.compile(r"^(utm_\w+|gclid|fbclid|msclkid|mc_cid|mc_eid|_ga|ref|srsltid)$", re.IGNORECASE)
_WRAPPER_START = re.compile(r"^\s*(?://|/\*)?\s*(?:<!\[CDATA\[|<!--)\s*(?:\*/)?")
_WRAPPER_END = re.compile(r"(?://|/\*)?\s*(?:\]\]>|-->)\s*(?:\*/)?\s*$")


@dataclass
class ProductRecord:
    """What one product page says about its product, with the source of every field."""

    url: str
    canonical_url: str
    name: str | None = None
    sku: str | None = None
    gtin: str | None = None
    mpn: str | None = None
    brand: str | None = None
    description: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    availability: str | None = None
    colour: str | None = None
    category: str | None = None
    image_urls: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict:
        data = asdict(self)
        data["price"] = str(self.price) if self.price is not None else None
        return data


# --- plain-value helpers ----------------------------------------------------------------------------


def _local_name(key: str) -> str:
    if key.startswith("@"):
        return key
    for separator in ("#", "/", ":"):
        if separator in key:
            key = key.rsplit(separator, 1)[1]
    return key


def _types(node: dict) -> set[str]:
    raw = node.get("@type") or []
    values = raw if isinstance(raw, list) else [raw]
    return {_local_name(str(value)).lower() for value in values if value}


def _is_product(node) -> bool:
    return isinstance(node, dict) and bool(_types(node) & PRODUCT_TYPES)


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _text(value) -> str | None:
    """A clean one-line string from a scalar, a {"name"}/{"@value"} object or the first of a list."""
    for item in _as_list(value):
        if isinstance(item, dict):
            item = item.get("name") or item.get("@value") or item.get("value")
            if isinstance(item, list | dict):
                item = _text(item)
        if item is None or isinstance(item, bool):
            continue
        text = re.sub(r"\s+", " ", str(item)).strip()
        if text:
            return text
    return None


def _plain_text(value) -> str | None:
    """Text of a description that may hold HTML markup or entities."""
    text = _text(value)
    if not text:
        return None
    if "<" in text or "&" in text:
        with contextlib.suppress(etree.ParserError, ValueError):
            text = lxml_html.fromstring(f"<div>{text}</div>").text_content()
    return re.sub(r"\s+", " ", text).strip() or None


def normalize_availability(value) -> str | None:
    """``in_stock`` / ``out_of_stock`` from schema.org URLs, OpenGraph words or shop text; None if unsure."""
    text = _text(value)
    if not text:
        return None
    word = re.sub(r"[^a-z]", "", _local_name(text).lower())
    if word in IN_STOCK:
        return "in_stock"
    if word in OUT_OF_STOCK:
        return "out_of_stock"
    lowered = text.lower()
    if any(marker in lowered for marker in ("out of stock", "sold out", "ausverkauft", "épuisé", "agotado")):
        return "out_of_stock"
    if any(marker in lowered for marker in ("in stock", "auf lager", "en stock", "available")):
        return "in_stock"
    return None


def clean_url(url: str) -> str:
    """The URL without fragment and tracking parameters: the product's key in the catalog."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not TRACKING_PARAMS.match(k)]
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", urlencode(query), ""))


def _same_site(url: str, other: str) -> bool:
    host = (urlsplit(url).hostname or "").lower().removeprefix("www.")
    other_host = (urlsplit(other).hostname or "").lower().removeprefix("www.")
    return bool(host) and host == other_host


# --- structured data --------------------------------------------------------------------------------


def _json_ld_blocks(tree) -> list:
    """Every JSON-LD script, each parsed on its own; broken ones are logged and skipped."""
    blocks = []
    for script in tree.xpath(
        "//script[translate(@type, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')='application/ld+json']"
    ):
        text = _WRAPPER_END.sub("", _WRAPPER_START.sub("", script.text_content() or "")).strip().rstrip(";")
        if not text:
            continue
        try:
            blocks.append(json.loads(text, strict=False))
        except ValueError:
            try:
                blocks.append(jstyleson.loads(text, strict=False))
            except ValueError as exc:
                logger.info("skipping a JSON-LD block that is not JSON (%s): %.80r", exc, text)
    return blocks


def _normalize_json_ld(value, index: dict, depth: int = 0):
    """Prefix-free keys, ``@value`` unwrapped, ``{"@id": ...}`` references replaced by their node."""
    if depth > 12:
        return None
    if isinstance(value, list):
        return [_normalize_json_ld(item, index, depth + 1) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) <= {"@value", "@type", "@language"} and "@value" in value:
        return value["@value"]
    if set(value) == {"@id"} and value["@id"] in index and index[value["@id"]] is not value:
        return _normalize_json_ld(index[value["@id"]], index, depth + 1)
    return {
        _local_name(key): _normalize_json_ld(item, index, depth + 1) for key, item in value.items() if key != "@context"
    }


def _json_ld_nodes(blocks: list) -> list[dict]:
    """Top-level nodes of all blocks with ``@graph`` and arrays flattened and references resolved."""
    raw_nodes: list[dict] = []

    def flatten(value):
        if isinstance(value, list):
            for item in value:
                flatten(item)
        elif isinstance(value, dict):
            if "@graph" in value:
                flatten(value["@graph"])
                if not (set(value) - {"@graph", "@context", "@id"}):
                    return
            raw_nodes.append(value)

    flatten(blocks)
    index = {node["@id"]: node for node in raw_nodes if isinstance(node.get("@id"), str)}
    return [_normalize_json_ld(node, index) for node in raw_nodes]


def _rdfa_nodes(items: list[dict]) -> list[dict]:
    """extruct's expanded RDFa graph as nested schema.org nodes (other vocabularies dropped)."""
    index = {item.get("@id"): item for item in items if item.get("@id")}
    referenced: set[str] = set()

    def convert(node: dict, depth: int) -> dict:
        result: dict = {}
        if node.get("@type"):
            result["@type"] = [_local_name(t) for t in _as_list(node["@type"]) if str(t).startswith(SCHEMA_PREFIXES)]
        for key, values in node.items():
            if key.startswith("@") or not key.startswith(SCHEMA_PREFIXES):
                continue
            converted = []
            for value in _as_list(values):
                if isinstance(value, dict) and "@value" in value:
                    converted.append(value["@value"])
                elif isinstance(value, dict) and "@id" in value:
                    target = index.get(value["@id"])
                    if target is not None and depth < 8 and target is not node:
                        referenced.add(value["@id"])
                        converted.append(convert(target, depth + 1))
                    else:
                        converted.append(value["@id"])
            result[_local_name(key)] = converted[0] if len(converted) == 1 else converted
        return result

    nodes = [(item.get("@id"), convert(item, 0)) for item in items]
    return [node for node_id, node in nodes if node_id not in referenced and _types(node)]


def _product_candidates(nodes: list) -> list[tuple[dict, bool]]:
    """(product node, listed) for products not nested in another product; ``listed`` if inside an ItemList."""
    found: list[tuple[dict, bool]] = []

    def walk(value, listed: bool, depth: int):
        if depth > 12:
            return
        if isinstance(value, list):
            for item in value:
                walk(item, listed, depth + 1)
        elif isinstance(value, dict):
            if _is_product(value):
                found.append((value, listed))
                return
            is_list = bool(_types(value) & LIST_TYPES) or "itemListElement" in value
            for key, item in value.items():
                if not key.startswith("@"):
                    walk(item, listed or is_list, depth + 1)

    walk(nodes, False, 0)
    return found


def _main_product(nodes: list, page_url: str) -> dict | None:
    candidates = _product_candidates(nodes)
    primary = [node for node, listed in candidates if not listed]
    if not primary:
        return None  # a listing page: products only inside ItemLists
    if len(primary) == 1:
        return primary[0]
    for node in primary:
        url = _text(node.get("url"))
        if url and clean_url(urljoin(page_url, url)) == clean_url(page_url):
            return node
    with_offers = [node for node in primary if node.get("offers") or node.get("hasVariant")]
    return (with_offers or primary)[0]


@dataclass
class _PageHints:
    """What the page shows outside the structured data, used to pick the variant on display."""

    page_url: str
    skus: set[str] = field(default_factory=set)
    prices: set[Decimal] = field(default_factory=set)


def _offer_price(offer: dict) -> tuple[Decimal | None, str | None]:
    currency = _text(offer.get("priceCurrency"))
    price = offer.get("price")
    if price is None or price == "":
        for spec in _as_list(offer.get("priceSpecification")):
            if isinstance(spec, dict) and spec.get("price") not in (None, ""):
                price_type = _local_name(_text(spec.get("priceType")) or "").lower()
                if price_type in {"listprice", "strikethroughprice", "msrp"}:
                    continue
                price = spec["price"]
                currency = currency or _text(spec.get("priceCurrency"))
                break
    if price is None or price == "":
        price = offer.get("lowPrice")
    if isinstance(price, list):
        price = price[0] if price else None
    if isinstance(price, dict):
        price = price.get("@value")
    return parse_price(price, currency_hint=currency)


def _variant_score(variant: dict, hints: _PageHints, offer: dict | None = None) -> int:
    """How surely this variant (or offer) is the one the page shows: higher is surer, 0 is no evidence."""
    page = urlsplit(hints.page_url)
    page_query = dict(parse_qsl(page.query))
    ids = {str(_text(variant.get(key)) or "") for key in ("sku", "productID", "gtin", *GTIN_KEYS, "mpn")}
    if offer:
        ids |= {str(_text(offer.get(key)) or "") for key in ("sku", "gtin", *GTIN_KEYS, "mpn")}
    ids.discard("")
    for url in filter(None, [_text(variant.get("url")), _text((offer or {}).get("url"))]):
        absolute = urljoin(hints.page_url, url)
        if clean_url(absolute) == clean_url(hints.page_url):
            return 4
        variant_query = dict(parse_qsl(urlsplit(absolute).query))
        if variant_query and variant_query.items() <= page_query.items():
            return 4
    if page_query and ids & set(page_query.values()):
        return 3
    if ids & hints.skus:
        return 2
    if hints.prices:
        for source in filter(None, [offer, *[o for o in _as_list(variant.get("offers")) if isinstance(o, dict)]]):
            amount, _ = _offer_price(source)
            if amount is not None and amount in hints.prices:
                return 1
    return 0


def _pick(options: list, score) -> dict | None:
    best, best_score = None, -1
    for option in options:
        value = score(option)
        if value > best_score:
            best, best_score = option, value
    return best


def _offers(node: dict) -> list[dict]:
    offers = []
    for offer in _as_list(node.get("offers")):
        if not isinstance(offer, dict):
            continue
        nested = [o for o in _as_list(offer.get("offers")) if isinstance(o, dict)]
        offers.extend(nested or [offer])
        if nested and not any(o.get("price") not in (None, "") for o in nested):
            offers.append(offer)  # an AggregateOffer whose offers carry no price: keep its lowPrice
    return offers


def _product_fields(node: dict, base: str, hints: _PageHints) -> tuple[dict, list[str]]:
    """Field values and image URLs of a Product or ProductGroup node, for the variant on display."""
    group = node
    variants = [v for v in _as_list(node.get("hasVariant")) if isinstance(v, dict)]
    if variants:
        node = _pick(variants, lambda v: _variant_score(v, hints))
    values: dict = {}

    def first(*keys):
        for source in (node, group):
            for key in keys:
                text = _text(source.get(key))
                if text:
                    return text
        return None

    values["name"] = first("name")
    values["sku"] = first("sku") or (_text(node.get("productID")) if variants else None)
    values["gtin"] = first(*GTIN_KEYS)
    values["mpn"] = first("mpn")
    values["brand"] = _text(node.get("brand")) or _text(group.get("brand"))
    values["description"] = _plain_text(node.get("description")) or _plain_text(group.get("description"))
    values["colour"] = first("color", "colour")
    category = node.get("category") or group.get("category")
    if isinstance(category, list):
        category = " > ".join(filter(None, (_text(c) for c in category)))
    values["category"] = _text(category)
    offers = _offers(node) or _offers(group)
    if offers:
        offer = _pick(offers, lambda o: _variant_score({}, hints, o))
        values["price"], values["currency"] = _offer_price(offer)
        values["availability"] = normalize_availability(offer.get("availability"))
        values["sku"] = values["sku"] or _text(offer.get("sku"))
        values["gtin"] = values["gtin"] or next(filter(None, (_text(offer.get(k)) for k in GTIN_KEYS)), None)
        values["mpn"] = values["mpn"] or _text(offer.get("mpn"))
    images = _image_urls(node.get("image"), base) or _image_urls(group.get("image"), base)
    if node is not group:
        images += [url for url in _image_urls(group.get("image"), base) if url not in images]
    return {k: v for k, v in values.items() if v is not None and v != ""}, images


def _image_urls(value, base: str) -> list[str]:
    urls = []
    for item in _as_list(value):
        if isinstance(item, dict):
            item = item.get("contentUrl") or item.get("url") or item.get("@id")
            if isinstance(item, list):
                item = item[0] if item else None
        url = absolute_url(str(item), base) if item else None
        if url and not looks_like_furniture(url) and url not in urls:
            urls.append(url)
    return urls


def _structured_products(html: str, tree, base: str, page_url: str) -> list[tuple[str, dict]]:
    """(syntax, main product node) for each syntax that has one, best syntax first."""
    found = []
    json_ld = _json_ld_nodes(_json_ld_blocks(tree))
    syntaxes = []
    if tree.xpath("boolean(//*[@itemscope])"):
        syntaxes.append("microdata")
    if tree.xpath("boolean(//*[@typeof])"):
        syntaxes.append("rdfa")
    extracted = {}
    if "microdata" in syntaxes:
        extracted.update(extruct.extract(tree, base_url=base, syntaxes=["microdata"], uniform=True, errors="log"))
    if "rdfa" in syntaxes:
        # pyRdfa wants markup (it builds its own DOM), not an lxml tree.
        extracted.update(extruct.extract(html, base_url=base, syntaxes=["rdfa"], errors="log"))
    for syntax, nodes in (
        ("json-ld", json_ld),
        ("microdata", extracted.get("microdata", [])),
        ("rdfa", _rdfa_nodes(extracted.get("rdfa", []))),
    ):
        product = _main_product(nodes, page_url)
        if product is not None:
            found.append((syntax, product))
    return found


# --- OpenGraph and meta tags ------------------------------------------------------------------------

OG_FIELDS = {
    "name": ("og:title",),
    "description": ("og:description",),
    "price": ("product:price:amount", "og:price:amount", "product:sale_price:amount"),
    "currency": ("product:price:currency", "og:price:currency", "product:sale_price:currency"),
    "availability": ("product:availability", "og:availability"),
    "brand": ("product:brand", "og:brand"),
    "sku": ("product:retailer_item_id", "product:sku"),
    "gtin": ("product:gtin", "product:ean", "product:upc", "product:isbn"),
    "mpn": ("product:mfr_part_no", "product:mpn"),
    "colour": ("product:color", "product:colour"),
    "category": ("product:category",),
}
OG_IMAGE_KEYS = ("og:image", "og:image:url", "og:image:secure_url")


def _meta_properties(tree) -> list[tuple[str, str]]:
    """(property, content) of OpenGraph/product meta tags in document order, names lowercased.

    extruct's OpenGraph extractor is used first; meta tags it skips (``name=`` instead of ``property=``,
    upper-case names) are read directly so that shops writing them either way are understood.
    """
    properties: list[tuple[str, str]] = []
    for item in extruct.extract(tree, syntaxes=["opengraph"], uniform=False, errors="log").get("opengraph", []):
        properties.extend((key.lower(), value) for key, value in item.get("properties", []))
    seen = set(properties)
    for meta in tree.iter("meta"):
        key = (meta.get("property") or meta.get("name") or "").strip().lower()
        value = meta.get("content")
        if key.startswith(("og:", "product:")) and value is not None and (key, value) not in seen:
            properties.append((key, value))
            seen.add((key, value))
    return properties


def _opengraph(tree, base: str) -> tuple[dict, list[str], bool, str | None]:
    """(fields, images, says it is a product, og:url)."""
    properties = _meta_properties(tree)
    by_key: dict[str, list[str]] = {}
    for key, value in properties:
        by_key.setdefault(key, []).append(value)

    def first(keys):
        for key in keys:
            for value in by_key.get(key, []):
                if value and value.strip():
                    return value.strip()
        return None

    values = {name: first(keys) for name, keys in OG_FIELDS.items()}
    price, currency = parse_price(values.pop("price"), currency_hint=values.pop("currency"))
    values.update(price=price, currency=currency)
    values["availability"] = normalize_availability(values["availability"])
    og_type = (first(["og:type"]) or "").lower()
    is_product = og_type in {"product", "og:product", "product.item", "product.group"} or price is not None
    images = []
    for key, value in properties:
        if key in OG_IMAGE_KEYS:
            url = absolute_url(value, base)
            if url and not looks_like_furniture(url) and url not in images:
                images.append(url)
    return {k: v for k, v in values.items() if v not in (None, "")}, images, is_product, first(["og:url"])


# --- profiles ---------------------------------------------------------------------------------------


def _profile_values(tree, base: str, profile: SiteProfile) -> tuple[dict, list[list[tuple[str, float]]] | None]:
    values: dict = {}
    image_elements = None
    for name, rule in profile.fields.items():
        if rule.value is not None:
            values[name] = rule.value
            continue
        elements = tree.xpath(rule.xpath)
        if name == "images":
            image_elements = elements
            continue
        for element in elements:
            raw = element.get(rule.attr) if rule.attr else element.text_content()
            text = re.sub(r"\s+", " ", raw or "").strip()
            if text:
                values[name] = text
                break
    photos = None
    if image_elements is not None:
        rule = profile.fields["images"]
        if rule.attr:
            photos = [[(url, 0.0)] for url in (absolute_url(e.get(rule.attr), base) for e in image_elements) if url]
        else:
            photos = dom_image_candidates(tree, base, selector_elements=image_elements)
    price_text = values.pop("price", None)
    currency_text = values.pop("currency", None)
    if price_text is not None or currency_text is not None:
        price, currency = parse_price(price_text, currency_hint=currency_text)
        if price is not None:
            values["price"] = price
        if currency:
            values["currency"] = currency
    if "availability" in values:
        values["availability"] = normalize_availability(values["availability"])
    if "description" in values:
        values["description"] = _plain_text(values["description"])
    return {k: v for k, v in values.items() if v not in (None, "")}, photos


# --- the record -------------------------------------------------------------------------------------


def _canonical(tree, page_url: str, og_url: str | None, base: str) -> tuple[str, str]:
    """(canonical URL, source): rel=canonical, og:url, then the page URL; only same-site ones count."""
    for href in tree.xpath("//link[translate(@rel, 'CANONIAL', 'canonial')='canonical']/@href"):
        url = absolute_url(href, base)
        if url and _same_site(url, page_url):
            return clean_url(url), "link-canonical"
    if og_url:
        url = absolute_url(og_url, base)
        if url and _same_site(url, page_url):
            return clean_url(url), "opengraph"
    return clean_url(page_url), "page-url"


def extract_product(
    html: str,
    url: str,
    *,
    profile: SiteProfile | None = None,
    rendered_sizes: dict[str, tuple[int, int]] | None = None,
) -> ProductRecord | None:
    """The product a page describes, or None when it describes none (a listing, an article, an error page).

    ``url`` is the page's final URL; ``rendered_sizes`` maps image URLs to the natural size the browser
    saw, which tells tiny icons from photos when the markup does not.
    """
    if not html or not html.strip():
        return None
    try:
        tree = lxml_html.fromstring(html)
    except (etree.ParserError, ValueError):
        return None
    base_href = tree.xpath("string(//base/@href)")
    base = urljoin(url, base_href) if base_href else url

    og_values, og_images, og_is_product, og_url = _opengraph(tree, base)
    profile_values, profile_photos = _profile_values(tree, base, profile) if profile else ({}, None)
    hints = _PageHints(page_url=url)
    for values in (og_values, profile_values):
        if values.get("sku"):
            hints.skus.add(values["sku"])
        if values.get("price") is not None:
            hints.prices.add(values["price"])

    structured = _structured_products(html, tree, base, url)
    for _syntax, node in structured:
        if not node.get("hasVariant") and _text(node.get("sku")):
            hints.skus.add(_text(node.get("sku")))

    record = ProductRecord(url=url, canonical_url=url)
    images: list[list[tuple[str, float]]] = []

    def take(values: dict, source: str):
        for name in PAGE_FIELDS:
            if getattr(record, name) in (None, "") and values.get(name) not in (None, ""):
                setattr(record, name, values[name])
                record.sources[name] = source

    for syntax, node in structured:
        values, node_images = _product_fields(node, base, hints)
        take(values, syntax)
        images.extend([[(image, 0.0)] for image in node_images])
        if node_images:
            record.sources.setdefault("images", syntax)
    take(og_values, "opengraph")
    if og_images:
        images.extend([[(image, 0.0)] for image in og_images])
        record.sources.setdefault("images", "opengraph")
    if profile:
        take(profile_values, f"profile:{profile.name}")

    profile_says_product = profile_values.get("name") and profile_values.get("price") is not None
    if not (structured or og_is_product or profile_says_product):
        return None
    if not record.name:
        return None

    if profile_photos is not None:
        dom_photos = profile_photos
        dom_source = f"profile:{profile.name}"
    else:
        dom_photos = dom_image_candidates(tree, base, rendered_sizes=rendered_sizes)
        dom_source = "page"
    if dom_photos:
        images.extend(dom_photos)
        record.sources.setdefault("images", dom_source)
    record.image_urls = select_photos(images)
    record.canonical_url, record.sources["canonical_url"] = _canonical(tree, url, og_url, base)
    return record


# --- links of listing pages ------------------------------------------------------------------------


def find_links(html: str, url: str, selector: str) -> list[str]:
    """Same-site http(s) links of the elements ``selector`` matches (an element that is no link: its first link)."""
    if not html or not html.strip():
        return []
    tree = lxml_html.fromstring(html)
    base_href = tree.xpath("string(//base/@href)")
    base = urljoin(url, base_href) if base_href else url
    links: list[str] = []
    for element in tree.xpath(GenericTranslator().css_to_xpath(selector)):
        if not isinstance(element.tag, str):
            continue
        href = element.get("href")
        if href is None:
            inner = next(iter(element.xpath(".//a[@href]")), None)
            href = inner.get("href") if inner is not None else None
        link = absolute_url(href, base)
        if link and _same_site(link, url) and link not in links:
            links.append(link)
    return links
