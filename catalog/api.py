"""REST API of the catalog: product CRUD and photo upload. Thin: validate, call services, shape."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from catalog import services
from catalog.models import Product
from catalog.serializers import ProductFilterSerializer, ProductSerializer, ProductWriteSerializer
from core.api_errors import ErrorSerializer
from core.photos import read_upload


class IsStaffOrReadOnly(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return bool(request.user and request.user.is_staff)


class CanAddProductImage(permissions.BasePermission):
    """Uploading a photo is adding a ProductImage: the same permission the admin asks for."""

    def has_permission(self, request, view) -> bool:
        return request.user.has_perm("catalog.add_productimage")


# Writes need staff status and Django's model permission for the method (add/change/delete_product), as
# in the admin: a staff account without permissions reads only.
PRODUCT_WRITE_PERMISSIONS = [IsStaffOrReadOnly & permissions.DjangoModelPermissionsOrAnonReadOnly]


def validated(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer


class ProductViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Catalog products: anyone reads; staff with the model permissions write (token or session auth);
    writes go through services."""

    permission_classes = PRODUCT_WRITE_PERMISSIONS
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        products = Product.objects.order_by("id")
        if self.action != "list":
            return products
        return validated(ProductFilterSerializer, self.request.query_params).to_filters().apply(products)

    def get_serializer_class(self):
        return ProductWriteSerializer if self.action in {"create", "update", "partial_update"} else ProductSerializer

    @extend_schema(parameters=[ProductFilterSerializer])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        if not data.get("source_url") and not data.get("external_id"):
            raise services.InvalidProduct("a product needs a source_url or an external_id")
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
            raise services.InvalidProduct("this product has no source_url or external_id to key an update")
        data.setdefault("shop", product.shop)
        serializer.instance, _ = services.upsert_product(**key, **data)

    def perform_destroy(self, instance):
        with transaction.atomic():
            instance.delete()

    @extend_schema(
        request={
            "multipart/form-data": {"type": "object", "properties": {"image": {"type": "string", "format": "binary"}}}
        },
        responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT, 400: ErrorSerializer},
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)],
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="images",
        permission_classes=[permissions.IsAdminUser, CanAddProductImage],
    )
    def add_image(self, request, pk=None):
        """Staff: add a photo to a product; it is processed in the background."""
        product = self.get_object()
        content = read_upload(request.FILES.get("image"))
        image, created = services.add_image(product=product, content=content)
        return Response(
            {"id": image.pk, "created": created, "status": image.status, "sha256": image.sha256},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
