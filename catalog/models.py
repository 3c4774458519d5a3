"""The catalog's truth: products, their photos, and the garments found in each photo.

Vectors from different models must never be compared, so every garment row points at the
``EmbeddingSpace`` (model id + dimension) that produced its vector, and each space gets its own
partial HNSW index over ``embedding::halfvec(dim)``. A model change is a clean re-index into a new space.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from pgvector.django import VectorField


def _upload_path(folder: str, filename: str) -> str:
    """Generated names only: a URL's or uploader's filename never reaches the disk."""
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"{folder}/{uuid.uuid4().hex[:2]}/{uuid.uuid4().hex}.{suffix}"


def product_image_path(instance: ProductImage, filename: str) -> str:
    return _upload_path("products", filename)


def garment_mask_path(instance: Garment, filename: str) -> str:
    return _upload_path("masks", filename)


def garment_cutout_path(instance: Garment, filename: str) -> str:
    return _upload_path("cutouts", filename)


class Availability(models.TextChoices):
    UNKNOWN = "", "Unknown"
    IN_STOCK = "in_stock", "In stock"
    OUT_OF_STOCK = "out_of_stock", "Out of stock"


class Product(models.Model):
    """One product of one shop: crawled products are keyed by URL, imported ones by (shop, external id)."""

    source_url = models.URLField(max_length=2000, unique=True, null=True, blank=True)
    external_id = models.CharField(max_length=200, null=True, blank=True, help_text="The shop's own product id.")
    shop = models.CharField(max_length=200, blank=True, default="", db_index=True)
    brand = models.CharField(max_length=200, blank=True, default="")
    sku = models.CharField(max_length=200, blank=True, default="", db_index=True)
    gtin = models.CharField(max_length=50, blank=True, default="")
    mpn = models.CharField(max_length=100, blank=True, default="")
    name = models.CharField(max_length=500)
    description = models.TextField(blank=True, default="")
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, default="")
    colour = models.CharField(max_length=100, blank=True, default="")
    category = models.CharField(max_length=100, blank=True, default="", db_index=True)
    availability = models.CharField(max_length=20, choices=Availability.choices, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["shop", "external_id"],
                condition=Q(external_id__isnull=False),
                name="catalog_product_unique_shop_external_id",
            ),
            models.CheckConstraint(
                condition=Q(price__isnull=True) | Q(price__gte=0), name="catalog_product_price_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(price__isnull=True) | ~Q(currency=""), name="catalog_product_price_has_currency"
            ),
        ]
        indexes = [models.Index(fields=["price"], name="catalog_product_price_idx")]

    def __str__(self) -> str:
        return self.name


class ImageStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ProductImage(models.Model):
    """A product photo and the state of turning it into garments."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="images")
    source_url = models.URLField(max_length=2000, blank=True, default="")
    file = models.ImageField(upload_to=product_image_path, width_field="width", height_field="height")
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    position = models.PositiveIntegerField(default=0, help_text="Order of the photo on the product page.")
    status = models.CharField(max_length=12, choices=ImageStatus.choices, default=ImageStatus.PENDING, db_index=True)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["product_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["product", "sha256"], name="catalog_image_unique_product_sha256"),
        ]

    def __str__(self) -> str:
        return f"Image {self.pk} of product {self.product_id}"


class EmbeddingSpace(models.Model):
    """The vectors of one embedding model: only vectors of the same space are ever compared."""

    model_id = models.CharField(max_length=300, unique=True)
    dim = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(dim__gte=1) & Q(dim__lte=2000), name="catalog_space_dim_hnsw_range"),
        ]

    def __str__(self) -> str:
        return f"{self.model_id} ({self.dim}-d)"

    @property
    def index_name(self) -> str:
        return f"catalog_garment_hnsw_space_{self.pk}"


class Garment(models.Model):
    """One garment found in a photo: its box, mask, cutout and embedding."""

    image = models.ForeignKey(ProductImage, on_delete=models.CASCADE, related_name="garments")
    space = models.ForeignKey(EmbeddingSpace, on_delete=models.PROTECT, related_name="garments")
    label = models.CharField(max_length=100)
    score = models.FloatField(null=True, blank=True)
    box_x0 = models.PositiveIntegerField()
    box_y0 = models.PositiveIntegerField()
    box_x1 = models.PositiveIntegerField()
    box_y1 = models.PositiveIntegerField()
    mask = models.ImageField(upload_to=garment_mask_path, blank=True)
    cutout = models.ImageField(upload_to=garment_cutout_path, blank=True)
    # No fixed dimension: each space has its own partial HNSW index on embedding::halfvec(dim).
    embedding = VectorField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["image_id", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(box_x1__gt=models.F("box_x0")) & Q(box_y1__gt=models.F("box_y0")),
                name="catalog_garment_box_not_empty",
            ),
        ]
        indexes = [models.Index(fields=["space", "image"], name="catalog_garment_space_image")]

    def __str__(self) -> str:
        return f"{self.label} in image {self.image_id}"

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.box_x0, self.box_y0, self.box_x1, self.box_y1)

    @property
    def box_area(self) -> int:
        return (self.box_x1 - self.box_x0) * (self.box_y1 - self.box_y0)
