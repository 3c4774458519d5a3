"""API shapes of the catalog: products in and out, and the product filters as query parameters."""

from __future__ import annotations

from decimal import Decimal

from django.urls import reverse
from rest_framework import serializers

from catalog.models import Availability, Product
from catalog.vocabulary import PRODUCT_FIELDS, ProductFilters


class ProductFilterSerializer(serializers.Serializer):
    """The query parameters of catalog.vocabulary.FILTER_FIELDS, validated into ``ProductFilters``."""

    category = serializers.CharField(required=False, allow_blank=True, max_length=100)
    shop = serializers.CharField(required=False, allow_blank=True, max_length=200)
    brand = serializers.CharField(required=False, allow_blank=True, max_length=200)
    min_price = serializers.DecimalField(required=False, allow_null=True, max_digits=12, decimal_places=2, min_value=0)
    max_price = serializers.DecimalField(required=False, allow_null=True, max_digits=12, decimal_places=2, min_value=0)

    def validate(self, attrs):
        low, high = attrs.get("min_price"), attrs.get("max_price")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError({"max_price": "must not be below min_price"})
        return attrs

    def to_filters(self) -> ProductFilters:
        data = self.validated_data
        return ProductFilters(
            category=data.get("category") or None,
            shop=data.get("shop") or None,
            brand=data.get("brand") or None,
            min_price=data.get("min_price"),
            max_price=data.get("max_price"),
        )


class ProductSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    availability = serializers.ChoiceField(choices=Availability.choices, required=False, allow_blank=True)

    class Meta:
        model = Product
        fields = ["id", "external_id", *PRODUCT_FIELDS, "source_url", "url", "created_at", "updated_at"]
        read_only_fields = ["id", "url", "created_at", "updated_at"]
        # Uniqueness is the upsert service's job (it updates instead of failing).
        validators = []
        extra_kwargs = {"source_url": {"validators": []}}

    def get_url(self, product: Product) -> str:
        return reverse("search:product", args=[product.pk])


class ProductWriteSerializer(ProductSerializer):
    price = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=Decimal("0"), required=False, allow_null=True
    )
