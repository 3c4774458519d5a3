"""Search use-cases: by photo (optionally refined by words), by text, more like this, near-duplicates.

A query goes through exactly the pipeline that indexed the catalog (same preprocessing, same model), then
PostgreSQL orders garments of the current embedder's space by cosine distance. Results are products:
each product once, represented by its best-matching garment.

Similarity shown to people is ``100 * cosine similarity``, clamped to 0..100 (cosine similarity is
``1 - cosine distance``; L2-normalised vectors make it the dot product). 100% means the same vector.

Text search works in every profile. Keyword ranking (``catalog.keyword``: full-text + trigram in PostgreSQL)
always runs; when the embedder has a text tower its text->photo nearest products are fused with the keyword
ranks by reciprocal rank fusion, an exact SKU or name hit first. A product found by its words alone shows
its keyword score as "% similar" (and ``distance`` None). The text tower encodes in a thread while the keyword
SQL runs, so a hybrid query waits for the slower of the two, not their sum; the pipeline remembers the vectors
of recent texts (``search.pipeline.runner.TextVectorCache``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
from django.db import connection

from catalog import keyword
from catalog import selectors as catalog_selectors
from catalog.models import EmbeddingSpace, Garment, Product
from catalog.vocabulary import ProductFilters
from core.errors import DomainError
from core.photos import load_image
from search import selectors
from search.pipeline import registry
from search.pipeline.base import Box, PipelineError, UnsupportedOperation
from search.pipeline.registry import get_pipeline
from search.selectors import GarmentHit

__all__ = [
    "DetectedGarment",
    "ImageSearchResult",
    "ProductMatch",
    "QueryError",
    "Refinement",
    "near_duplicate_products",
    "reciprocal_rank_fusion",
    "search_by_image",
    "search_by_text",
    "similar_to_product",
    "similarity_percent",
    "split_negations",
    "text_tower_available",
]

# Reciprocal rank fusion (Cormack et al. 2009): score = sum over rankings of weight / (RRF_K + rank).
RRF_K = 60
FUSION_CANDIDATES = 50  # products taken from each ranking before fusing
EXACT_HIT_BONUS = 1.0  # an exact SKU/name hit outranks any fused score (each term is at most 1/61)
DEFAULT_TEXT_WEIGHT = 0.5
DEFAULT_NOT_WEIGHT = 0.5
# Text-tower passes beside the request thread's keyword SQL; the pipeline's lock still runs one pass at a time.
_TEXT_TOWER_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="text-tower")
_NEGATION = re.compile(
    r"(?:^|(?<=[\s,;]))(?:-(?P<word>\w[\w'-]*)|(?:not|without|no)\s+(?P<phrase>[^,;]+?)(?=$|[,;]|\s+(?:and|but)\b))",
    re.I,
)


class QueryError(DomainError):
    """A query that cannot be answered as asked; the message says why and what to do."""

    code = "invalid_query"


def similarity_percent(distance: float) -> float:
    """Cosine distance -> "% similar" shown to people (see the module docstring)."""
    return round(max(0.0, min(1.0, 1.0 - distance)) * 100.0, 1)


@dataclass(frozen=True)
class ProductMatch:
    product: Product
    garment: Garment
    distance: float | None  # None: found by its words alone, no vector compared
    keyword_score: float | None = None  # 0..1 from catalog.keyword, None when the words did not match
    matched_by: tuple[str, ...] = ("vector",)

    @property
    def image(self):
        return self.garment.image

    @property
    def similarity(self) -> float:
        if self.distance is None:
            return round(100.0 * (self.keyword_score or 0.0), 1)
        return similarity_percent(self.distance)


@dataclass(frozen=True)
class DetectedGarment:
    """A garment found in the query photo, in the photo's own pixel coordinates."""

    index: int
    label: str
    box: tuple[int, int, int, int]
    score: float | None

    @property
    def area(self) -> int:
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)


@dataclass(frozen=True)
class Refinement:
    """Words that refine a photo search, and how they were applied ("vector" or "keyword")."""

    text: str = ""
    not_text: str = ""
    mode: str = ""

    def __bool__(self) -> bool:
        return bool(self.text or self.not_text)


@dataclass
class ImageSearchResult:
    matches: list[ProductMatch]
    garments: list[DetectedGarment] = field(default_factory=list)
    chosen: int = 0
    whole_image: bool = False
    image_size: tuple[int, int] = (0, 0)
    notice: str = ""
    refinement: Refinement = field(default_factory=Refinement)


def current_space() -> EmbeddingSpace | None:
    """The space of the configured embedder, or None when nothing was indexed with it yet."""
    pipeline = get_pipeline()
    return EmbeddingSpace.objects.filter(model_id=pipeline.embedder_id).first()


