"""One error family: every domain exception carries its own code and HTTP status.

In the spirit of HackSoftware's Django-Styleguide ``ApplicationError``: services and use-cases raise a
``DomainError`` subclass, and one API handler (``core.api_errors``) turns any of them into the one error
shape, so no handler has to know each app's exceptions.
"""

from __future__ import annotations


class DomainError(Exception):
    """A refusal a caller can act on. ``code`` is stable for machines; the message is for people."""

    code: str = "error"
    status: int = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, details=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details if details is not None else {}


def error_body(code: str, message: str, details=None) -> dict:
    """The one error shape of every API answer: ``{"error": {"code", "message", "details"}}``."""
    return {"error": {"code": code, "message": message, "details": details if details is not None else {}}}
