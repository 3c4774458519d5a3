"""Reads from the catalog, shaped for the callers that need them."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from catalog.models import EmbeddingSpace, Garment, ImageStatus, Product, ProductImage


def product_by_source_url(url: str) -> Product | None:
    return Product.objects.filter(source_url=url).first()


def product_by_external_id(*, shop: str, external_id: str) -> Product | None:
    return Product.objects.filter(shop=shop, external_id=external_id).first()


def products_with_image_counts() -> QuerySet[Product]:
    """Products annotated with image totals per status (one query, no N+1 for lists)."""
    return Product.objects.annotate(
        image_count=Count("images", distinct=True),
        images_done=Count("images", filter=Q(images__status=ImageStatus.DONE), distinct=True),
        images_failed=Count("images", filter=Q(images__status=ImageStatus.FAILED), distinct=True),
    )


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


def garments_of_image(image: ProductImage) -> QuerySet[Garment]:
    return Garment.objects.filter(image=image).select_related("space")


def get_image(image_id: int) -> ProductImage | None:
    return ProductImage.objects.select_related("product").filter(pk=image_id).first()
