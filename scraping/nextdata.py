"""The product a Next.js storefront keeps in its page payload: ``__NEXT_DATA__`` or ``self.__next_f`` chunks.

Such shops often render only the first photo (or none) into the HTML and keep the gallery, price and codes
in the JSON the client hydrates from. Shapes differ per shop, so the product is found by its traits: an
object whose name is the page's title and that carries images or a price. Sub-objects about other things
(recommendations, other colourways, reviews) are skipped.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from decimal import Decimal

from scraping.photo_urls import absolute_url, looks_like_furniture
from scraping.prices import parse_price

logger = logging.getLogger(__name__)

NAME_KEYS = ("name", "title", "productName", "displayName")
CODE_KEYS = (
    "styleNumber",
    "styleCode",
    "modelCode",
    "modelNumber",
    "articleNumber",
    "productCode",
    "itemNumber",
    "sku",
    "mpn",
)
COLOUR_KEYS = ("colour", "color", "colourName", "colorName")
IMAGE_LIST_KEYS = ("images", "media", "gallery", "photos", "pictures", "assets", "imageGallery")
IMAGE_URL_KEYS = ("url", "src", "href", "uri", "original", "large", "zoom", "full")
PRICE_KEYS = ("price", "prices", "pricing", "priceRange")
# Inside a price object: the current amount, not the old one.
CURRENT_PRICE_KEYS = ("current", "sale", "salePrice", "final", "finalPrice", "selling", "now", "value", "amount")
OLD_PRICE_KEYS = ("previous", "was", "original", "list", "listPrice", "regular", "compareAt", "compareAtPrice", "rrp")
CURRENCY_KEYS = ("currency", "currencyCode", "priceCurrency")
STOCK_KEYS = (
    "availability",
    "stockStatus",
    "stock",
    "inStock",
    "isOnStock",
    "available",
    "availableForSale",
    "isInStock",
)
# The variant a product object nests its details in (commercetools' masterVariant, Shopify's selectedVariant).
NESTED_VARIANT = re.compile(r"^(?:master|default|selected|current|active|first)?_?variant$", re.IGNORECASE)
CENT_KEYS = ("centAmount", "amountInCents", "priceInCents", "cents")
# Sub-objects that describe other products.
FOREIGN_KEYS = re.compile(
    r"recommend|related|similar|upsell|cross|recently|other|colourways|colorways|alternat|suggest|bundle|review",
    re.IGNORECASE,
)
IMAGE_PATH = re.compile(r"\.(?:jpe?g|png|webp|avif|gif)(?:$|[?#])", re.IGNORECASE)
_FLIGHT_PUSH = re.compile(r"self\.__next_f\.push\((\[.*?\])\)\s*;?\s*$", re.DOTALL)


@dataclass
class PayloadProduct:
    name: str | None = None
    sku: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    availability: str | None = None
    colour: str | None = None
    images: list[str] = field(default_factory=list)

    def values(self) -> dict:
        found = {
            "name": self.name,
            "sku": self.sku,
            "price": self.price,
            "currency": self.currency,
            "availability": self.availability,
            "colour": self.colour,
        }
        return {key: value for key, value in found.items() if value not in (None, "")}


def payloads(tree) -> list:
    """Every JSON value the page's Next.js scripts hold (``__NEXT_DATA__`` and flight chunks)."""
    found = []
    for script in tree.xpath("//script[@id='__NEXT_DATA__']"):
        try:
            found.append(json.loads(script.text_content()))
        except ValueError:
            logger.info("skipping a __NEXT_DATA__ script that is not JSON")
    chunks = []
    for script in tree.xpath("//script[contains(., '__next_f')]"):
        match = _FLIGHT_PUSH.search((script.text_content() or "").strip())
        if not match:
            continue
        try:
            pushed = json.loads(match.group(1))
        except ValueError:
            continue
        if len(pushed) > 1 and isinstance(pushed[1], str):
            chunks.append(pushed[1])
    found.extend(_flight_values("".join(chunks)))
    return found


def _flight_values(stream: str) -> list:
    """JSON values of a React flight stream: lines ``<id>:<json>`` (other rows, like ``T`` text rows, skipped)."""
    decoder = json.JSONDecoder()
    values = []
    for line in stream.splitlines():
        _, colon, rest = line.partition(":")
        if not colon:
            continue
        start = next((index for index, char in enumerate(rest) if char in "[{"), None)
        if start is None:
            continue
        try:
            value, _ = decoder.raw_decode(rest[start:])
        except ValueError:
            continue
        values.append(value)
    return values


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text).strip().lower()


