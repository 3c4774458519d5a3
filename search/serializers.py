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
    q = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=300,
        help_text='Words that refine the photo, e.g. "in red" or "in red, not denim" ("not", "without", "no" or '
        "a leading - mark unwanted words). With a text tower: added to the photo's vector with q_weight; "
        "without one: the photo's neighbours matching the words come first.",
    )
    q_weight = serializers.FloatField(
        required=False,
        default=0.5,
        min_value=-2.0,
        max_value=2.0,
        help_text="Weight of q's text vector beside the photo's (1.0); negative pushes away. Text tower only.",
    )
    not_q = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=300,
        help_text='Words the results should not be, e.g. "denim": subtracted with not_weight (text tower), else '
        "neighbours matching them are dropped.",
    )
    not_weight = serializers.FloatField(
        required=False,
        default=0.5,
        min_value=0.0,
        max_value=2.0,
        help_text="Weight subtracted for not_q's text vector. Text tower only.",
    )

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
    q = serializers.CharField(
        max_length=300,
        help_text='What to look for, e.g. "red satin midi dress", a brand or a SKU (fragments and typos match). '
        "Keyword search over name, description, colour, category, brand, shop and SKU in every profile; fused "
        'with text-to-photo search when the embedder has a text tower. "-word" or "not word" excludes.',
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
        "distance": None if match.distance is None else round(match.distance, 6),
        "keyword_score": match.keyword_score,
        "matched_by": list(match.matched_by),
        "image_url": absolute(garment.image.file.url if garment.image.file else None),
        # No cutout is stored when it would be the whole photo: the photo is the cutout then.
        "cutout_url": absolute(garment.cutout.url if garment.cutout else garment.image.file.url or None),
        "garment": {"label": garment.label, "box": list(garment.box)},
    }


class MatchSerializer(serializers.Serializer):
    """Documents the result shape for the schema (payloads come from ``match_payload``)."""

    product = ProductSerializer()
    similarity = serializers.FloatField(
        help_text="100 x cosine similarity, clamped to 0..100; for a product found by its words alone "
        "(distance null), 100 x keyword_score."
    )
    distance = serializers.FloatField(
        allow_null=True, help_text="Cosine distance (0 = identical); null when no vector was compared."
    )
    keyword_score = serializers.FloatField(
        allow_null=True, help_text="0..1 keyword relevance (1 = exact SKU or name); null when the words did not match."
    )
    matched_by = serializers.ListField(
        child=serializers.ChoiceField(choices=["keyword", "vector"]), help_text="Which rankings found the product."
    )
    image_url = serializers.URLField(allow_null=True)
    cutout_url = serializers.URLField(allow_null=True)
    garment = serializers.DictField()


class SearchResponseSerializer(serializers.Serializer):
    query = serializers.DictField()
    results = MatchSerializer(many=True)
