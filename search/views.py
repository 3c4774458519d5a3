"""Shopper pages: the search page and a product page.

Thin: parse the request, call a ``search.query`` use-case, render. Photo search runs in the browser
against the REST API (``search/static/search/search.js`` only draws what the API returns; words typed beside
a photo refine it); text search also works without JavaScript through ``/?q=``, rendered here with the same
card template. Text search works in every profile (keyword, plus text-to-photo with a text tower), and the
page says which.
"""

from __future__ import annotations

import hashlib
import io
import re

from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST, require_safe
from PIL import Image

from catalog import selectors as catalog_selectors
from catalog.models import Product
from catalog.vocabulary import FILTER_FIELDS
from core.errors import DomainError
from core.photos import FORMATS, megabytes, read_upload
from core.throttling import AtomicRateThrottle
from search import query, selectors
from search.pipeline.base import PipelineError
from search.serializers import SearchParamsSerializer

RESULT_COUNTS = ("6", "12", "24", "48")
DEFAULT_RESULT_COUNT = "12"
MORE_LIKE_THIS = 8
# The page offers every product filter but brand (few shops fill it in).
PAGE_FILTERS = tuple(name for name in FILTER_FIELDS if name != "brand")
KEYWORD_HINT = "Searches product names, descriptions, colours, brands and SKUs (typos and accents are fine)."
HYBRID_HINT = "Searches product names, colours, brands and SKUs, and what the photos show."


class PageSearchThrottle(AtomicRateThrottle):
    """The page's ``/?q=`` search spends the same "search" budget as the API, per client address
    (X-Forwarded-For only counts behind TRUSTED_PROXY_COUNT proxies, as in the API)."""

    scope = "search"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


FIELD_LABELS = {"min_price": "min price", "max_price": "max price", "k": "number of results"}
PHOTO_ID = re.compile(r"^[0-9a-f]{32}$")
QUERY_PHOTOS = "query-photos"
CALIBRATION_SECONDS = 3600


def _shopper_words(text: str) -> str:
    """API parameter names in a message ("below min_price") become the page's labels ("below min price")."""
    for name, label in FIELD_LABELS.items():
        text = re.sub(rf"\b{name}\b", label, text)
    return text


def _field_errors(errors: dict) -> str:
    """Serializer errors as one sentence a shopper can act on ("Max price: must not be below min price.")."""
    parts = []
    for name, messages in errors.items():
        label = "" if name == "non_field_errors" else FIELD_LABELS.get(name, name).capitalize() + ": "
        parts.append(label + _shopper_words(" ".join(str(message) for message in messages)))
    return " ".join(parts)


def score_quantiles() -> list[float]:
    """The current space's baseline of unrelated-pair distances (``selectors.unrelated_distance_quantiles``),
    cached for an hour per space and catalog size: a sample of random pairs moves little between queries."""
    space = query.current_space()
    if space is None:
        return []
    key = f"lookalike:score-quantiles:{space.pk}:{space.garments.count()}"
    quantiles = cache.get(key)
    if quantiles is None:
        quantiles = selectors.unrelated_distance_quantiles(space)
        cache.set(key, quantiles, CALIBRATION_SECONDS)
    return quantiles


def _cards(matches) -> list[dict]:
    """Each match with its calibrated score for ``_card.html``."""
    quantiles = score_quantiles() if matches else []
    return [{"match": m, "score": selectors.match_score(m.distance, quantiles)} for m in matches]


def _text_search(params) -> dict:
    """Run ``/?q=`` through the same filter validation as the API; every failure becomes a message."""
    filters = SearchParamsSerializer(data={key: value for key, value in params.items() if value != ""})
    if not filters.is_valid():
        return {"error": _field_errors(filters.errors)}
    try:
        matches = query.search_by_text(params.get("q", ""), k=filters.validated_data["k"], filters=filters.to_filters())
    except query.QueryError as exc:
        return {"error": _shopper_words(str(exc))}
    except PipelineError:
        return {"error": "Search is unavailable right now. Please try again in a minute."}
    return {"matches": matches}


def _similar_search(product_id: str, params) -> dict:
    """``/?like=<id>``: "more like this" as a page with a URL (the card's button), filters applied."""
    filters = SearchParamsSerializer(data={key: value for key, value in params.items() if value != ""})
    if not filters.is_valid():
        return {"error": _field_errors(filters.errors)}
    product = Product.objects.filter(pk=int(product_id)).first() if product_id.isdigit() else None
    if product is None:
        return {"error": "That product is no longer in the catalog."}
    try:
        matches = query.similar_to_product(product.pk, k=filters.validated_data["k"], filters=filters.to_filters())
    except PipelineError:
        return {"error": "Search is unavailable right now. Please try again in a minute."}
    return {"matches": matches, "like_product": product}


