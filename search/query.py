"""Search use-cases: by photo, by text, more like this, near-duplicates.

A query goes through exactly the pipeline that indexed the catalog (same preprocessing, same model), then
PostgreSQL orders garments of the current embedder's space by cosine distance. Results are products:
each product once, represented by its best-matching garment.

Similarity shown to people is ``100 * cosine similarity``, clamped to 0..100 (cosine similarity is
``1 - cosine distance``; L2-normalised vectors make it the dot product). 100% means the same vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import connection

from catalog.models import EmbeddingSpace, Garment, Product
from catalog.vocabulary import ProductFilters
from core.errors import DomainError
from core.photos import load_image
from search import selectors
from search.pipeline.base import Box, UnsupportedOperation
from search.pipeline.registry import get_pipeline
from search.selectors import GarmentHit

__all__ = [
    "DetectedGarment",
    "ImageSearchResult",
    "ProductMatch",
    "QueryError",
    "near_duplicate_products",
    "search_by_image",
    "search_by_text",
    "similar_to_product",
    "similarity_percent",
]


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
    distance: float

    @property
    def image(self):
        return self.garment.image

    @property
    def similarity(self) -> float:
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


@dataclass
class ImageSearchResult:
    matches: list[ProductMatch]
    garments: list[DetectedGarment] = field(default_factory=list)
    chosen: int = 0
    whole_image: bool = False
    image_size: tuple[int, int] = (0, 0)
    notice: str = ""


def current_space() -> EmbeddingSpace | None:
    """The space of the configured embedder, or None when nothing was indexed with it yet."""
    pipeline = get_pipeline()
    return EmbeddingSpace.objects.filter(model_id=pipeline.embedder_id).first()


def _matches(hits: Sequence[GarmentHit]) -> list[ProductMatch]:
    """Hydrate hits with two queries (products, garments+images), keeping the hits' order."""
    products = Product.objects.in_bulk([hit.product_id for hit in hits])
    garments = Garment.objects.select_related("image").in_bulk([hit.garment_id for hit in hits])
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
) -> ImageSearchResult:
    """Find products like the garment in a photo.

    All garments found are returned with their boxes; the one searched is ``garment_index`` (default: the
    largest), or the region ``box`` if given. With no garment found, the whole photo is searched and the
    result says so. Raises PhotoError for a file that is not a usable image.
    """
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
        chosen = max(range(len(garments)), key=lambda i: (garments[i].area, -i))
    elif 0 <= garment_index < len(garments):
        chosen = garment_index
    else:
        raise QueryError(f"garment {garment_index} does not exist; the photo has {len(garments)} garment(s)")
    whole = bool(results) and results[0].whole_image_fallback
    notice = "No garment was found in the photo, so the whole photo was searched." if whole else ""
    matches = _nearest(results[chosen].embedding.tolist(), k=k, filters=filters)
    if not matches and current_space() is None:
        notice = "The catalog has not been indexed with the current model yet."
    return ImageSearchResult(
        matches=matches,
        garments=garments,
        chosen=chosen,
        whole_image=whole,
        image_size=(photo.width, photo.height),
        notice=notice,
    )


def search_by_text(text: str, *, k: int = 12, filters: ProductFilters | None = None) -> list[ProductMatch]:
    """Products matching a description, through the embedder's text tower."""
    text = (text or "").strip()
    if not text:
        raise QueryError("type a few words to search for")
    if len(text) > 300:
        raise QueryError("the search text is longer than 300 characters")
    pipeline = get_pipeline()
    try:
        vector = pipeline.embed_text([text])[0]
    except UnsupportedOperation as exc:
        raise QueryError(
            f"text search needs an embedder with a text tower; the current one ({pipeline.embedder_id}) has "
            "none. Use the full profile (FashionCLIP) to search by text."
        ) from exc
    return _nearest(vector.tolist(), k=k, filters=filters)


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
