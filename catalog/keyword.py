"""Keyword ranking of products: PostgreSQL full-text search, typo correction and substring matches, all served
by indexes the database keeps current (migration 0003).

Matching is accent-folded and language-neutral (``lookalike_keywords``: ``simple`` + ``unaccent``):

1. The query's words become lexemes exactly as the products' were (same configuration). A word no product
   uses is a typo candidate: it is replaced by its nearest known word when one is close enough (trigram
   similarity over ``catalog_searchword``, the lexicon, not over every product), else dropped, since
   requiring a word no product has would only ever find nothing. A few common short words of the catalog's
   languages ("a", "in", "de", "mit", ...) are not required either.
2. A product matches when its document holds all the words, or all but one, or when its short fields
   contain the typed text (SKU fragments such as "RSD-104"), or its SKU or name is the text.
   "All but one", and substrings of text made of known words, are only tried when too few products hold
   every word (the broad, costly matches). Each kind of match ranks at most ``CANDIDATES`` products, name
   matches first (migration 0004), so a word in thousands of products costs as much as one in a thousand.
3. Score (0..1): exact SKU or name 1.0; all words 0.6 + 0.4 x cover-density rank; all but one 0.3 + 0.3 x
   rank; containment 0.5 to 0.9 (how much of the fields the text covers).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection

from catalog.models import Product
from catalog.vocabulary import ProductFilters

MAX_QUERY_CHARS = 300
MAX_WORDS = 8  # "all but one" is an OR of one AND per word: bounded
CONFIG = "lookalike_keywords"
TYPO_SIMILARITY = 0.4  # pg_trgm similarity a correction needs ("sattin" ~ "satin" 0.62, "dres" ~ "dress" 0.57)
MIN_TYPO_LENGTH = 4
# Not required in a query (still matched when present): short function words of en, fr, de, es, it.
OPTIONAL_WORDS = frozenset(
    {
        *("a", "an", "the", "in", "on", "of", "for", "with", "and", "or", "to", "by"),
        *("le", "la", "les", "un", "une", "des", "de", "du", "en", "et", "pour", "avec", "au", "aux"),
        *("der", "die", "das", "ein", "eine", "und", "mit", "im", "fur", "von"),
        *("el", "los", "las", "una", "y", "con", "del", "para"),
        *("il", "lo", "gli", "i", "di", "da", "e", "per"),
    }
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LIKE_SPECIAL = re.compile(r"([\\%_])")
_CODE_LIKE = re.compile(r"\d|\w[^\w\s]+\w")  # a digit, or a symbol inside a token: "RSD-104", "1042"


@dataclass(frozen=True)
class KeywordHit:
    product_id: int
    score: float


def clean_query(text: str | None) -> str:
    """What is safe to hand to PostgreSQL: NFC, no control characters (NUL is refused by the server), trimmed."""
    text = unicodedata.normalize("NFC", text or "")
    return " ".join(_CONTROL.sub(" ", text).split())[:MAX_QUERY_CHARS]


def has_words(text: str) -> bool:
    """Whether ``text`` holds anything searchable (letters or digits), e.g. not only punctuation."""
    return any(char.isalnum() for char in text)


def _lexeme(word: str) -> str:
    """A tsquery operand for an exact lexeme (quoted: no parsing, no operators)."""
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def _query_terms(text: str) -> tuple[list[str], bool]:
    """One tsquery term per required word of ``text``: the lexeme, or ``(typo | correction)``; unknown words
    with no close correction are left out (see the module docstring), and the flag says whether any was."""
    sql = f"""
        WITH words AS (
            SELECT DISTINCT unnest(tsvector_to_array(to_tsvector('{CONFIG}', %s))) AS word
        )
        SELECT w.word, known.word IS NOT NULL,
               CASE WHEN known.word IS NULL AND w.word ~ '^[0-9]+$' THEN (
                   -- "1042" typed, "-1042" indexed: the parser reads "RSD-1042-RED" as rsd, -1042, red
                   SELECT s.word FROM catalog_searchword s WHERE s.word = '-' || w.word
               ) WHEN known.word IS NULL AND length(w.word) >= %s AND w.word !~ '[0-9]' THEN (
                   SELECT s.word FROM catalog_searchword s  -- words only, as the partial index (0004)
                   WHERE s.word !~ '[0-9]' AND similarity(s.word, w.word) >= %s
                   ORDER BY s.word <-> w.word, s.word LIMIT 1
               ) END
        FROM words w LEFT JOIN catalog_searchword known ON known.word = w.word
        ORDER BY w.word
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [text, MIN_TYPO_LENGTH, TYPO_SIMILARITY])
        rows = cursor.fetchall()
    terms, optional, left_out = [], [], False
    for word, known, correction in rows:
        if known:
            (optional if word in OPTIONAL_WORDS else terms).append(_lexeme(word))
        elif correction:
            terms.append(f"({_lexeme(word)} | {_lexeme(correction)})")
        else:
            left_out = True
    return (terms or optional)[:MAX_WORDS], left_out


