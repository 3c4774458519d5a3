"""REST API routes (mounted under /api/ as namespace "api"): each app's views, one router, the schema."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from catalog.api import ProductViewSet
from search.api import ProductSearchViewSet, SearchView

router = DefaultRouter()
# Search's product actions first: /products/duplicates/ must not be read as the product "duplicates".
router.register("products", ProductSearchViewSet, basename="product-search")
router.register("products", ProductViewSet, basename="product")

urlpatterns = [
    path("search/", SearchView.as_view(), name="search"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("", include(router.urls)),
]
