"""API shapes of search: query parameters in, matches out (products are shaped by the catalog)."""

from __future__ import annotations

from rest_framework import serializers

from catalog.serializers import ProductFilterSerializer, ProductSerializer


class SearchParamsSerializer(ProductFilterSerializer):
    """Product filters plus how many products to return."""

    k = serializers.IntegerField(required=False, default=12, min_value=1, max_value=100)


class ImageSearchParamsSerializer(SearchParamsSerializer):
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


class TextSearchParamsSerializer(SearchParamsSerializer):
    q = serializers.CharField(max_length=300, help_text='What to look for, e.g. "red satin midi dress".')


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