def _all_and_relaxed(terms: list[str]) -> tuple[str, str]:
    """tsquery texts for "all words" and "all words but one" (empty when there is nothing to match)."""
    if not terms:
        return "", ""
    every = " & ".join(terms)
    if len(terms) == 1:
        return every, every
    relaxed = " | ".join("(" + " & ".join(terms[:i] + terms[i + 1 :]) + ")" for i in range(len(terms)))
    return every, relaxed


def _filter_sql(filters: ProductFilters | None) -> tuple[str, list]:
    """The product filters as SQL over ``p`` (the same lookups as ``ProductFilters.apply``, made by the ORM)."""
    if filters is None or filters == ProductFilters():
        return "", []
    ids = filters.apply(Product.objects.all()).order_by().values("pk")
    sql, params = ids.query.sql_with_params()
    return f" AND p.id IN ({sql})", list(params)


# Products ranked at most per kind of match: a common word ("dress", "black") matches thousands of products and
# ranking them all was most of a query's time at 100k products (bench/text_search.py).
CANDIDATES = 500
# The full-text vector of the name, SKU and brand (search_document's weight A), exactly as its index (0004) has it.
_NAME_DOCUMENT = f"to_tsvector('{CONFIG}'::regconfig, p.name || ' ' || p.sku || ' ' || p.brand)"

# One CASE over the candidates, evaluated in order, so each row pays for one rank at most. The candidates are an
# array (computed first, then fetched by primary key): as a join, the planner misjudged their number and hashed
# the whole table.
_RANKED = """
    SELECT p.id, CASE
        WHEN p.id = ANY(q.exact_sku) THEN 1.0
        WHEN p.search_document @@ q.every THEN CASE
            WHEN lower(lookalike_unaccent(p.name)) = q.folded THEN 1.0
            ELSE 0.6 + 0.4 * ts_rank_cd(p.search_document, q.every, 32) END
        WHEN p.search_document @@ q.relaxed THEN 0.3 + 0.3 * ts_rank_cd(p.search_document, q.relaxed, 32)
        WHEN q.substring AND p.search_text LIKE q.pattern ESCAPE '\\'
            THEN LEAST(0.9, GREATEST(0.5, 0.9 * length(q.folded) / GREATEST(length(p.search_text), 1)))
        ELSE 0 END AS score
    FROM catalog_product p, (
        SELECT every, relaxed, folded, pattern, substring, ARRAY(
            SELECT id FROM catalog_product WHERE sku <> '' AND lower(lookalike_unaccent(sku)) = folded
        ) AS exact_sku
        FROM (
            SELECT %s::tsquery AS every, %s::tsquery AS relaxed, lower(lookalike_unaccent(%s)) AS folded,
                   lower(lookalike_unaccent(%s)) AS pattern, %s AS substring
        ) typed
    ) q
    WHERE p.id = ANY(ARRAY({candidates}))
"""


