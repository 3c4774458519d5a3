"""Shopper pages: the search page and a product page.

Thin: parse the request, call a ``search.query`` use-case, render. Photo search runs in the browser
against the REST API (``search/static/search/search.js`` only draws what the API returns; words typed beside
a photo refine it); text search also works without JavaScript through ``/?q=``, rendered here with the same
card template. Text search works in every profile (keyword, plus text-to-photo with a text tower), and the
page says which.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe
from rest_framework.throttling import SimpleRateThrottle

from catalog import selectors as catalog_selectors
from catalog.models import Product
from catalog.vocabulary import FILTER_FIELDS
from search import query
from search.pipeline.base import PipelineError
from search.serializers import SearchParamsSerializer

RESULT_COUNTS = ("6", "12", "24", "48")
DEFAULT_RESULT_COUNT = "12"
MORE_LIKE_THIS = 8
# The page offers every product filter but brand (few shops fill it in).
PAGE_FILTERS = tuple(name for name in FILTER_FIELDS if name != "brand")
KEYWORD_HINT = "Searches product names, descriptions, colours, brands and SKUs (typos and accents are fine)."
HYBRID_HINT = "Searches product names, colours, brands and SKUs, and what the photos show."


class PageSearchThrottle(SimpleRateThrottle):
    """The page's ``/?q=`` search spends the same "search" budget as the API, per client address
    (X-Forwarded-For only counts behind TRUSTED_PROXY_COUNT proxies, as in the API)."""

    scope = "search"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def _field_errors(errors: dict) -> str:
    """Serializer errors as one sentence a shopper can act on ("Max price: must not be below min_price.")."""
    parts = []
    for name, messages in errors.items():
        label = "" if name == "non_field_errors" else name.replace("_", " ").capitalize() + ": "
        parts.append(label + " ".join(str(message) for message in messages))
    return " ".join(parts)


def _text_search(params) -> dict:
    """Run ``/?q=`` through the same filter validation as the API; every failure becomes a message."""
    filters = SearchParamsSerializer(data={key: value for key, value in params.items() if value != ""})
    if not filters.is_valid():
        return {"error": _field_errors(filters.errors)}
    try:
        matches = query.search_by_text(params.get("q", ""), k=filters.validated_data["k"], filters=filters.to_filters())
    except query.QueryError as exc:
        return {"error": str(exc)}
    except PipelineError as exc:
        return {"error": f"Search is unavailable right now: {exc}"}
    return {"matches": matches}


def _text_wording() -> dict:
    """What the text box searches, in the page's words: never promise photo matching without a text tower."""
    hybrid = query.text_tower_available()
    return {"text_scope": "hybrid" if hybrid else "keyword", "text_hint": HYBRID_HINT if hybrid else KEYWORD_HINT}


@require_safe
def home(request):
    """The search page; with ``?q=`` it also shows text-search results rendered on the server."""
    values = {"q": "", "k": DEFAULT_RESULT_COUNT, **{name: "" for name in PAGE_FILTERS}}
    values.update({key: value.strip() for key, value in request.GET.items() if key in values})
    context = {
        "categories": catalog_selectors.categories(),
        "result_counts": RESULT_COUNTS,
        "filter_fields": ("k", *PAGE_FILTERS),
        "values": values,
        "text_searched": "q" in request.GET,
        **_text_wording(),
        "matches": [],
        "error": "",
    }
    status = 200
    if context["text_searched"]:
        throttle = PageSearchThrottle()
        if throttle.allow_request(request, None):
            context.update(_text_search(values))
        else:
            wait = throttle.wait()
            context["error"] = f"Too many searches; try again in {wait:.0f} s." if wait else "Too many searches."
            status = 429
    return render(request, "search/home.html", context, status=status)


@require_safe
def product_detail(request, pk: int):
    """A product with its photos, its garments and "more like this" neighbours; 404 for unknown ids."""
    product = get_object_or_404(Product.objects.prefetch_related("images"), pk=pk)
    garments = [garment for garment in catalog_selectors.garments_of_product(pk) if garment.cutout]
    similar, similar_error = [], ""
    try:
        similar = query.similar_to_product(pk, k=MORE_LIKE_THIS)
    except PipelineError as exc:
        similar_error = f"Similar products are unavailable right now: {exc}"
    return render(
        request,
        "search/product_detail.html",
        {
            "product": product,
            "images": list(product.images.all()),
            "garments": garments,
            "similar": similar,
            "similar_error": similar_error,
            # Only web links: a stored URL must never become a javascript: link.
            "source_url": product.source_url if (product.source_url or "").startswith(("https://", "http://")) else "",
        },
    )
