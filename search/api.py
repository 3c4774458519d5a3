"""REST API: search by photo or text, products, "more like this". Thin: parse, call query/services, shape."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import transaction
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView, exception_handler

from catalog import services
from catalog.models import Product
from search import query
from search.pipeline.base import ImageDecodeError, PipelineError
from search.serializers import (
    ErrorSerializer,
    FilterParamsSerializer,
    ImageSearchParamsSerializer,
    ProductSerializer,
    ProductWriteSerializer,
    SearchResponseSerializer,
    TextSearchParamsSerializer,
    match_payload,
)
from search.uploads import UploadError, read_upload


class ApiError(exceptions.APIException):
    """An error with our own code and message, rendered like every other error body."""

    def __init__(self, message: str, *, code: str, status_code: int = 400):
        super().__init__(detail=message, code=code)
        self.status_code = status_code


def error_handler(exc, context):
    """Every error body has one shape: {"error": {"code", "message", "details"}}."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, UploadError):
        exc = ApiError(str(exc), code=exc.code, status_code=exc.status_code)
    elif isinstance(exc, ImageDecodeError):
        exc = ApiError(str(exc), code="invalid_image")
    elif isinstance(exc, query.QueryError):
        exc = ApiError(str(exc), code="invalid_query")
    elif isinstance(exc, services.InvalidProduct):
        exc = ApiError(str(exc), code="invalid_product")
    elif isinstance(exc, services.InvalidImage):
        exc = ApiError(str(exc), code="invalid_image")
    elif isinstance(exc, PipelineError):
        exc = ApiError(str(exc), code="pipeline_unavailable", status_code=503)
    response = exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
    if isinstance(detail, dict) and set(detail) == {"detail"}:
        message, details = str(detail["detail"]), {}
    elif isinstance(detail, dict | list):
        message, details = "Some fields are invalid.", detail
    else:
        message, details = str(detail), {}
    code = codes if isinstance(codes, str) else ("invalid" if response.status_code == 400 else "error")
    if isinstance(exc, exceptions.Throttled):
        message = f"Too many searches; try again in {exc.wait:.0f} s." if exc.wait else "Too many searches."
    response.data = {"error": {"code": code, "message": message, "details": details}}
    return response


def _validated(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer


class SearchView(APIView):
    """Search the catalog by photo (POST, multipart) or by text (GET ?q=)."""

    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "search"
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        parameters=[TextSearchParamsSerializer],
        responses={200: SearchResponseSerializer, 400: ErrorSerializer, 429: ErrorSerializer},
    )
    def get(self, request):
        params = _validated(TextSearchParamsSerializer, request.query_params)
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
        params = _validated(ImageSearchParamsSerializer, request.data)
        data = params.validated_data
        result = query.search_by_image(
            content, k=data["k"], garment_index=data.get("garment"), box=data.get("box"), filters=params.to_filters()
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
                },
                "results": [match_payload(match, request) for match in result.matches],
            }
        )


class IsStaffOrReadOnly(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return bool(request.user and request.user.is_staff)


class ProductViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Catalog products: anyone reads, staff write (token or session auth); writes go through services."""

    permission_classes = [IsStaffOrReadOnly]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        products = Product.objects.order_by("id")
        if self.action != "list":
            return products
        params = _validated(FilterParamsSerializer, self.request.query_params)
        filters = params.validated_data
        if filters.get("category"):
            products = products.filter(category__iexact=filters["category"])
        if filters.get("shop"):
            products = products.filter(shop__iexact=filters["shop"])
        if filters.get("brand"):
            products = products.filter(brand__iexact=filters["brand"])
        if filters.get("min_price") is not None:
            products = products.filter(price__gte=filters["min_price"])
        if filters.get("max_price") is not None:
            products = products.filter(price__lte=filters["max_price"])
        return products

    def get_serializer_class(self):
        return ProductWriteSerializer if self.action in {"create", "update", "partial_update"} else ProductSerializer

    @extend_schema(parameters=[FilterParamsSerializer])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        if not data.get("source_url") and not data.get("external_id"):
            raise ApiError("a product needs a source_url or an external_id", code="invalid_product")
        product, _ = services.upsert_product(
            source_url=data.pop("source_url", None), external_id=data.pop("external_id", None), **data
        )
        serializer.instance = product

    def perform_update(self, serializer):
        product = serializer.instance
        data = dict(serializer.validated_data)
        data.pop("source_url", None)
        data.pop("external_id", None)
        key = {"source_url": product.source_url} if product.source_url else {"external_id": product.external_id}
        if not any(key.values()):
            raise ApiError("this product has no source_url or external_id to key an update", code="invalid_product")
        data.setdefault("shop", product.shop)
        serializer.instance, _ = services.upsert_product(**key, **data)

    def perform_destroy(self, instance):
        with transaction.atomic():
            instance.delete()

    @extend_schema(
        parameters=[FilterParamsSerializer],
        responses={200: SearchResponseSerializer, 404: ErrorSerializer},
    )
    @action(detail=True, methods=["get"], throttle_classes=[ScopedRateThrottle])
    def similar(self, request, pk=None):
        """More like this: products whose garments are closest to this product's (stored vectors)."""
        if not Product.objects.filter(pk=pk).exists():
            raise Http404
        params = _validated(FilterParamsSerializer, request.query_params)
        matches = query.similar_to_product(int(pk), k=params.validated_data["k"], filters=params.to_filters())
        return Response(
            {
                "query": {"type": "product", "product_id": int(pk)},
                "results": [match_payload(m, request) for m in matches],
            }
        )

    @extend_schema(
        request={
            "multipart/form-data": {"type": "object", "properties": {"image": {"type": "string", "format": "binary"}}}
        },
        responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT, 400: ErrorSerializer},
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)],
    )
    @action(detail=True, methods=["post"], url_path="images", permission_classes=[permissions.IsAdminUser])
    def add_image(self, request, pk=None):
        """Staff: add a photo to a product; it is processed in the background."""
        product = self.get_object()
        content = read_upload(request.FILES.get("image"))
        image, created = services.add_image(product=product, content=content)
        return Response(
            {"id": image.pk, "created": created, "status": image.status, "sha256": image.sha256},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
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
            raise ApiError("min_similarity must be a number and limit an integer", code="invalid") from exc
        if not 0 <= min_similarity <= 100 or not 1 <= limit <= 1000:
            raise ApiError("min_similarity must be within 0..100 and limit within 1..1000", code="invalid")
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
