"""Prices as shops write them ("7,95 EUR", "$2.449", "1.299,00 €") turned into Decimal + ISO 4217 code."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from price_parser import Price

# Symbols price-parser returns, mapped to ISO codes. "$" alone is ambiguous; the page's own currency
# (priceCurrency, product:price:currency) wins over this guess.
CURRENCY_SYMBOLS = {
    "€": "EUR",
    "$": "USD",
    "us$": "USD",
    "£": "GBP",
    "¥": "JPY",
    "円": "JPY",
    "zł": "PLN",
    "₹": "INR",
    "₽": "RUB",
    "₩": "KRW",
    "₺": "TRY",
    "r$": "BRL",
    "a$": "AUD",
    "au$": "AUD",
    "c$": "CAD",
    "ca$": "CAD",
    "hk$": "HKD",
    "nz$": "NZD",
    "kč": "CZK",
    "ft": "HUF",
    "lei": "RON",
    "fr.": "CHF",
}
# A machine-readable number as schema.org asks for it: dot decimal, at most two decimals.
_PLAIN_NUMBER = re.compile(r"^\d+(?:\.\d{1,2})?$")


def currency_code(raw: str | None) -> str | None:
    """ISO 4217 code for a code or symbol, or None when it is unknown or ambiguous."""
    if not raw:
        return None
    value = raw.strip()
    if len(value) == 3 and value.isalpha():
        return value.upper()
    return CURRENCY_SYMBOLS.get(re.sub(r"\s+", "", value.lower()))


def parse_price(value, *, currency_hint: str | None = None) -> tuple[Decimal | None, str | None]:
    """(amount, currency) of a structured or visible price; (None, None) when there is no number in it.

    Numbers and plain "12.50" strings are taken as written; everything else goes through price-parser,
    which knows thousands and decimal separators of the common locales.
    """
    if value is None or isinstance(value, bool):
        return None, currency_code(currency_hint)
    if isinstance(value, int | float | Decimal):
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            return None, currency_code(currency_hint)
        return (amount if amount.is_finite() and amount >= 0 else None), currency_code(currency_hint)
    text = str(value).strip()
    if _PLAIN_NUMBER.match(text):
        return Decimal(text), currency_code(currency_hint)
    parsed = Price.fromstring(text)
    amount = parsed.amount
    if amount is not None and (not amount.is_finite() or amount < 0):
        amount = None
    hinted = currency_code(currency_hint)
    found = currency_code(parsed.currency)
    # A stated code (priceCurrency) beats a symbol; a symbol beats nothing.
    return amount, hinted or found