def _text_wording() -> dict:
    """What the text box searches, in the page's words: never promise photo matching without a text tower."""
    hybrid = query.text_tower_available()
    return {"text_scope": "hybrid" if hybrid else "keyword", "text_hint": HYBRID_HINT if hybrid else KEYWORD_HINT}


@require_safe
def home(request):
    """The search page; with ``?q=`` it also shows text-search results rendered on the server."""
    values = {"q": "", "k": DEFAULT_RESULT_COUNT, **{name: "" for name in PAGE_FILTERS}}
    values.update({key: value.strip() for key, value in request.GET.items() if key in values})
    like = request.GET.get("like", "").strip()
    context = {
        "categories": catalog_selectors.categories(),
        "shops": selectors.shops_with_counts(),
        "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
        "max_upload_size": megabytes(settings.MAX_UPLOAD_BYTES),
        "like": like,
        "like_product": None,
        "result_counts": RESULT_COUNTS,
        "filter_fields": ("k", *PAGE_FILTERS),
        "values": values,
        "text_searched": "q" in request.GET and not like and "photo" not in request.GET,
        # /?photo=<id>: search.js fetches the kept photo and searches it; until then the page says so.
        "restoring": bool(PHOTO_ID.match(request.GET.get("photo", ""))) and not like,
        **_text_wording(),
        "matches": [],
        "error": "",
    }
    status = 200
    if context["text_searched"] or like:
        throttle = PageSearchThrottle()
        if throttle.allow_request(request, None):
            context.update(_similar_search(like, values) if like else _text_search(values))
        else:
            wait = throttle.wait()
            context["error"] = f"Too many searches; try again in {wait:.0f} s." if wait else "Too many searches."
            status = 429
    context["cards"] = _cards(context["matches"])
    context["score_quantiles"] = score_quantiles()
    return render(request, "search/home.html", context, status=status)


@require_safe
def product_detail(request, pk: int):
    """A product with its photos, its garments and "more like this" neighbours; 404 for unknown ids."""
    product = get_object_or_404(Product.objects.prefetch_related("images"), pk=pk)
    similar, similar_error = [], ""
    try:
        similar = query.similar_to_product(pk, k=MORE_LIKE_THIS)
    except PipelineError:
        similar_error = "Similar products are unavailable right now. Please try again in a minute."
    return render(
        request,
        "search/product_detail.html",
        {
            "product": product,
            "images": list(product.images.all()),
            "similar": _cards(similar),
            "similar_error": similar_error,
            # Only web links: a stored URL must never become a javascript: link.
            "source_url": product.source_url if (product.source_url or "").startswith(("https://", "http://")) else "",
        },
    )


@require_POST
def store_photo(request):
    """Keep a searched photo so the search has a URL (``/?photo=<id>``) that a reload or a shared link restores.

    Content-addressed (the same photo gets the same id) and checked like an API upload; the page sends the
    photo here beside its API search. Same throttle as search. Stored under ``query-photos/`` in the media
    storage: pruning old ones is an operator's job (``find media/query-photos -mtime +30 -delete``).
    """
    throttle = PageSearchThrottle()
    if not throttle.allow_request(request, None):
        return JsonResponse({"error": {"message": "Too many searches; try again in a minute."}}, status=429)
    try:
        content = read_upload(request.FILES.get("image"))
    except DomainError as exc:
        return JsonResponse({"error": {"code": exc.code, "message": str(exc)}}, status=exc.status)
    photo_id = hashlib.sha256(content).hexdigest()[:32]
    path = f"{QUERY_PHOTOS}/{photo_id}"
    if not default_storage.exists(path):
        default_storage.save(path, ContentFile(content))
    return JsonResponse({"id": photo_id})


@require_safe
def stored_photo(request, photo_id: str):
    """A photo kept by ``store_photo``, served with its own image type (never sniffed as anything else)."""
    path = f"{QUERY_PHOTOS}/{photo_id}"
    if not PHOTO_ID.match(photo_id) or not default_storage.exists(path):
        raise Http404("no such photo")
    handle = default_storage.open(path, "rb")
    try:
        kind = Image.open(io.BytesIO(handle.read(64 * 1024))).format
    except Exception:  # noqa: BLE001 - a header Pillow cannot read is served as plain bytes
        kind = None
    handle.seek(0)
    content_type = f"image/{FORMATS[kind].replace('jpg', 'jpeg').replace('tif', 'tiff')}" if kind in FORMATS else None
    response = FileResponse(handle, content_type=content_type or "application/octet-stream")
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=86400"
    return response
