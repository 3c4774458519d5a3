"""Reads from the catalog, shaped for the callers that need them."""

from __future__ import annotations

from django.db.models import Case, Count, OuterRef, QuerySet, Subquery, TextChoices, Value, When
from django.db.models.functions import Coalesce

from catalog.models import EmbeddingSpace, Garment, ImageStatus, Product, ProductImage


def product_by_source_url(url: str) -> Product | None:
    return Product.objects.filter(source_url=url).first()


def image_ids_by_status(*statuses: str) -> list[int]:
    return list(ProductImage.objects.filter(status__in=statuses).order_by("pk").values_list("pk", flat=True))


def image_ids_missing_space(space: EmbeddingSpace) -> list[int]:
    """Images that have no garments in ``space`` yet: what a model change must re-index."""
    return list(
        ProductImage.objects.exclude(garments__space=space).order_by("pk").distinct().values_list("pk", flat=True)
    )


def status_counts() -> dict[str, int]:
    counts = dict(ProductImage.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    return {status: counts.get(status, 0) for status in ImageStatus.values}


def get_image(image_id: int) -> ProductImage | None:
    return ProductImage.objects.select_related("product").filter(pk=image_id).first()


# --- admin ----------------------------------------------------------------------------------------


def _images_count(**filters):
    """Correlated per-product image count: evaluated only for the rows a page shows, unlike a JOIN +
    GROUP BY that aggregates the whole catalog before LIMIT."""
    images = ProductImage.objects.filter(product=OuterRef("pk"), **filters).order_by()
    return Coalesce(Subquery(images.values("product").annotate(n=Count("pk")).values("n")[:1]), 0)


class ProductState(TextChoices):
    """One word per product for the admin list: the worst state among its photos."""

    NO_IMAGES = "no_images", "No photos"
    FAILED = "failed", "Failed"
    IN_PROGRESS = "in_progress", "Pending / processing"
    DONE = "done", "Done"


def products_for_admin() -> QuerySet[Product]:
    """Products with image totals per status, their first photo (id, hash) and a processing state, in one
    query whatever the page size."""
    first_image = ProductImage.objects.filter(product=OuterRef("pk")).order_by("position", "pk")
    return Product.objects.annotate(
        image_count=_images_count(),
        images_done=_images_count(status=ImageStatus.DONE),
        images_failed=_images_count(status=ImageStatus.FAILED),
        images_waiting=_images_count(status__in=[ImageStatus.PENDING, ImageStatus.PROCESSING]),
        first_image_id=Subquery(first_image.values("pk")[:1]),
        state=Case(
            When(image_count=0, then=Value(ProductState.NO_IMAGES)),
            When(images_failed__gt=0, then=Value(ProductState.FAILED)),
            When(images_waiting__gt=0, then=Value(ProductState.IN_PROGRESS)),
            default=Value(ProductState.DONE),
        ),
    )


def images_for_admin() -> QuerySet[ProductImage]:
    """Photos with their product and garment count (no N+1 on the image list)."""
    garments = Garment.objects.filter(image=OuterRef("pk")).order_by()
    return ProductImage.objects.select_related("product").annotate(
        garment_count=Coalesce(Subquery(garments.values("image").annotate(n=Count("pk")).values("n")[:1]), 0)
    )


def garments_for_display() -> QuerySet[Garment]:
    """Garments without their vectors: pages show boxes and pictures, never the embedding."""
    return Garment.objects.defer("embedding")


def garments_of_product(product_id: int) -> QuerySet[Garment]:
    return (
        garments_for_display()
        .filter(image__product_id=product_id)
        .select_related("image", "space")
        .order_by("image__position", "image_id", "pk")
    )


def images_finished_since(since) -> dict[str, int]:
    """Photos that reached done / failed since ``since`` (the processing throughput)."""
    rows = (
        ProductImage.objects.filter(processed_at__gte=since, status__in=[ImageStatus.DONE, ImageStatus.FAILED])
        .values_list("status")
        .annotate(n=Count("pk"))
    )
    counts = dict(rows.values_list("status", "n"))
    return {ImageStatus.DONE: counts.get(ImageStatus.DONE, 0), ImageStatus.FAILED: counts.get(ImageStatus.FAILED, 0)}


def latest_failed_images(limit: int = 20) -> list[ProductImage]:
    return list(
        ProductImage.objects.filter(status=ImageStatus.FAILED)
        .select_related("product")
        .order_by("-processed_at", "-pk")[:limit]
    )


def categories() -> list[str]:
    """Distinct non-empty product categories, sorted: the choices of the shopper's category filter."""
    return list(Product.objects.exclude(category="").order_by("category").values_list("category", flat=True).distinct())


def representative_garments(product_ids, *, space: EmbeddingSpace | None = None) -> dict[int, Garment]:
    """One garment per product to show on a result card when no vector chose it (keyword hits): a garment of
    ``space`` if the product has one, else any, from its first photo. Products without garments are absent."""
    ids = [int(pk) for pk in product_ids]
    if not ids:
        return {}
    in_space = Case(When(space_id=space.pk if space else None, then=Value(0)), default=Value(1))
    rows = (
        garments_for_display()
        .filter(image__product_id__in=ids)
        .select_related("image")
        .annotate(space_rank=in_space)
        .order_by("image__product_id", "space_rank", "image__position", "image_id", "pk")
        .distinct("image__product_id")
    )
    return {garment.image.product_id: garment for garment in rows}
