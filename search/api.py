"""REST API of search: by photo or text, "more like this" and near-duplicates. Thin: parse, call query, shape."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.api import validated
from catalog.models import Product
from catalog.serializers import ProductSerializer
from core.api_errors import ErrorSerializer
from core.errors import DomainError
from core.photos import read_upload
from core.throttling import AtomicScopedRateThrottle
from search import query
from search.serializers import (
    ImageSearchParamsSerializer,
    SearchParamsSerializer,
    SearchResponseSerializer,
    TextSearchParamsSerializer,
    match_payload,
)


class SearchView(APIView):
    """Search the catalog by photo (POST, multipart; ``q`` refines it with words) or by text (GET ?q=: keyword
    search in every profile, hybrid with text-to-photo vectors when the embedder has a text tower)."""

    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [AtomicScopedRateThrottle]
    throttle_scope = "search"
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        parameters=[TextSearchParamsSerializer],
        responses={200: SearchResponseSerializer, 400: ErrorSerializer, 429: ErrorSerializer},
    )
    def get(self, request):
        params = validated(TextSearchParamsSerializer, request.query_params)
        matches = query.search_by_text(
            params.validated_data["q"], k=params.validated_data["k"], filters=params.to_filters()
        )
        return Response(
            {
                "query": {"type": "text", "text": params.validated_data["q"]},
                "results": [match_payload(match, request) for match in matches],
            }
        )

    @extend_schema(
        request={"multipart/form-data": ImageSearchParamsSerializer},
        responses={
            200: SearchResponseSerializer,
            400: ErrorSerializer,
            413: ErrorSerializer,
            415: ErrorSerializer,
            429: ErrorSerializer,
        },
    )
    def post(self, request):
        uploaded = request.FILES.get("image")
        content = read_upload(uploaded)  # size and format checks before the serializer touches the file
        params = validated(ImageSearchParamsSerializer, request.data)
        data = params.validated_data
        result = query.search_by_image(
            content,
            k=data["k"],
            garment_index=data.get("garment"),
            box=data.get("box"),
            filters=params.to_filters(),
            text=data.get("q", ""),
            text_weight=data["q_weight"],
            not_text=data.get("not_q", ""),
            not_weight=data["not_weight"],
        )
        refinement = result.refinement
        refine = (
            {"refine": {"text": refinement.text, "not_text": refinement.not_text, "mode": refinement.mode}}
            if refinement
            else {}
        )
        return Response(
            {
                "query": {
                    "type": "image",
                    "image_size": list(result.image_size),
                    "garments": [
                        {"index": g.index, "label": g.label, "box": list(g.box), "score": g.score}
                        for g in result.garments
                    ],
                    "chosen": result.chosen,
                    "whole_image": result.whole_image,
                    "notice": result.notice,
                    **refine,
                },
                "results": [match_payload(match, request) for match in result.matches],
            }
        )


class ProductSearchViewSet(viewsets.ViewSet):
    """Search actions on products ("more like this", near-duplicates), routed beside the catalog's CRUD."""

    @extend_schema(
        parameters=[SearchParamsSerializer, OpenApiParameter("id", int, OpenApiParameter.PATH)],
        responses={200: SearchResponseSerializer, 404: ErrorSerializer},
    )
    @action(detail=True, methods=["get"], throttle_classes=[AtomicScopedRateThrottle])
    def similar(self, request, pk=None):
        """More like this: products whose garments are closest to this product's (stored vectors)."""
        if not Product.objects.filter(pk=pk).exists():
            raise Http404
        params = validated(SearchParamsSerializer, request.query_params)
        matches = query.similar_to_product(int(pk), k=params.validated_data["k"], filters=params.to_filters())
        return Response(
            {
                "query": {"type": "product", "product_id": int(pk)},
                "results": [match_payload(m, request) for m in matches],
            }
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("min_similarity", float, description="percent, default 97"),
            OpenApiParameter("limit", int, description="pairs, default 100"),
        ],
        responses={200: OpenApiTypes.OBJECT, 403: ErrorSerializer},
    )
    @action(detail=False, methods=["get"], permission_classes=[permissions.IsAdminUser])
    def duplicates(self, request):
        """Staff: pairs of different products whose garments are near-identical vectors."""
        try:
            min_similarity = float(request.query_params.get("min_similarity", 97))
            limit = int(request.query_params.get("limit", 100))
        except ValueError as exc:
            raise DomainError("min_similarity must be a number and limit an integer", code="invalid") from exc
        if not 0 <= min_similarity <= 100 or not 1 <= limit <= 1000:
            raise DomainError("min_similarity must be within 0..100 and limit within 1..1000", code="invalid")
        pairs = query.near_duplicate_products(min_similarity=min_similarity, limit=limit)
        return Response(
            {
                "results": [
                    {
                        "first": ProductSerializer(pair.first).data,
                        "second": ProductSerializer(pair.second).data,
                        "similarity": pair.similarity,
                    }
                    for pair in pairs
                ]
            }
        )

    @property
    def throttle_scope(self):
        return "search" if getattr(self, "action", None) == "similar" else None
