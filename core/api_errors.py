"""The REST API's one exception handler: any ``DomainError`` and every DRF error get the one error shape."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from core.errors import DomainError, error_body


def exception_handler(exc, context):
    """``{"error": {"code", "message", "details"}}`` with the error's own status; None lets DRF re-raise."""
    if isinstance(exc, DomainError):
        set_rollback()
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    if isinstance(detail, dict) and set(detail) == {"detail"}:
        message, details = str(detail["detail"]), {}
    elif isinstance(detail, dict | list):
        message, details = "Some fields are invalid.", detail
    else:
        message, details = str(detail), {}
    codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
    code = codes if isinstance(codes, str) else ("invalid" if response.status_code == 400 else "error")
    if isinstance(exc, exceptions.Throttled):
        message = f"Too many searches; try again in {exc.wait:.0f} s." if exc.wait else "Too many searches."
    response.data = error_body(code, message, details)
    return response


class ErrorSerializer(serializers.Serializer):
    """Documents the one error shape for the OpenAPI schema."""

    error = serializers.DictField(help_text='{"code": ..., "message": ..., "details": ...}')