def _candidates(every: str, relaxed: str, text: str, pattern: str, substring: bool, where: str, params: list):
    """SQL (a UNION) and its parameters for the products worth ranking, each branch served by an index and
    capped at ``CANDIDATES``: name/SKU/brand matches first (so a capped common word keeps the products it
    names), then whole-document matches, "all but one" matches, substrings; exact SKUs and names uncapped."""
    branches: list[tuple[str, list]] = []
    if every:
        branches.append((f"{_NAME_DOCUMENT} @@ %s::tsquery", [every]))
        branches.append(("p.search_document @@ %s::tsquery", [every]))
    if relaxed and relaxed != every:
        branches.append(("p.search_document @@ %s::tsquery", [relaxed]))
    if substring:
        branches.append(("p.search_text LIKE lower(lookalike_unaccent(%s)) ESCAPE '\\'", [pattern]))
    capped = len(branches)
    branches.append(("p.sku <> '' AND lower(lookalike_unaccent(p.sku)) = lower(lookalike_unaccent(%s))", [text]))
    branches.append(("lower(lookalike_unaccent(p.name)) = lower(lookalike_unaccent(%s))", [text]))
    sql, all_params = [], []
    for position, (condition, condition_params) in enumerate(branches):
        limit = f" LIMIT {CANDIDATES}" if position < capped else ""
        sql.append(f"(SELECT p.id FROM catalog_product p WHERE {condition}{where}{limit})")
        all_params += condition_params + params
    return " UNION ".join(sql), all_params


def keyword_ranking(
    text: str,
    *,
    exclude: str = "",
    limit: int = 50,
    filters: ProductFilters | None = None,
    among_product_ids: Iterable[int] | None = None,
    relax_below: int | None = None,
) -> list[KeywordHit]:
    """Products matching ``text`` and none of the words of ``exclude``, best first (ties by id);
    ``among_product_ids`` restricts the candidates (e.g. to a photo search's results). "All words but one"
    is tried when fewer than ``relax_below`` (default ``limit``) products hold every word. Empty for text with
    nothing searchable."""
    text = clean_query(text)
    if not has_words(text):
        return []
    terms, left_out = _query_terms(text)
    every, relaxed = _all_and_relaxed(terms)
    # Substrings (three characters or more: shorter ones cannot use the trigram index) of text that words alone
    # may miss: codes ("RSD-104", "1042") or a word no product has. For plain known words the trigram scan was
    # the costliest part of the query (8-10 ms for "red satin midi dress" at 100k products) and found nothing new.
    substring = len(text) >= 3 and (left_out or not every or bool(_CODE_LIKE.search(text)))
    options = {"limit": limit, "filters": filters, "exclude": exclude, "among": among_product_ids}
    hits = _ranked(text, every, every, substring=substring, **options)
    if len(hits) < (limit if relax_below is None else relax_below) and (relaxed != every or not substring):
        # Too few: let one word be missing and look for substrings too (the broader, costlier match).
        hits = _ranked(text, every, relaxed, substring=len(text) >= 3, **options)
    return hits


def _ranked(text, every, relaxed, *, substring, limit, filters, exclude, among) -> list[KeywordHit]:
    pattern = "%" + _LIKE_SPECIAL.sub(r"\\\1", text.lower()) + "%"
    where, params = _filter_sql(filters)
    exclude = clean_query(exclude)
    if has_words(exclude):
        where += f" AND NOT p.search_document @@ replace(plainto_tsquery('{CONFIG}', %s)::text, ' & ', ' | ')::tsquery"
        params.append(exclude)
    if among is not None:
        ids = [int(pk) for pk in among]
        if not ids:
            return []
        where += " AND p.id = ANY(%s)"
        params.append(ids)
    candidates, candidate_params = _candidates(every, relaxed, text, pattern, substring, where, params)
    sql = _RANKED.format(candidates=candidates) + " ORDER BY score DESC, p.id LIMIT %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [every or "", relaxed or "", text, pattern, substring, *candidate_params, int(limit)])
        rows = cursor.fetchall()
    return [KeywordHit(product_id=pk, score=round(float(score), 4)) for pk, score in rows]
