"""A database outage is a 503 the client can retry, not a 500 with a traceback.

An outage is a failure to connect, or a connection that broke under a query (the server went away); a
query that merely failed on a working connection (a deadlock, a bad statement) is an ordinary error.
``DatabaseOutageMiddleware`` answers API requests with the one error shape (code ``database_unavailable``)
and pages with a plain 503 page, both with Retry-After. Commands use ``outage_message()`` for a one-line
explanation instead of a traceback.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager

from django.conf import settings
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpResponse, JsonResponse

from core.errors import error_body

logger = logging.getLogger(__name__)

API_PATH_PREFIX = "/api/"
OUTAGE_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Temporarily unavailable</title></head>'
    "<body><h1>Temporarily unavailable</h1><p>The catalogue cannot be reached right now. "
    "Please try again in a moment.</p></body></html>"
)


def is_database_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached (as opposed to a query that failed)."""
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    for connection in connections.all(initialized_only=True):
        raw = connection.connection
        if raw is None or raw.closed or getattr(raw, "broken", False):
            return True
    return False


def outage_message(exc: BaseException) -> str:
    """One line for a person: what failed, from the driver's first line (its hints span several lines)."""
    detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return f"The database cannot be reached ({detail}). Start it or check DATABASE_URL, then try again."


def retry_after_seconds() -> int:
    return int(getattr(settings, "DATABASE_OUTAGE_RETRY_AFTER_SECONDS", 5))


def outage_response(request) -> HttpResponse:
    """503 in the API's error shape under /api/, a plain page elsewhere; both say when to retry."""
    message = "The database is unavailable right now; retry shortly."
    if request.path_info.startswith(API_PATH_PREFIX):
        response = JsonResponse(error_body("database_unavailable", message), status=503)
    else:
        response = HttpResponse(OUTAGE_PAGE, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(retry_after_seconds())
    response["Cache-Control"] = "no-store"
    return response


class DatabaseOutageMiddleware:
    """Turns a database outage anywhere below it into a 503; put it first in MIDDLEWARE.

    Views (and DRF, which re-raises what its handler leaves alone) reach ``process_exception``. A failure in
    another middleware (a session saved after the view) is already a 500 response by the time it gets here,
    so the ``got_request_exception`` signal marks the request and ``__call__`` swaps that 500 for a 503.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        got_request_exception.connect(_mark_outage, dispatch_uid="core.outage.mark_outage")

    def __call__(self, request):
        response = self.get_response(request)
        if getattr(request, "_database_outage", False) and response.status_code == 500:
            return outage_response(request)
        return response

    def process_exception(self, request, exception):
        if not is_database_outage(exception):
            return None
        logger.warning("database unavailable for %s %s: %s", request.method, request.path, outage_message(exception))
        return outage_response(request)


def _mark_outage(sender, request=None, **kwargs):
    exc = sys.exc_info()[1]
    if request is not None and exc is not None and is_database_outage(exc):
        request._database_outage = True


@contextmanager
def exit_on_database_outage(stream=None):
    """For manage.py: print ``outage_message()`` and exit 1 instead of a traceback when the database is down."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        if not is_database_outage(exc):
            raise
        (stream or sys.stderr).write(outage_message(exc) + "\n")
        raise SystemExit(1) from None
