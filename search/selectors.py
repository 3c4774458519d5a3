"""Vector reads: nearest garments and products by cosine distance, served by pgvector's HNSW index.

Each embedding space has a partial HNSW index on ``embedding::halfvec(dim) WHERE space_id = N``; queries
order by exactly that expression under that condition so the planner can use it, and report the exact
full-precision distance of each row they return. Filters are applied inside the index scan with
pgvector's iterative scans, so a selective filter still returns k results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, QuerySet
from django.db.models.functions import Cast
from pgvector.django import CosineDistance, HalfVectorField

from catalog.models import EmbeddingSpace, Garment, Product
from catalog.vocabulary import ProductFilters


@dataclass(frozen=True)
class GarmentHit:
    garment_id: int
    image_id: int
    product_id: int
    distance: float


def _index_distance(space: EmbeddingSpace, vector: Sequence[float]):
    """The indexed expression: half-precision cosine distance, what the HNSW index orders by."""
    return CosineDistance(Cast("embedding", HalfVectorField(dimensions=space.dim)), list(map(float, vector)))


def _exact_distance(vector: Sequence[float]):
    """Full-precision cosine distance, for the rows the index returns (scores and final order)."""
    return CosineDistance("embedding", list(map(float, vector)))


def nearest_garments_queryset(
    space: EmbeddingSpace, vector: Sequence[float], *, filters: ProductFilters | None = None
) -> QuerySet[Garment]:
    """Garments of ``space`` ordered by cosine distance to ``vector``, annotated with the exact distance.

    Ordered by the indexed distance alone: a second sort key would stop PostgreSQL from using the HNSW
    index, so rows are put in exact order, ties by garment id, after the fetch (``nearest_garments``).
    """
    if len(vector) != space.dim:
        raise ValueError(f"query vector has {len(vector)} dimensions, the space {space} has {space.dim}")
    garments = Garment.objects.filter(space=space)
    if filters is not None:
        garments = filters.apply(garments, product_path="image__product__")
    return garments.annotate(distance=_exact_distance(vector)).order_by(_index_distance(space, vector))


def _set_scan_options(ef_search: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL hnsw.ef_search = {int(ef_search)}")
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")


def nearest_garments(
    space: EmbeddingSpace,
    vector: Sequence[float],
    *,
    limit: int,
    filters: ProductFilters | None = None,
    ef_search: int | None = None,
) -> list[GarmentHit]:
    queryset = nearest_garments_queryset(space, vector, filters=filters).values_list(
        "pk", "image_id", "image__product_id", "distance"
    )[:limit]
    with transaction.atomic():
        _set_scan_options(ef_search or settings.HNSW_EF_SEARCH)
        rows = list(queryset)
    # relaxed_order and half precision may put near-ties out of order: sort by the exact distance.
    hits = [GarmentHit(garment_id=g, image_id=i, product_id=p, distance=float(d)) for g, i, p, d in rows]
    return sorted(hits, key=lambda hit: (hit.distance, hit.garment_id))


def nearest_products(
    space: EmbeddingSpace,
    vector: Sequence[float],
    *,
    k: int,
    filters: ProductFilters | None = None,
    ef_search: int | None = None,
    max_garments: int = 5000,
) -> list[GarmentHit]:
    """The k nearest distinct products, each represented by its best-matching garment.

    Garments come off the index in distance order and are grouped by product; if a few products own many
    of the nearest garments the window grows until k products are found or the space is exhausted.
    """
    window = max(k * 4, 40)
    while True:
        hits = nearest_garments(space, vector, limit=window, filters=filters, ef_search=ef_search)
        best: dict[int, GarmentHit] = {}
        for hit in hits:
            best.setdefault(hit.product_id, hit)
        if len(best) >= k or len(hits) < window or window >= max_garments:
            return list(best.values())[:k]
        window = min(window * 4, max_garments)


def best_garments_of_products(
    space: EmbeddingSpace, vector: Sequence[float], product_ids: Sequence[int]
) -> dict[int, GarmentHit]:
    """Each listed product's garment closest to ``vector`` (exact distance): the vector side of a product that
    a keyword search found but the nearest-neighbour list did not reach. A few products, so no index needed."""
    if not product_ids:
        return {}
    rows = (
        Garment.objects.filter(space=space, image__product_id__in=list(product_ids))
        .annotate(distance=_exact_distance(vector))
        .order_by("image__product_id", "distance", "pk")
        .distinct("image__product_id")
        .values_list("pk", "image_id", "image__product_id", "distance")
    )
    return {p: GarmentHit(garment_id=g, image_id=i, product_id=p, distance=float(d)) for g, i, p, d in rows}


# Calibration of scores: cosine similarity of CNN features is high for any two photos (unrelated garments score
# 44-50 %), so the page shows where a distance falls among distances of unrelated pairs instead.
CALIBRATION_SAMPLE = 300  # garments sampled: up to ~45,000 pairs of different products


def unrelated_distance_quantiles(space: EmbeddingSpace, *, sample: int = CALIBRATION_SAMPLE) -> list[float]:
    """The 0th..100th percentiles of the cosine distance between garments of *different* products of ``space``,
    from a random sample: the catalog's own baseline of what "not alike" looks like. Empty below two products."""
    table = Garment._meta.db_table
    image_table = Garment._meta.get_field("image").related_model._meta.db_table
    sql = f"""
        WITH s AS (
            SELECT g.id, g.embedding, i.product_id FROM {table} g JOIN {image_table} i ON i.id = g.image_id
            WHERE g.space_id = %s ORDER BY random() LIMIT %s
        )
        SELECT percentile_cont(ARRAY(SELECT generate_series(0, 100) / 100.0))
               WITHIN GROUP (ORDER BY a.embedding <=> b.embedding)
        FROM s a JOIN s b ON a.id < b.id AND a.product_id <> b.product_id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [space.pk, int(sample)])
        row = cursor.fetchone()
    return [float(value) for value in row[0]] if row and row[0] else []


def match_score(distance: float | None, quantiles: Sequence[float]) -> int | None:
    """0..100: the share (percent) of unrelated catalog pairs that are *further apart* than ``distance``; 99 means
    closer than 99 % of unrelated pairs. None without a distance or a baseline."""
    if distance is None or len(quantiles) < 2:
        return None
    if distance <= quantiles[0]:
        return 100
    if distance >= quantiles[-1]:
        return 0
    step = 100 / (len(quantiles) - 1)
    for i in range(1, len(quantiles)):
        low, high = quantiles[i - 1], quantiles[i]
        if distance <= high:
            fraction = 0.0 if high == low else (distance - low) / (high - low)
            # Halves round up, as JavaScript's Math.round in search.js (Python's round() would go to even).
            return math.floor(100 - (i - 1 + fraction) * step + 0.5)
    return 0


def shops_with_counts() -> list[tuple[str, int]]:
    """Shops that have products, with how many, by name: the choices of the page's shop filter."""
    rows = Product.objects.exclude(shop="").values("shop").annotate(n=Count("id")).order_by("shop")
    return [(row["shop"], row["n"]) for row in rows]
