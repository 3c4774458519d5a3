"""Django's own error pages (handler400/403/404/500): the one JSON error shape under /api/, HTML elsewhere.

DRF shapes errors raised inside its views; these cover what happens outside them (an unknown /api/ URL,
a request Django refuses before any view, an unexpected failure), so an API client never parses HTML.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.views import defaults

from core.errors import error_body

API_PREFIX = "/api/"


def _is_api(request) -> bool:
    return request.path.startswith(API_PREFIX)


def bad_request(request, exception=None):
    if _is_api(request):
        return JsonResponse(error_body("bad_request", "The request was refused as malformed."), status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if _is_api(request):
        message = "You do not have permission to perform this action."
        return JsonResponse(error_body("permission_denied", message), status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception=None):
    if _is_api(request):
        return JsonResponse(error_body("not_found", f"There is no API endpoint at {request.path}."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        message = "Something went wrong on our side; the error was logged. Try again later."
        return JsonResponse(error_body("server_error", message), status=500)
    return defaults.server_error(request)
