"""API shapes: query parameters in, products and matches out."""

from __future__ import annotations

from decimal import Decimal

from django.urls import reverse
from rest_framework import serializers

from catalog.models import Availability, Product
from search.selectors import ProductFilters


class FilterParamsSerializer(serializers.Serializer):
    category = serializers.CharField(required=False, allow_blank=True, max_length=100)
    shop = serializers.CharField(required=False, allow_blank=True, max_length=200)
    brand = serializers.CharField(required=False, allow_blank=True, max_length=200)
    min_price = serializers.DecimalField(required=False, allow_null=True, max_digits=12, decimal_places=2, min_value=0)
    max_price = serializers.DecimalField(required=False, allow_null=True, max_digits=12, decimal_places=2, min_value=0)
    k = serializers.IntegerField(required=False, default=12, min_value=1, max_value=100)

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


class ImageSearchParamsSerializer(FilterParamsSerializer):
    image = serializers.FileField(help_text="The photo (JPEG, PNG, WebP, GIF, BMP or TIFF).")
    garment = serializers.IntegerField(required=False, min_value=0, help_text="Index of the garment to search.")
    box = serializers.CharField(required=False, help_text='A region to search instead: "x0,y0,x1,y1" in pixels.')

    def validate_box(self, value: str) -> tuple[float, float, float, float]:
        try:
            parts = tuple(float(part) for part in value.split(","))
        except ValueError as exc:
            raise serializers.ValidationError('use four numbers: "x0,y0,x1,y1"') from exc
        if len(parts) != 4:
            raise serializers.ValidationError('use four numbers: "x0,y0,x1,y1"')
        x0, y0, x1, y1 = parts
        if x1 <= x0 or y1 <= y0:
            raise serializers.ValidationError("x1 must exceed x0 and y1 must exceed y0")
        return parts

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if "garment" in attrs and "box" in attrs:
            raise serializers.ValidationError("give either garment or box, not both")
        return attrs


class TextSearchParamsSerializer(FilterParamsSerializer):
    q = serializers.CharField(max_length=300, help_text='What to look for, e.g. "red satin midi dress".')


class ProductSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    availability = serializers.ChoiceField(choices=Availability.choices, required=False, allow_blank=True)

    class Meta:
        model = Product
        fields = [
            "id",
            "name",
            "external_id",
            "sku",
            "price",
            "currency",
            "category",
            "shop",
            "brand",
            "colour",
            "availability",
            "gtin",
            "mpn",
            "description",
            "source_url",
            "url",
            "created_at",
            "updated_at",
        ]
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


def match_payload(match, request=None) -> dict:
    def absolute(url: str | None) -> str | None:
        if not url:
            return None
        return request.build_absolute_uri(url) if request is not None else url

    garment = match.garment
    return {
        "product": ProductSerializer(match.product).data,
        "similarity": match.similarity,
        "distance": round(match.distance, 6),
        "image_url": absolute(garment.image.file.url if garment.image.file else None),
        "cutout_url": absolute(garment.cutout.url if garment.cutout else None),
        "garment": {"label": garment.label, "box": list(garment.box)},
    }


class MatchSerializer(serializers.Serializer):
    """Documents the result shape for the schema (payloads come from ``match_payload``)."""

    product = ProductSerializer()
    similarity = serializers.FloatField(help_text="100 x cosine similarity, clamped to 0..100.")
    distance = serializers.FloatField(help_text="Cosine distance (0 = identical).")
    image_url = serializers.URLField(allow_null=True)
    cutout_url = serializers.URLField(allow_null=True)
    garment = serializers.DictField()


class SearchResponseSerializer(serializers.Serializer):
    query = serializers.DictField()
    results = MatchSerializer(many=True)


class ErrorSerializer(serializers.Serializer):
    error = serializers.DictField(help_text='{"code": ..., "message": ..., "details": ...}')