def default_garment(areas: Sequence[float]) -> int:
    """The garment a photo search searches when none is chosen: the largest box, the first of equal ones
    (``manage.py evaluate`` uses the same rule)."""
    return max(range(len(areas)), key=lambda i: (areas[i], -i))


def text_tower_available() -> bool:
    """Whether the configured embedder has a text tower, without building the pipeline (a page view must
    not load a model to choose its wording)."""
    return registry.embedder_supports_text()


def split_negations(text: str) -> tuple[str, str]:
    """ "like this in red, not denim" -> ("like this in red", "denim"): words after "not", "without", "no" or a
    leading "-" are what the shopper does not want."""
    negative = [(match.group("word") or match.group("phrase")).strip() for match in _NEGATION.finditer(text)]
    positive = _NEGATION.sub(" ", text)
    return " ".join(positive.replace(",", " ").split()), " ".join(negative)


def _text_vectors(texts: Sequence[str], pipeline=None) -> np.ndarray | None:
    """(n, dim) text vectors, or None when the embedder has no text tower."""
    try:
        return (pipeline or get_pipeline()).embed_text(list(texts))
    except UnsupportedOperation:
        return None


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _check_text(text: str | None, *, required: bool) -> str:
    raw = (text or "").strip()
    if len(raw) > keyword.MAX_QUERY_CHARS:
        raise QueryError(f"the search text is longer than {keyword.MAX_QUERY_CHARS} characters")
    cleaned = keyword.clean_query(raw)
    if required and not cleaned:
        raise QueryError("type a few words to search for")
    return cleaned


def _keyword_only_matches(hits: Sequence[keyword.KeywordHit], space: EmbeddingSpace | None) -> list[ProductMatch]:
    garments = catalog_selectors.representative_garments([hit.product_id for hit in hits], space=space)
    products = Product.objects.in_bulk(list(garments))
    return [
        ProductMatch(
            product=products[hit.product_id],
            garment=garments[hit.product_id],
            distance=None,
            keyword_score=hit.score,
            matched_by=("keyword",),
        )
        for hit in hits
        if hit.product_id in garments and hit.product_id in products
    ]