def _candidates(value, depth: int = 0):
    """Dicts of the payload that are not inside a sub-tree about other products."""
    if depth > 40:
        return
    if isinstance(value, dict):
        yield value
        for key, item in value.items():
            if not FOREIGN_KEYS.search(str(key)):
                yield from _candidates(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _candidates(item, depth + 1)


def _first_text(node: dict, keys) -> str | None:
    for key in keys:
        value = node.get(key)
        if isinstance(value, dict):
            value = value.get("name") or value.get("label") or value.get("value")
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def _images(node: dict, base: str) -> list[str]:
    urls: list[str] = []

    def collect(value, depth: int):
        if depth > 6:
            return
        if isinstance(value, str):
            if IMAGE_PATH.search(value) or value.startswith(("http://", "https://", "//")):
                url = absolute_url(value, base)
                if url and IMAGE_PATH.search(url) and not looks_like_furniture(url) and url not in urls:
                    urls.append(url)
        elif isinstance(value, list):
            for item in value:
                collect(item, depth + 1)
        elif isinstance(value, dict):
            for key, item in value.items():
                if FOREIGN_KEYS.search(str(key)):
                    continue
                if key in IMAGE_URL_KEYS or key in IMAGE_LIST_KEYS or isinstance(item, list | dict):
                    collect(item, depth + 1)

    for key in (*IMAGE_LIST_KEYS, "image", "images"):
        if key in node:
            collect(node[key], 0)
    return urls


def _with_variant(node: dict) -> dict:
    """The product object with the fields of the variant it nests (``masterVariant``) filled in."""
    merged = dict(node)
    for key, value in node.items():
        if isinstance(value, dict) and NESTED_VARIANT.match(str(key)):
            for inner_key, inner in value.items():
                merged.setdefault(inner_key, inner)
    return merged


def _cents(value: dict) -> Decimal | None:
    for key in CENT_KEYS:
        if isinstance(value.get(key), int) and not isinstance(value.get(key), bool):
            digits = value.get("fractionDigits", value.get("precision", 2))
            return Decimal(value[key]).scaleb(-int(digits if isinstance(digits, int) else 2))
    return None


def _price(node: dict) -> tuple[Decimal | None, str | None]:
    currency = _first_text(node, CURRENCY_KEYS)
    for key in PRICE_KEYS:
        if key not in node:
            continue
        value = node[key]
        for _ in range(5):
            if isinstance(value, list):
                value = value[0] if value else None
                continue
            if not isinstance(value, dict):
                break
            currency = _first_text(value, CURRENCY_KEYS) or currency
            cents = _cents(value)
            if cents is not None:
                return cents, parse_price(cents, currency_hint=currency)[1]
            inner = next((value[k] for k in CURRENT_PRICE_KEYS if k in value and k not in OLD_PRICE_KEYS), None)
            if inner is None:
                inner = next((item for k, item in value.items() if k not in OLD_PRICE_KEYS and k in PRICE_KEYS), None)
            value = inner
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            amount, code = parse_price(value, currency_hint=currency)
            if amount is not None:
                return amount, code
    return None, None


def _availability(node: dict) -> str | None:
    from scraping.extract import normalize_availability

    for key in STOCK_KEYS:
        if key in node:
            value = node[key]
            if isinstance(value, bool):
                return "in_stock" if value else "out_of_stock"
            if isinstance(value, dict):
                nested = _availability(value)
                if nested:
                    return nested
                value = value.get("status") or value.get("value")
            state = normalize_availability(str(value).replace("_", " ")) if value is not None else None
            if state:
                return state
    return None


def payload_product(tree, base: str, title: str | None) -> PayloadProduct | None:
    """The page's product from its Next.js payload, or None. ``title`` (the page's main title) identifies it."""
    values = payloads(tree)
    if not values or not title:
        return None
    wanted = _norm(title)
    best, best_score = None, 0
    for node in _candidates(values):
        node = _with_variant(node)
        name = _first_text(node, NAME_KEYS)
        if not name or _norm(name) != wanted:
            continue
        images = _images(node, base)
        price, _ = _price(node)
        score = 1 + 2 * bool(images) + bool(price is not None) + bool(_first_text(node, CODE_KEYS))
        if score > best_score:
            best, best_score = (node, name, images), score
    if best is None or best_score < 2:
        return None
    node, name, images = best
    price, currency = _price(node)
    return PayloadProduct(
        name=title.strip() if _norm(title) == _norm(name) else name,  # the page's spelling of the same name
        sku=_first_text(node, CODE_KEYS),
        price=price,
        currency=currency,
        availability=_availability(node),
        colour=_first_text(node, COLOUR_KEYS),
        images=images,
    )
