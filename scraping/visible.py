"""What a shopper sees on a product page, read without structured data: the fallback and the cross-check.

Everything is anchored on the main title (the page's ``<h1>``): the product's own block is the nearest
ancestor of the title that also holds a price, and the product section the nearest one that also holds
photos. Inside it, the price is the first one not struck through and not labelled as an old price (so
neither a "was" price nor a recommendation's); the product code, colour and availability come from their
labels in several languages; the gallery is the section's images minus tiles that link to other pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from scraping.page_text import is_placeholder, normalize_availability
from scraping.photo_urls import dom_image_elements
from scraping.prices import currency_code, parse_price

MAX_TITLE_CLIMB = 6
MAX_SECTION_CLIMB = 4
SHORT_TEXT = 90
LISTING_BUY_CONTROLS = 3

BUY_CONTROL = re.compile(
    r"add to (?:cart|bag|basket|trolley)|buy (?:it )?now|in den (?:warenkorb|einkaufswagen)|ajouter au panier|"
    r"añadir a la (?:cesta|bolsa)|añadir al carrito|aggiungi al carrello|in (?:de )?winkelwagen|"
    r"toevoegen aan winkelwagen|lägg i (?:varukorgen|kundvagnen)|læg i kurv|legg i handlekurv|dodaj do koszyka|"
    r"kup teraz|adicionar ao carrinho|カートに入れる|加入购物车",
    re.IGNORECASE,
)
CART_ACTION = re.compile(r"cart|basket|bag|warenkorb|panier|cesta|carrito|carrello|winkelwagen|checkout", re.I)
CODE_LABEL = re.compile(
    r"(?:^|[\s(|•·,;/])(?:product\s*(?:code|no\.?|number|id)|item\s*(?:#|no\.?|number|code|id)|"
    r"style\s*(?:#|no\.?|number|code)?|model\s*(?:#|no\.?|number|code)?|sku|mpn|part\s*(?:#|no\.?|number)|"
    r"art(?:ikel)?\.?\s*-?\s*(?:nr|no|nummer)\.?|artikelnummer|bestellnummer|best\.?-?nr\.?|"
    r"r[ée]f(?:[ée]rence)?\.?|referencia|c[óo]digo|codice(?:\s*articolo)?|cod\.|code\s*(?:produit|article)|"
    r"artikelnr\.?|varenummer|varenr\.?|品番|商品番号)(?![A-Za-zÀ-ÿ])"
    r"\s*[:#.]?\s*(?P<code>[A-Za-z0-9][A-Za-z0-9./\-_]{1,40})",
    re.IGNORECASE,
)
COLOUR_LABEL = re.compile(
    r"^(?:colou?r|farbe|couleur|coloris|colore|kleur|färg|farve|farge|kolor|cor)\s*:\s*(?P<value>[^:]{1,40})$",
    re.IGNORECASE,
)
_CURRENCY = (
    r"(?:US\s?\$|C\$|CA\$|A\$|AU\$|HK\$|NZ\$|R\$|\$|€|£|¥|₹|₩|₺|₽|zł|Kč|CHF|EUR|USD|GBP|SEK|NOK|DKK|PLN|CZK|"
    r"JPY|AUD|CAD|HUF|RON|Fr\.)"
)
_NUMBER = r"\d{1,3}(?:[.,\u00a0\u202f ]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
PRICE_TEXT = re.compile(
    rf"(?P<before>{_CURRENCY})\s?(?P<n1>{_NUMBER})(?![\d%])|(?<![\d.,])(?P<n2>{_NUMBER})\s?(?P<after>{_CURRENCY})"
)
# Words before a price that make it an old price or a saving, not the price to pay.
OLD_PRICE_WORDS = re.compile(
    r"(?:\bwas|\bstatt|\buvp|\brrp|\bmsrp|instead of|previously|originally|\bbefore|\bavant|\bantes|\bprima|"
    r"\bvorher|regular price|list price|compare at|\bsave|you save|\bspare|économisez|ahorra|risparmi)\s*:?\s*$",
    re.IGNORECASE,
)
OLD_PRICE_CLASSES = {
    "old",
    "was",
    "strike",
    "strikethrough",
    "striked",
    "through",
    "crossed",
    "compare",
    "before",
    "previous",
    "original",
    "rrp",
    "uvp",
    "msrp",
    "list",
    "saving",
    "savings",
    "discount",
}
SALE_PRICE_CLASSES = {"sale", "sales", "special", "current", "now", "final", "promo", "reduced", "actual", "aktuell"}
STRUCK_TAGS = {"del", "s", "strike"}
# Texts whose prices or "available" are not about the product's price or stock.
NOT_THE_PRICE = re.compile(
    r"\b(?:over|orders?|spend|shipping|delivery|postage|versand|livraison|env[ií]o|spedizione|verzending|"
    r"klarna|afterpay|paypal|installments?|instalments?|pay in|per month|/\s?mo(?:nth)?\b|a month|monthly|"
    r"credit|gift card|voucher|coupon)(?!\w)",
    re.IGNORECASE,
)
NOT_STOCK_TEXT = re.compile(
    r"deliver|shipping|colou?rs?\b|sizes\b|klarna|paypal|install|pick ?up|collect|return|versand|livraison|"
    r"env[ií]o|spedizione|lieferung\b|farben|couleurs|tallas|taglie",
    re.IGNORECASE,
)
# Currency of a bare "$" by the page's language region (en-CA, en-AU...); elsewhere "$" is taken as USD.
DOLLAR_BY_REGION = {"ca": "CAD", "au": "AUD", "nz": "NZD", "hk": "HKD", "sg": "SGD", "mx": "MXN", "ar": "ARS"}
_WORDS = re.compile(r"[a-z]+")


@dataclass
class VisibleProduct:
    """The main product as its page shows it; ``None`` fields are what the page does not show."""

    title_element: object | None = None
    title_matches: bool = False  # the title shows the name the structured data gives
    name: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    old_prices: set[Decimal] = field(default_factory=set)
    sku: str | None = None
    codes: list[str] = field(default_factory=list)  # every labelled code shown (SKU, style, model...)
    colour: str | None = None
    availability: str | None = None
    buy_control: bool = False
    # Several buy buttons around the title: a listing with quick-add tiles, not one product.
    listing: bool = False
    gallery: list[list[tuple[str, float]]] = field(default_factory=list)
    guessed: set[str] = field(default_factory=set)  # fields inferred rather than read (less sure)

    def values(self) -> dict:
        found = {
            "name": self.name,
            "price": self.price,
            "currency": self.currency if self.price is not None else None,
            "sku": self.sku,
            "colour": self.colour,
            "availability": self.availability,
        }
        return {key: value for key, value in found.items() if value not in (None, "")}

    @property
    def looks_like_product(self) -> bool:
        """Enough to call a page without structured data a product page: a title, a price and a way to buy it."""
        return bool(self.name and self.price is not None and (self.buy_control or self.sku) and not self.listing)


def _words(element) -> set[str]:
    return set(_WORDS.findall(f"{element.get('class') or ''} {element.get('id') or ''}".lower()))


def _clean(text: str | None) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text).strip().lower()


def _same_name(text: str, names: set[str]) -> bool:
    """The heading shows one of the names (exactly, or with the brand or a colour around it)."""
    heading = _norm(text)

    def shows(name: str) -> bool:
        if name == heading or (len(name) > 3 and name in heading):
            return True
        # The name with the shop's name appended ("linen trousers dune"): most of it is the heading.
        return name.startswith(heading) and len(heading) * 2 >= len(name)

    return bool(heading) and any(shows(name) for name in names)


def main_title(tree, names: list[str] = ()) -> tuple[object | None, bool]:
    """(the page's main title element, whether it shows one of ``names``).

    The ``<h1>`` that shows the product's name, else the first ``<h1>``; a page without any uses the first
    heading or title-like element showing the name or the document title's first part.
    """
    wanted = {_norm(name) for name in names if name}
    headings = [h for h in tree.xpath("//h1") if _clean(h.text_content())]
    for heading in headings:
        if _same_name(heading.text_content(), wanted):
            return heading, True
    if headings:
        return headings[0], False
    document_title = _clean(tree.xpath("string(//title)"))
    if document_title:
        wanted.add(_norm(re.split(r"\s+[|–—-]\s+", document_title)[0]))
    wanted.discard("")
    for element in tree.xpath(
        "//body//h2 | //body//*[@itemprop='name'] | //body//*[contains(@class, 'title')] | "
        "//body//*[contains(@class, 'name')]"
    ):
        text = _clean(element.text_content())
        if text and len(text) <= SHORT_TEXT and _norm(text) in wanted:
            return element, True
    return None, False


def _owner(text_node):
    parent = text_node.getparent()
    return parent.getparent() if text_node.is_tail and parent is not None else parent


def _within(element, stop, test) -> bool:
    """True if ``element`` or an ancestor below ``stop`` passes ``test``."""
    node = element
    while node is not None and node is not stop:
        if test(node):
            return True
        node = node.getparent()
    return False


def _struck_or_old(node) -> bool:
    style = (node.get("style") or "").replace(" ", "")
    return node.tag in STRUCK_TAGS or "line-through" in style or bool(_words(node) & OLD_PRICE_CLASSES)


def _prices(scope) -> list[tuple[Decimal, str | None, bool, bool]]:
    """(amount, currency, old, sale) per price the scope shows, in document order; options and links left out."""
    found = []
    for text_node in scope.xpath(".//text()"):
        owner = _owner(text_node)
        if owner is None or owner.tag in {"script", "style", "option", "noscript"}:
            continue
        if _within(owner, scope, lambda node: node.tag == "select" or (node.tag == "a" and node.get("href"))):
            continue  # a tile linking to another product, or a size menu
        text = str(text_node)
        if NOT_THE_PRICE.search(text):
            continue  # "Free shipping over £50", "or 4 payments of £17.81"
        for match in PRICE_TEXT.finditer(text):
            symbol = match.group("before") or match.group("after")
            number = match.group("n1") or match.group("n2")
            amount, _ = parse_price(number)
            if amount is None or amount == 0:
                continue
            previous = text[: match.start()]
            if not previous.strip():
                sibling = owner.getprevious()
                previous = _clean(sibling.text_content()) if sibling is not None else ""
            old = bool(OLD_PRICE_WORDS.search(previous[-30:])) or _within(owner, scope, _struck_or_old)
            sale = _within(owner, scope, lambda node: bool(_words(node) & SALE_PRICE_CLASSES))
            found.append((amount, _currency(symbol, scope), old, sale))
    return found


def _currency(symbol: str, scope) -> str | None:
    """The ISO code of a price's symbol; a bare "$" by the page's language region (en-CA: CAD), else USD."""
    if symbol == "$":
        region = (scope.getroottree().getroot().get("lang") or "").lower().replace("_", "-").rsplit("-", 1)[-1]
        return DOLLAR_BY_REGION.get(region, "USD")
    return currency_code(symbol)


def _short_texts(scope):
    """Short element texts of the scope (labels, badges, buttons), outer elements first."""
    for element in scope.iter():
        if not isinstance(element.tag, str) or element.tag in {"script", "style", "noscript", "option", "select"}:
            continue
        text = _clean(element.text_content())
        if text and len(text) <= SHORT_TEXT:
            yield element, text


def _buy_controls(scope) -> tuple[int, bool]:
    """(how many buy controls, all of them disabled)."""
    controls = []
    for element in scope.iter("button", "input", "a"):
        label = _clean(element.text_content()) or element.get("value") or element.get("title") or ""
        name = (element.get("name") or "").lower()
        if BUY_CONTROL.search(label) or name in {"add", "add-to-cart", "addtocart"}:
            controls.append(element)
    for form in scope.iter("form"):
        if CART_ACTION.search(form.get("action") or "") and form.xpath(".//button | .//input[@type='submit']"):
            controls.extend(form.xpath(".//button | .//input[@type='submit']"))
    controls = list(dict.fromkeys(controls))
    disabled = bool(controls) and all(
        c.get("disabled") is not None or c.get("aria-disabled") == "true" for c in controls
    )
    return len(controls), disabled


def _labelled_codes(scope) -> list[str]:
    """Every labelled product code of the scope, in page order, each once."""
    codes: list[str] = []
    for _element, text in _short_texts(scope):
        for match in CODE_LABEL.finditer(text):
            code = match.group("code").rstrip("./-_")
            # "Style: 2-in-1" is prose, not a code: codes have no lower-case words in them.
            prose = any(re.fullmatch(r"[a-z]{2,}", word) for word in re.split(r"[./\-_]", code))
            if any(c.isdigit() for c in code) and len(code) >= 3 and not prose and code not in codes:
                codes.append(code)
    return codes


def _colour(scope) -> str | None:
    for _element, text in _short_texts(scope):
        match = COLOUR_LABEL.match(text)
        if match and not is_placeholder(match.group("value")):
            return match.group("value").strip()
    return None


def _availability(scope) -> str | None:
    for element, text in _short_texts(scope):
        if element.tag in {"label", "button", "a"} or any(
            a.tag in {"label", "select"} for a in element.iterancestors()
        ):
            continue
        if len(text) > 60 or re.search(r"\([^)]*\)", text) and not re.sub(r"\([^)]*\)", "", text).strip():
            continue
        if NOT_STOCK_TEXT.search(text):
            continue  # "Free delivery available", "Available in 3 colours": about something else
        state = normalize_availability(re.sub(r"\([^)]*\)", "", text))
        if state:
            return state
    return None


def _product_block(title):
    """The nearest ancestor of the title that shows a price (the product's own information block)."""
    node = title
    for _ in range(MAX_TITLE_CLIMB):
        parent = node.getparent()
        if parent is None or (parent.tag in {"body", "html"} and node is not title):
            break  # the whole page: its prices are not all this product's (unless the title sits right in it)
        node = parent
        if any(not old for _, _, old, _ in _prices(node)):
            return node
    return None


def read_visible(tree, base: str, page_url: str, *, names: list[str] = (), rendered_sizes=None) -> VisibleProduct:
    """The main product as the page shows it (see the module's docstring)."""
    visible = VisibleProduct()
    title, visible.title_matches = main_title(tree, names)
    if title is None:
        return visible
    visible.title_element = title
    name = _clean(title.text_content())
    visible.name = None if is_placeholder(name) else name
    block = _product_block(title)
    if block is None:
        return visible
    prices = _prices(block)
    current = [p for p in prices if not p[2]]
    chosen = next((p for p in current if p[3]), None) or (current[0] if current else None)
    if chosen:
        visible.price, visible.currency = chosen[0], chosen[1]
        if visible.currency is None:
            visible.currency = next((p[1] for p in prices if p[1]), None)
    visible.old_prices = {p[0] for p in prices if p[2]}
    visible.codes = _labelled_codes(block)
    visible.sku = visible.codes[0] if visible.codes else None
    visible.colour = _colour(block)
    controls, disabled = _buy_controls(block)
    visible.buy_control, visible.listing = controls > 0, controls >= LISTING_BUY_CONTROLS
    visible.availability = _availability(block)
    if visible.availability is None and controls:
        # No stock text: a buy button that works says it can be bought, a disabled one that it cannot.
        visible.availability = "out_of_stock" if disabled else "in_stock"
        visible.guessed.add("availability")
    photos = dom_image_elements(tree, base, rendered_sizes=rendered_sizes, page_url=page_url)
    section = block
    for _ in range(MAX_SECTION_CLIMB):
        inside = [urls for img, urls in photos if section in img.iterancestors()]
        if inside:
            visible.gallery = inside
            break
        if section.getparent() is None:
            break
        section = section.getparent()
    return visible
