"""The product vocabulary, defined once: which fields a product has, which a shop page can state, and
which filters narrow a list or a search. Services, importers, crawl profiles, serializers, selectors and
the search page all take their lists from here."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import QuerySet

# Fields written through catalog.services.upsert_product (the keys, source_url and external_id, aside).
PRODUCT_FIELDS = (
    "name",
    "shop",
    "brand",
    "sku",
    "gtin",
    "mpn",
    "description",
    "price",
    "currency",
    "colour",
    "category",
    "availability",
)
# What a product page can state about itself: everything but the shop, which is the page's own host.
PAGE_FIELDS = tuple(name for name in PRODUCT_FIELDS if name != "shop")
# Filters of product lists and searches, as query parameter names.
FILTER_FIELDS = ("category", "shop", "brand", "min_price", "max_price")


@dataclass(frozen=True)
class ProductFilters:
    """The filters of FILTER_FIELDS as values; ``apply`` works on any queryset that reaches a product."""

    category: str | None = None
    shop: str | None = None
    brand: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    exclude_product_ids: tuple[int, ...] = ()

    def apply(self, queryset: QuerySet, *, product_path: str = "") -> QuerySet:
        """Filter ``queryset`` whose rows reach their product through ``product_path`` (e.g.
        ``"image__product__"`` for garments, ``""`` for products)."""
        lookups = {
            "category__iexact": self.category,
            "shop__iexact": self.shop,
            "brand__iexact": self.brand,
            "price__gte": self.min_price,
            "price__lte": self.max_price,
        }
        for lookup, value in lookups.items():
            if value is not None and value != "":
                queryset = queryset.filter(**{product_path + lookup: value})
        if self.exclude_product_ids:
            queryset = queryset.exclude(**{product_path + "pk__in": self.exclude_product_ids})
        return queryset
