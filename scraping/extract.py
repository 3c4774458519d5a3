"""Rendered HTML in, a ``ProductRecord`` out: no browser, no database, so every rule is unit-testable.

Sources, best first, each field taken from the first that has it (``sources`` says which, ``confidence``
how sure the crawler is):
1. schema.org ``Product``/``ProductGroup`` structured data: JSON-LD (parsed per script, so one broken
   block spoils nothing else; ``@graph``, arrays, ``@id`` references, CDATA and comment wrappers, any
   ``@type`` case, keys in any letter case), microdata (schema.org and the old data-vocabulary.org) and
   RDFa (through extruct);
2. OpenGraph and product meta tags (``og:*``, ``product:price:*``; a book's ISBN is no SKU);
3. the site's CSS selector profile;
4. a Next.js page payload (``__NEXT_DATA__``, ``self.__next_f``: see ``nextdata.py``);
5. the visible page (``visible.py``): title, price not struck through, labelled code, colour, stock text.
The visible page is also the cross-check: a displayed product code beats a size variant's SKU or a
differently formatted one, and a structured price the page strikes through gives way to the sale price.
When variants disagree, the variant the page shows wins: the one whose URL is the page URL, whose id is
in the query string, whose SKU or price the page shows elsewhere; else the first one listed. The product's
own code (``productGroupID``) beats one size's SKU, and one size in stock makes the product in stock.
Photos: the ones the shop's data lists, plus the page's images of the same gallery section (never tiles
linking to other products, banners or icons), one URL per photo at its largest size.
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
from scraping.nextdata import payload_product
from scraping.page_text import (
    IN_STOCK,  # noqa: F401  (re-exported: the words live in page_text now)
    OUT_OF_STOCK,  # noqa: F401
    SIZE_TOKEN,
    is_placeholder,
    unescape,
    without_size_suffix,
)
from scraping.page_text import normalize_availability as text_availability
from scraping.photo_urls import (
    absolute_url,
    dom_image_candidates,
    dom_image_elements,
    gallery_region,
    looks_like_furniture,
    loose_photo_key,
    photo_key,
    select_photos,
)
from scraping.prices import parse_price
from scraping.profiles import SiteProfile
from scraping.visible import read_visible

logger = logging.getLogger(__name__)

PRODUCT_TYPES = {"product", "productgroup", "productmodel", "individualproduct", "someproducts"}
LIST_TYPES = {"itemlist", "offercatalog", "collectionpage", "searchresultspage"}
SCHEMA_PREFIXES = ("http://schema.org/", "https://schema.org/")
GTIN_KEYS = ("gtin", "gtin13", "gtin14", "gtin12", "gtin8", "isbn")
# Keys as schema.org spells them, for shops that write them in lower case, and the old data-vocabulary.org names.
CANONICAL_KEYS = {
    key.lower(): key
    for key in (
        "lowPrice",
        "highPrice",
        "priceCurrency",
        "priceSpecification",
        "priceType",
        "offerCount",
        "availability",
        "productID",
        "productGroupID",
        "hasVariant",
        "isVariantOf",
        "variesBy",
        "itemListElement",
        "offers",
        "price",
        "sku",
        "mpn",
        "name",
        "image",
        "url",
        "color",
        "brand",
        "size",
        "description",
        "category",
        "contentUrl",
        *GTIN_KEYS,
    )
}
CANONICAL_KEYS.update({"offerdetails": "offers", "currency": "priceCurrency", "identifier": "productID"})
# How sure a field is, by where it came from (``confidence`` in the record); cross-checks move it up or down.
SOURCE_CONFIDENCE = {"json-ld": 0.9, "microdata": 0.9, "rdfa": 0.9, "next-data": 0.8, "opengraph": 0.8, "page": 0.6}
CONFIRMED = 0.97  # structured data and the visible page agree
GUESSED = 0.5  # inferred from a hint (a buy button for stock, size-variant SKUs for the model code)
_ID_PREFIX = re.compile(r"^(?P<kind>sku|mpn|item|id|isbn|gtin\d*|ean|upc)\s*:\s*", re.IGNORECASE)
_SIZE_ONLY = re.compile(rf"^{SIZE_TOKEN}$", re.IGNORECASE)
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
    # 0..1 per field: how sure the crawler is (see SOURCE_CONFIDENCE); below 0.7 means "check this".
    confidence: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict:
        data = asdict(self)
        data["price"] = str(self.price) if self.price is not None else None
        data["images"] = list(self.image_urls)  # the name the held-out scoring reads
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
        text = re.sub(r"\s+", " ", unescape(str(item))).strip()
        if text and not is_placeholder(text):
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
    return text_availability(_text(value))


def _canonical_keys(value, depth: int = 0):
    """The node with keys spelled as schema.org does (``lowprice`` -> ``lowPrice``, ``offerDetails`` -> ``offers``)."""
    if depth > 14:
        return value
    if isinstance(value, list):
        return [_canonical_keys(item, depth + 1) for item in value]
    if not isinstance(value, dict):
        return value
    result = {}
    for key, item in value.items():
        name = CANONICAL_KEYS.get(key.lower(), key) if isinstance(key, str) and not key.startswith("@") else key
        if name not in result or result[name] in (None, "", []):
            result[name] = _canonical_keys(item, depth + 1)
    return result


def _code(value) -> tuple[str | None, str | None]:
    """(code, kind) of an identifier written with a prefix ("sku:OP-1", "isbn:978...") or without (kind None)."""
    text = _text(value)
    if not text:
        return None, None
    match = _ID_PREFIX.match(text)
    if match:
        return text[match.end() :].strip() or None, match.group("kind").lower()
    return text, None


def is_isbn(value: str | None) -> bool:
    """True for a valid ISBN-13 (978/979 prefix) or ISBN-10: a book's number, not a shop's item code."""
    digits = re.sub(r"[\s-]", "", value or "")
    if re.fullmatch(r"97[89]\d{10}", digits):
        total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(digits[:12]))
        return (10 - total % 10) % 10 == int(digits[12])
    if re.fullmatch(r"\d{9}[\dXx]", digits):
        total = sum((10 - i) * (10 if c in "Xx" else int(c)) for i, c in enumerate(digits))
        return total % 11 == 0
    return False


def _alnum(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


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


def _amount(value, currency: str | None) -> tuple[Decimal | None, str | None]:
    """A price that may be a number, a string, a list or a nested object (``{"@value"}``, a PriceSpecification)."""
    for _ in range(4):
        if isinstance(value, list):
            value = value[0] if value else None
        elif isinstance(value, dict):
            currency = currency or _text(value.get("priceCurrency"))
            value = next(
                (value[k] for k in ("@value", "price", "value", "lowPrice") if value.get(k) not in (None, "")), None
            )
        else:
            break
    return parse_price(value, currency_hint=currency)


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
    return _amount(price, currency)


def _variant_score(variant: dict, hints: _PageHints, offer: dict | None = None) -> int:
    """How surely this variant (or offer) is the one the page shows: higher is surer, 0 is no evidence."""
    page = urlsplit(hints.page_url)
    page_query = dict(parse_qsl(page.query))
    ids = {str(_text(variant.get(key)) or "") for key in ("sku", "productID", "gtin", *GTIN_KEYS, "mpn")}
    if offer:
        ids |= {str(_text(offer.get(key)) or "") for key in ("sku", "gtin", *GTIN_KEYS, "mpn")}
    ids.discard("")
    partial = False
    for url in filter(None, [_text(variant.get("url")), _text((offer or {}).get("url"))]):
        absolute = urljoin(hints.page_url, url)
        if clean_url(absolute) == clean_url(hints.page_url):
            return 4
        variant_query = dict(parse_qsl(urlsplit(absolute).query))
        if variant_query and variant_query.items() <= page_query.items():
            return 4
        # The page names fewer options than the variant (?color=navy for the navy variants of every size).
        same_path = urlsplit(absolute).path.rstrip("/") == page.path.rstrip("/")
        partial = partial or (same_path and bool(page_query) and page_query.items() <= variant_query.items())
    if partial or (page_query and ids & set(page_query.values())):
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
    return _pick_scored(options, score)[0]


def _pick_scored(options: list, score) -> tuple[dict | None, int, int]:
    """(best option, its score, how many options share that score): the first of the best."""
    best, best_score, ties = None, -1, 0
    for option in options:
        value = score(option)
        if value > best_score:
            best, best_score, ties = option, value, 1
        elif value == best_score:
            ties += 1
    return best, best_score, ties


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


def _shared_code(codes: list[str]) -> str | None:
    """The model code of size-variant SKUs ("NW-118-S", "NW-118-M" -> "NW-118"), or None if they are not that."""
    codes = [code for code in dict.fromkeys(codes) if code]
    if len(codes) < 2:
        return None
    prefix = codes[0]
    for code in codes[1:]:
        while not code.startswith(prefix):
            prefix = prefix[:-1]
    cut = max(prefix.rfind(sep) for sep in "-_/. ")
    if cut < 3:
        return None
    base = prefix[:cut]
    suffixes = [code[cut + 1 :] for code in codes]
    return base if all(_SIZE_ONLY.match(suffix) for suffix in suffixes) else None


def _availability_of(options: list[dict]) -> list[str]:
    states = []
    for option in options:
        for offer in [option, *(_offers(option) if option.get("offers") else [])]:
            state = normalize_availability(offer.get("availability"))
            if state:
                states.append(state)
    return states


def _product_fields(node: dict, base: str, hints: _PageHints) -> tuple[dict, list[str], dict]:
    """Field values, image URLs and per-field confidence of a Product or ProductGroup, for the variant on display.

    The product's own code (the group's ``productGroupID``, the product's ``sku``) beats the SKU of one size;
    one size in stock makes the product (in the colour on display) in stock.
    """
    group = node
    confidence: dict[str, float] = {}
    variants = [v for v in _as_list(node.get("hasVariant")) if isinstance(v, dict)]
    pinned = False
    if variants:
        node, score, ties = _pick_scored(variants, lambda v: _variant_score(v, hints))
        pinned = score >= 2 and ties == 1
    values: dict = {}

    def first(*keys):
        for source in (node, group):
            for key in keys:
                text = _text(source.get(key))
                if text:
                    return text
        return None

    sizes = {_text(v.get("size")) or "" for v in variants} - {""}
    group_name = _text(group.get("name")) if group is not node else None
    name = _text(node.get("name"))
    if group_name and (not name or _norm_name(name).startswith(_norm_name(group_name))):
        name = group_name
    name = name or group_name
    if name and (variants or len(_offers(node)) > 1):
        name = without_size_suffix(name, sizes)
    values["name"] = name
    product_id, id_kind = _code(node.get("productID"))
    if id_kind in {"isbn", "gtin", "gtin8", "gtin12", "gtin13", "gtin14", "ean", "upc"}:
        values["gtin"], product_id = product_id, None
    group_code = _code(group.get("productGroupID"))[0] if group is not node else None
    if group is not node:
        group_code = group_code or _text(group.get("sku"))
    values["sku"] = _text(node.get("sku")) or product_id
    if variants and group_code and not pinned:
        values["sku"] = group_code
    values["sku"] = values["sku"] or group_code
    values["gtin"] = values.get("gtin") or first(*GTIN_KEYS)
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
        priced = [o for o in offers if _offer_price(o)[0] is not None] or offers
        offer, score, ties = _pick_scored(priced, lambda o: _variant_score({}, hints, o))
        values["price"], values["currency"] = _offer_price(offer)
        values["availability"] = normalize_availability(offer.get("availability"))
        offer_codes = [_text(o.get("sku")) for o in offers]
        if not values["sku"]:
            shared = None if (score >= 2 and ties == 1) else _shared_code(offer_codes)
            values["sku"] = shared or _text(offer.get("sku"))
            if shared:
                confidence["sku"] = GUESSED
        values["gtin"] = values["gtin"] or next(filter(None, (_text(offer.get(k)) for k in GTIN_KEYS)), None)
        values["mpn"] = values["mpn"] or _text(offer.get("mpn"))
        states = _availability_of(offers)
    else:
        states = []
    if variants:
        colour = (_text(node.get("color")) or "").lower()
        same_colour = [v for v in variants if (_text(v.get("color")) or "").lower() == colour]
        states = _availability_of(same_colour or [node])
    if "in_stock" in states:
        values["availability"] = "in_stock"  # one size (or one offer) in stock: the product can be bought
    elif not values.get("availability") and states:
        values["availability"] = states[0]
    if not values["sku"] and values["mpn"]:
        values["sku"], confidence["sku"] = values["mpn"], 0.7  # the manufacturer's model code
    images = _image_urls(node.get("image"), base) or _image_urls(group.get("image"), base)
    if node is not group:
        own_colour = (_text(node.get("color")) or "").lower()
        foreign = {
            url
            for variant in variants
            if (_text(variant.get("color")) or "").lower() != own_colour
            for url in _image_urls(variant.get("image"), base)
        }
        images += [url for url in _image_urls(group.get("image"), base) if url not in images and url not in foreign]
    return {k: v for k, v in values.items() if v is not None and v != ""}, images, confidence


def _common_ancestor(one, other):
    """The nearest element that holds both (or either one, if it holds the other)."""
    ancestors = [one, *one.iterancestors()]
    around_other = {other, *other.iterancestors()}
    return next((node for node in ancestors if node in around_other), None)


def _norm_name(text: str) -> str:
    return re.sub(r"\W+", " ", text).strip().lower()


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


def _structured_products(html: str, tree, base: str, page_url: str) -> tuple[list[tuple[str, dict]], bool]:
    """(syntax, main product node) for each syntax that has one, best syntax first; and whether the
    structured data lists products (an ItemList) without describing one of its own: a listing page."""
    found = []
    listing = False
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
        nodes = _canonical_keys(nodes)
        product = _main_product(nodes, page_url)
        if product is not None:
            found.append((syntax, product))
        else:
            listing = listing or any(listed for _, listed in _product_candidates(nodes))
    return found, listing


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
    values = {name: None if value and is_placeholder(value) else value for name, value in values.items()}
    values = {name: unescape(value) if isinstance(value, str) else value for name, value in values.items()}
    isbn = first(["book:isbn", "og:isbn", "product:isbn", "books:isbn"])
    if values["sku"] and (values["sku"] == isbn or is_isbn(values["sku"])):
        # A book's ISBN in the item-id tag: a GTIN, not the shop's code.
        values["gtin"] = values["gtin"] or values["sku"]
        values["sku"] = None
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

    structured, lists_products = _structured_products(html, tree, base, url)
    for _syntax, node in structured:
        if not node.get("hasVariant") and _text(node.get("sku")):
            hints.skus.add(_text(node.get("sku")))

    record = ProductRecord(url=url, canonical_url=url)
    listed: list[str] = []  # photos the shop's data lists: structured data, payload, OpenGraph

    def take(values: dict, source: str, confidence: dict | None = None):
        for name in PAGE_FIELDS:
            if getattr(record, name) in (None, "") and values.get(name) not in (None, ""):
                setattr(record, name, values[name])
                record.sources[name] = source
                record.confidence[name] = (confidence or {}).get(name, SOURCE_CONFIDENCE.get(source, 0.9))

    def list_photos(urls: list[str], source: str):
        if urls:
            listed.extend(url for url in urls if url not in listed)
            record.sources.setdefault("images", source)

    for syntax, node in structured:
        values, node_images, confidence = _product_fields(node, base, hints)
        take(values, syntax, confidence)
        list_photos(node_images, syntax)
    visible = read_visible(tree, base, url, names=[record.name, og_values.get("name")], rendered_sizes=rendered_sizes)
    take(og_values, "opengraph")
    if profile:
        take(profile_values, f"profile:{profile.name}")  # hand-written for the site: before any guesswork
    payload = payload_product(tree, base, visible.name or record.name or og_values.get("name"))
    if payload is not None:
        take(payload.values(), "next-data")
        list_photos(payload.images, "next-data")
    list_photos(og_images, "opengraph")

    profile_says_product = profile_values.get("name") and profile_values.get("price") is not None
    payload_says_product = payload is not None and payload.price is not None
    page_says_product = visible.looks_like_product and not (lists_products and not structured)
    if not (structured or og_is_product or profile_says_product or payload_says_product or page_says_product):
        return None
    if visible.title_matches or not record.name:
        # Only a page whose title shows the product's name speaks for it (not a brand banner's <h1>).
        _cross_check(record, visible)
        take(visible.values(), "page", dict.fromkeys(visible.guessed, GUESSED))
    if not record.name:
        return None

    record.image_urls = _photos(tree, base, url, record, listed, visible, profile, profile_photos, rendered_sizes)
    record.canonical_url, record.sources["canonical_url"] = _canonical(tree, url, og_url, base)
    return record


def _cross_check(record: ProductRecord, visible) -> None:
    """Structured values against what the page shows: the displayed code and the price not struck through win.

    A SKU that is the displayed code with a size appended, or the same code without its punctuation, is
    replaced by the code as displayed; a structured price the page shows struck through is the old price.
    Values both agree on are marked confirmed.
    """
    shown = visible.sku
    if record.sku:
        # Of several labelled codes (SKU, style, model), the one that is the structured SKU is the one shown.
        shown = next((code for code in visible.codes if _alnum(code) == _alnum(record.sku)), shown)
    if shown and shown == record.sku and record.sources.get("sku") != "page":
        record.confidence["sku"] = CONFIRMED
    if shown and record.sku and shown != record.sku:
        ours, theirs = _alnum(record.sku), _alnum(shown)
        if ours == theirs:
            sure = 0.9  # same code, the page keeps its formatting (466/7999)
        elif len(theirs) >= 3 and ours.startswith(theirs):
            sure = 0.85  # a size variant's SKU: the model code is displayed
        else:
            sure = 0.6  # the page displays another code than its structured data
        record.sku, record.sources["sku"], record.confidence["sku"] = shown, "page", sure
    if (
        visible.price is not None
        and record.price is not None
        and record.price != visible.price
        and record.price in visible.old_prices
    ):
        record.price, record.sources["price"], record.confidence["price"] = visible.price, "page", 0.75
    if visible.name and record.name and record.sources.get("name") == "opengraph" and record.name != visible.name:
        rest = record.name[len(visible.name) :] if record.name.startswith(visible.name) else ""
        if re.match(r"^\s*[|–—:-]\s*\S", rest):
            # og:title with the shop's name appended ("Linen trousers | Shop"): the page's own title is the name.
            record.name, record.sources["name"], record.confidence["name"] = visible.name, "page", 0.9
    for name, value in visible.values().items():
        if getattr(record, name) == value and record.sources.get(name) not in (None, "page"):
            record.confidence[name] = CONFIRMED


def _photos(tree, base, url, record, listed, visible, profile, profile_photos, rendered_sizes) -> list[str]:
    """The product's photos, one URL each: the listed ones, plus the page images of the same gallery.

    When the shop's data lists photos, page images count only inside the gallery around the listed ones
    (so no recommendation tiles, banners or icons); otherwise the product section's images, otherwise all
    product-looking images of the page.
    """
    groups: list[list[tuple[str, float]]] = [[(image, 0.0)] for image in listed]
    if profile_photos is not None:
        dom, source = profile_photos, f"profile:{profile.name}"
    elif listed:
        photos = dom_image_elements(tree, base, rendered_sizes=rendered_sizes, page_url=url)
        keys = {photo_key(image) for image in listed} | {loose_photo_key(image) for image in listed} - {None}
        title = visible.title_element
        region = gallery_region(photos, keys, title=title)
        if title is not None:
            # The product's section: the smallest part of the page holding its title and its gallery.
            section = _common_ancestor(title, region) if region is not None else title.getparent()
        else:
            section = region
        dom = [urls for img, urls in photos if section is not None and section in img.iterancestors()]
        source = "page"
        record.confidence["images"] = 0.9 if region is not None else 0.8
    elif visible.gallery:
        dom, source = visible.gallery, "page"
        record.confidence["images"] = SOURCE_CONFIDENCE["page"]
    else:
        dom, source = dom_image_candidates(tree, base, rendered_sizes=rendered_sizes, page_url=url), "page"
        record.confidence["images"] = 0.5
    if dom:
        groups.extend(dom)
        record.sources.setdefault("images", source)
    return select_photos(groups)


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
