"""Tables of neutral code: the throttle's per-client request history (see ``core.throttling``)."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models


class ThrottleHistory(models.Model):
    """One row per throttle key (scope + client): the times of its allowed requests still in the window.

    A row of its own rather than the cache: one ``INSERT ... ON CONFLICT DO UPDATE`` checks and records a
    request atomically across processes and threads, which a cache's get-then-set cannot.
    """

    key = models.TextField(primary_key=True)
    history = ArrayField(models.FloatField(), default=list)  # epoch seconds, oldest first
    expires = models.FloatField(db_index=True)  # after it the history is empty: the row may be deleted

    class Meta:
        db_table = "core_throttle_history"

    def __str__(self) -> str:
        return self.key
