"""The REST API's one exception handler: any ``DomainError`` and every DRF error get the one error shape."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, UnreadablePostError
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from core.errors import DomainError, error_body


def _request_refused(exc: SuspiciousOperation) -> DomainError:
    if isinstance(exc, RequestDataTooBig):
        return DomainError("The request's form fields are larger than allowed.", code="too_large", status=413)
    if isinstance(exc, TooManyFieldsSent):
        return DomainError("The request has more form fields than allowed.", code="too_many_fields")
    if isinstance(exc, TooManyFilesSent):
        return DomainError("The request has more files than allowed.", code="too_many_files")
    return DomainError("The request was refused as malformed.", code="bad_request")


def exception_handler(exc, context):
    """``{"error": {"code", "message", "details"}}`` with the error's own status; None lets DRF re-raise."""
    if isinstance(exc, SuspiciousOperation):  # raised by Django's request parsing: still the one shape
        exc = _request_refused(exc)
    elif isinstance(exc, UnreadablePostError):  # the body stopped arriving (e.g. the read timeout)
        if isinstance(exc.__cause__, TimeoutError):
            exc = DomainError("The request body did not arrive in time.", code="request_timeout", status=408)
        else:
            exc = DomainError("The request body could not be read.", code="unreadable_body")
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
