"""Small text rules shared by the extractors: availability words, entities, template placeholders, size suffixes.

Kept apart from ``extract.py`` so that the structured-data, payload and visible-page readers use one set.
"""

from __future__ import annotations

import html
import re

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
# Phrases of shop pages, any language we know; out-of-stock ones are checked first ("nicht lieferbar").
OUT_OF_STOCK_PHRASES = (
    "out of stock",
    "sold out",
    "currently unavailable",
    "no longer available",
    "not available",
    "ausverkauft",
    "nicht lieferbar",
    "nicht verfügbar",
    "nicht auf lager",
    "vergriffen",
    "épuisé",
    "epuisé",
    "rupture de stock",
    "indisponible",
    "agotado",
    "sin stock",
    "no disponible",
    "esaurito",
    "non disponibile",
    "uitverkocht",
    "niet op voorraad",
    "slutsåld",
    "utsolgt",
    "udsolgt",
    "wyprzedane",
    "niedostępny",
    "esgotado",
    "在庫切れ",
    "notify me",
    "email me when",
    "benachrichtigen",
    "m'avertir",
    "avísame",
)
IN_STOCK_PHRASES = (
    "in stock",
    "available",
    "last one",
    "only 1 left",
    "ready to ship",
    "auf lager",
    "lieferbar",
    "verfügbar",
    "vorrätig",
    "en stock",
    "disponible",
    "en existencia",
    "disponibile",
    "op voorraad",
    "i lager",
    "på lager",
    "dostępny",
    "em estoque",
    "在庫あり",
)
_ONLY_LEFT = re.compile(r"\bonly \d+ left\b|\b\d+ (?:left|available)\b|\bmore than \d+ available\b")
# Values a page template failed to fill in: $metabrand, ${color}, {{ product.title }}, %BRAND%, [[name]].
_PLACEHOLDER = re.compile(
    r"^(?:\$[A-Za-z_][\w.]*|\$\{[^}]*\}|\{\{.*\}\}|\{%.*%\}|%[A-Za-z_]+%|\[\[.*\]\]|<%.*%>|#\{.*\}|__[A-Z_]+__|"
    r"undefined|null|none|n/a)$",
    re.IGNORECASE,
)
_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-f]+|[a-z][a-z0-9]{1,31});", re.IGNORECASE)
SIZE_TOKEN = r"(?:[2-6]?X{0,3}S|[2-6]?X{0,3}L|M|\d{1,3}(?:[.,]5)?|OS|ONE ?SIZE|TU|\d{2}/\d{2}|W\d{2}\s?L\d{2})"
_SIZE_WORDS = r"(?:size|gr(?:ö|oe)(?:ss|ß)e|gr\.|taille|talla|taglia|maat|storlek|rozmiar|tamanho)"
_LETTER_SIZE = r"(?:[2-6]?X{0,3}S|[2-6]?X{0,3}L|M|OS|ONE ?SIZE)"
_SIZE_SUFFIX = re.compile(
    rf"^(?P<base>.{{3,}}?)\s*(?:(?:[-–—/|,]|\()\s*{_SIZE_WORDS}\s*:?\s*{SIZE_TOKEN}\)?|\s[-–—/|]\s*{_LETTER_SIZE})\s*$",
    re.IGNORECASE,
)


def normalize_availability(value) -> str | None:
    """``in_stock`` / ``out_of_stock`` from schema.org URLs, OpenGraph words or shop text; None if unsure."""
    text = value if isinstance(value, str) else (None if value is None else str(value))
    if not text or not text.strip():
        return None
    text = re.sub(r"\s+", " ", text).strip()
    tail = text
    for separator in ("#", "/", ":"):
        if separator in tail:
            tail = tail.rsplit(separator, 1)[1]
    word = re.sub(r"[^a-z]", "", tail.lower())
    if word in IN_STOCK:
        return "in_stock"
    if word in OUT_OF_STOCK:
        return "out_of_stock"
    lowered = text.lower()
    if any(phrase in lowered for phrase in OUT_OF_STOCK_PHRASES):
        return "out_of_stock"
    if any(phrase in lowered for phrase in IN_STOCK_PHRASES) or _ONLY_LEFT.search(lowered):
        return "in_stock"
    return None


def unescape(text: str) -> str:
    """Entities a shop escaped once too often (``&amp;amp;``, ``&iacute;`` inside JSON) decoded."""
    for _ in range(3):
        if not _ENTITY.search(text):
            break
        text = html.unescape(text)
    return text


def is_placeholder(text: str) -> bool:
    """True for a template variable the shop left unfilled (``$metabrand``, ``{{ title }}``)."""
    return bool(_PLACEHOLDER.match(text.strip()))


def without_size_suffix(name: str, sizes: set[str] = frozenset()) -> str:
    """A variant's name without the size it adds ("Merino crew - M", "Jeans, Size 32" -> the product's name).

    ``sizes`` are the sizes the variants declare; a suffix equal to one of them is stripped after any separator.
    """
    for size in sorted(sizes, key=len, reverse=True):
        if not size:
            continue
        match = re.match(
            rf"^(?P<base>.{{3,}}?)\s*(?:[-–—/|,(]\s*)(?:{_SIZE_WORDS}\s*:?\s*)?{re.escape(size)}\)?\s*$", name, re.I
        )
        if match:
            return match.group("base").strip()
    match = _SIZE_SUFFIX.match(name)
    return match.group("base").strip() if match else name