def reciprocal_rank_fusion(rankings: dict[str, Sequence[int]], *, weights: dict[str, float] | None = None):
    """Product ids ranked by ``sum(weight / (RRF_K + rank))`` over the rankings (rank from 1), ties by id."""
    scores: dict[int, float] = {}
    for name, ranking in rankings.items():
        weight = (weights or {}).get(name, 1.0)
        for rank, product_id in enumerate(ranking, start=1):
            scores[product_id] = scores.get(product_id, 0.0) + weight / (RRF_K + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _hybrid(
    keyword_hits: list[keyword.KeywordHit], vector, space: EmbeddingSpace, *, k: int, filters
) -> list[ProductMatch]:
    vector_hits = selectors.nearest_products(space, vector, k=max(k, FUSION_CANDIDATES), filters=filters)
    by_keyword = {hit.product_id: hit for hit in keyword_hits}
    by_vector = {hit.product_id: hit for hit in vector_hits}
    fused = reciprocal_rank_fusion({"keyword": list(by_keyword), "vector": list(by_vector)})
    exact = {pid for pid, hit in by_keyword.items() if hit.score >= 1.0}
    ranked = sorted(fused, key=lambda item: (-(item[1] + (EXACT_HIT_BONUS if item[0] in exact else 0)), item[0]))
    chosen = [pid for pid, _ in ranked[:k]]
    missing = [pid for pid in chosen if pid not in by_vector]
    by_vector.update(selectors.best_garments_of_products(space, vector, missing))
    hits = [by_vector[pid] for pid in chosen if pid in by_vector]
    vector_ids = _ids(vector_hits)
    return [
        replace(
            match,
            keyword_score=by_keyword[match.product.pk].score if match.product.pk in by_keyword else None,
            matched_by=tuple(
                name
                for name, ids in (("keyword", by_keyword.keys()), ("vector", vector_ids))
                if match.product.pk in ids
            ),
        )
        for match in _matches(hits)
    ]


def _ids(hits: Sequence[GarmentHit]) -> set[int]:
    return {hit.product_id for hit in hits}


def _matches(hits: Sequence[GarmentHit]) -> list[ProductMatch]:
    """Hydrate hits with two queries (products, garments+images), keeping the hits' order; garments without their
    vectors (parsing 12 vectors of 512 floats cost ~1.7 ms of a hybrid query at 100k products)."""
    products = Product.objects.in_bulk([hit.product_id for hit in hits])
    garments = catalog_selectors.garments_for_display().select_related("image").in_bulk([h.garment_id for h in hits])
    return [
        ProductMatch(product=products[hit.product_id], garment=garments[hit.garment_id], distance=hit.distance)
        for hit in hits
        if hit.product_id in products and hit.garment_id in garments
    ]


def _nearest(vector, *, k: int, filters: ProductFilters | None) -> list[ProductMatch]:
    space = current_space()
    if space is None:
        return []
    return _matches(selectors.nearest_products(space, vector, k=k, filters=filters))


def search_by_image(
    content: bytes,
    *,
    k: int = 12,
    garment_index: int | None = None,
    box: tuple[float, float, float, float] | None = None,
    filters: ProductFilters | None = None,
    text: str = "",
    text_weight: float = DEFAULT_TEXT_WEIGHT,
    not_text: str = "",
    not_weight: float = DEFAULT_NOT_WEIGHT,
) -> ImageSearchResult:
    """Find products like the garment in a photo, optionally refined by words ("in red", "not denim").

    All garments found are returned with their boxes; the one searched is ``garment_index`` (default: the
    largest), or the region ``box`` if given. With no garment found, the whole photo is searched and the
    result says so. Raises PhotoError for a file that is not a usable image.

    Words refine the photo: with a text tower the query vector is ``photo + text_weight * text - not_weight *
    not_text`` (normalised; a negative ``text_weight`` also pushes away); without one, the photo's neighbours
    that match the words come first and those matching ``not_text`` are dropped (a keyword boost and filter).
    """
    text = _check_text(text, required=False)
    not_text = _check_text(not_text, required=False)
    if text:
        text, negated = split_negations(text)
        not_text = " ".join(part for part in (not_text, negated) if part)
    refine = Refinement(
        text=text if keyword.has_words(text) else "", not_text=not_text if keyword.has_words(not_text) else ""
    )
    pipeline = get_pipeline()
    photo = load_image(content, max_side=pipeline.max_side)
    if box is not None:
        region = Box(*map(float, box), label="selection").clamped(photo.width, photo.height)
        if region.area <= 0:
            raise QueryError("the selected box is empty or outside the photo")
        results = pipeline.process_boxes(photo, [region])
    else:
        results = pipeline.process_image(photo)
    garments = [
        DetectedGarment(index=i, label=r.box.label, box=r.box.pixel_bounds(), score=r.box.score)
        for i, r in enumerate(results)
    ]
    if garment_index is None:
        chosen = default_garment([garment.area for garment in garments])
    elif 0 <= garment_index < len(garments):
        chosen = garment_index
    else:
        raise QueryError(f"garment {garment_index} does not exist; the photo has {len(garments)} garment(s)")
    whole = bool(results) and results[0].whole_image_fallback
    notice = "No garment was found in the photo, so the whole photo was searched." if whole else ""
    photo_vector = results[chosen].embedding
    if refine:
        matches, refine = _refined(photo_vector, refine, k=k, filters=filters, weights=(text_weight, not_weight))
    else:
        matches = _nearest(photo_vector.tolist(), k=k, filters=filters)
    if not matches and current_space() is None:
        notice = "The catalog has not been indexed with the current model yet."
    return ImageSearchResult(
        matches=matches,
        garments=garments,
        chosen=chosen,
        whole_image=whole,
        image_size=(photo.width, photo.height),
        notice=notice,
        refinement=refine,
    )


def _refined(photo_vector: np.ndarray, refine: Refinement, *, k: int, filters, weights: tuple[float, float]):
    """Photo + words: a weighted vector combination with a text tower, a keyword boost/filter without one."""
    text_weight, not_weight = weights
    texts = [t for t in (refine.text, refine.not_text) if t]
    vectors = _text_vectors(texts)
    if vectors is not None:
        combined = np.asarray(photo_vector, dtype=np.float32).copy()
        position = 0
        if refine.text:
            combined += text_weight * vectors[position]
            position += 1
        if refine.not_text:
            combined -= not_weight * vectors[position]
        return _nearest(_unit(combined).tolist(), k=k, filters=filters), replace(refine, mode="vector")
    neighbours = _nearest(photo_vector.tolist(), k=max(k * 4, 48), filters=filters)
    ids = [match.product.pk for match in neighbours]
    wanted = (
        {h.product_id: h.score for h in keyword.keyword_ranking(refine.text, limit=len(ids), among_product_ids=ids)}
        if refine.text
        else {}
    )
    unwanted = (
        {h.product_id for h in keyword.keyword_ranking(refine.not_text, limit=len(ids), among_product_ids=ids)}
        if refine.not_text
        else set()
    )
    kept = [match for match in neighbours if match.product.pk not in unwanted]
    boosted = sorted(kept, key=lambda match: match.product.pk not in wanted)  # stable: photo order within groups
    matches = [
        replace(
            match,
            keyword_score=wanted.get(match.product.pk),
            matched_by=("vector", "keyword") if match.product.pk in wanted else ("vector",),
        )
        for match in boosted[:k]
    ]
    return matches, replace(refine, mode="keyword")


def search_by_text(text: str, *, k: int = 12, filters: ProductFilters | None = None) -> list[ProductMatch]:
    """Products matching a description: keyword ranking in every profile, fused with the text->photo vector
    ranking when the embedder has a text tower. Text with nothing searchable (only punctuation) finds nothing."""
    text = _check_text(text, required=True)
    if not keyword.has_words(text):
        return []
    positive, negative = split_negations(text)
    space, pending = _start_text_vectors([positive or text, *([negative] if negative else [])])
    keyword_hits = (
        keyword.keyword_ranking(
            positive, exclude=negative, limit=max(k, FUSION_CANDIDATES), relax_below=k, filters=filters
        )
        if keyword.has_words(positive)
        else []
    )
    vectors = pending.result() if pending is not None else None
    if vectors is None or space is None:
        return _keyword_only_matches(keyword_hits[:k], space)
    vector = _unit(vectors[0] - DEFAULT_NOT_WEIGHT * vectors[1]) if negative else vectors[0]
    return _hybrid(keyword_hits, vector.tolist(), space, k=k, filters=filters)


def _start_text_vectors(texts: Sequence[str]) -> tuple[EmbeddingSpace | None, Future | None]:
    """The current space, and a future of the texts' vectors computed in a thread (None without a text tower or
    an indexed space); (None, None) when the pipeline cannot be built: keyword search answers either way. The
    database is read here, in the request's thread (a test's transaction is only visible there): the thread only
    runs the model."""
    try:
        space = current_space()
        pipeline = get_pipeline()
    except PipelineError:
        return None, None
    if space is None or not getattr(pipeline, "supports_text", True):
        return space, None
    return space, _TEXT_TOWER_THREADS.submit(_text_vectors, list(texts), pipeline)


def similar_to_product(
    product_id: int, *, k: int = 12, filters: ProductFilters | None = None, garments_per_product: int = 4
) -> list[ProductMatch]:
    """ "More like this": neighbours of the product's stored garment vectors.

    Uses the space the product's own vectors live in, so no model is loaded or called (a web process
    showing product pages never builds the pipeline).
    """
    own_garments = Garment.objects.filter(image__product_id=product_id).select_related("space")
    newest = own_garments.order_by("-space__created_at", "-space_id").first()
    if newest is None:
        return []
    space = newest.space
    own = list(
        own_garments.filter(space=space)
        .order_by("image__position", "image_id", "id")
        .values_list("embedding", flat=True)[:garments_per_product]
    )
    base = filters or ProductFilters()
    filters = ProductFilters(**{**base.__dict__, "exclude_product_ids": (*base.exclude_product_ids, product_id)})
    best: dict[int, GarmentHit] = {}
    for vector in own:
        for hit in selectors.nearest_products(space, list(vector), k=k, filters=filters):
            if hit.product_id not in best or hit.distance < best[hit.product_id].distance:
                best[hit.product_id] = hit
    ranked = sorted(best.values(), key=lambda hit: (hit.distance, hit.garment_id))[:k]
    return _matches(ranked)


@dataclass(frozen=True)
class DuplicatePair:
    first: Product
    second: Product
    similarity: float


def near_duplicate_products(*, min_similarity: float = 97.0, limit: int = 100) -> list[DuplicatePair]:
    """Pairs of different products with garments whose vectors are nearly the same (for staff)."""
    space = current_space()
    if space is None:
        return []
    max_distance = 1.0 - min_similarity / 100.0
    cast = f"halfvec({int(space.dim)})"  # the space's index expression; the reported distance is exact
    sql = f"""
        SELECT a_img.product_id, n.product_id, MIN(n.distance)
        FROM catalog_garment a
        JOIN catalog_productimage a_img ON a_img.id = a.image_id
        CROSS JOIN LATERAL (
            SELECT b_img.product_id, (b.embedding <=> a.embedding) AS distance
            FROM catalog_garment b JOIN catalog_productimage b_img ON b_img.id = b.image_id
            WHERE b.space_id = %s AND b.id <> a.id
            ORDER BY b.embedding::{cast} <=> a.embedding::{cast}
            LIMIT 5
        ) n
        WHERE a.space_id = %s AND n.distance <= %s AND a_img.product_id < n.product_id
        GROUP BY a_img.product_id, n.product_id
        ORDER BY MIN(n.distance), a_img.product_id, n.product_id
        LIMIT %s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [space.pk, space.pk, max_distance, limit])
        rows = cursor.fetchall()
    products = Product.objects.in_bulk({pid for row in rows for pid in row[:2]})
    return [DuplicatePair(products[a], products[b], similarity_percent(d)) for a, b, d in rows]
