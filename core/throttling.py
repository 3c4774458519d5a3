"""DRF throttles whose budget holds across processes and threads: each request is checked and recorded by
one atomic statement in PostgreSQL.

DRF's ``SimpleRateThrottle`` reads the history from the cache and writes it back, so concurrent requests
(threads, gunicorn processes, hosts) overwrite each other's hits and more than the rate gets through
(issue 15). Here the row lock taken by ``INSERT ... ON CONFLICT DO UPDATE`` serialises requests of one key,
and the update happens only while the window holds fewer than the rate's requests. The semantics stay
DRF's (a sliding window: at most N allowed requests in any ``duration`` seconds), and so do the rate
settings, the cache keys and ``wait()`` (Retry-After). The cache is not used for throttling any more.
"""

from __future__ import annotations

import random

from django.db import connection
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from core.models import ThrottleHistory

TABLE = ThrottleHistory._meta.db_table
# About one request in CLEANUP_ODDS deletes the rows of clients whose window has emptied.
CLEANUP_ODDS = 200

# Allowed: the row is inserted or updated (expired times dropped, this one appended) and returned.
# Refused: the WHERE keeps the row as it is and nothing is returned. Both decided under the row's lock.
_HIT = f"""
INSERT INTO {TABLE} AS t (key, history, expires)
VALUES (%(key)s, ARRAY[%(now)s::float8], %(expires)s)
ON CONFLICT (key) DO UPDATE
SET history = ARRAY(SELECT h FROM unnest(t.history) AS h WHERE h > %(cutoff)s ORDER BY h) || %(now)s::float8,
    expires = %(expires)s
WHERE (SELECT count(*) FROM unnest(t.history) AS h WHERE h > %(cutoff)s) < %(limit)s
RETURNING history
"""


def record_hit(key: str, *, now: float, duration: float, limit: int) -> tuple[bool, list[float]]:
    """Allow and record one request of ``key`` if its last ``duration`` seconds hold fewer than ``limit``.

    Returns (allowed, the times of the key's allowed requests in the window, newest first as DRF keeps them).
    """
    params = {"key": key, "now": now, "cutoff": now - duration, "expires": now + duration, "limit": limit}
    with connection.cursor() as cursor:
        if limit > 0:
            cursor.execute(_HIT, params)
            row = cursor.fetchone()
        else:
            row = None
        if row is None:  # refused: read the window for Retry-After (the decision is already made)
            cursor.execute(f"SELECT history FROM {TABLE} WHERE key = %s", [key])
            found = cursor.fetchone()
            history = [h for h in (found[0] if found else []) if h > now - duration]
        else:
            history = row[0]
        if random.randrange(CLEANUP_ODDS) == 0:
            cursor.execute(f"DELETE FROM {TABLE} WHERE expires < %s", [now])
    return row is not None, sorted(history, reverse=True)


class AtomicRateThrottle(SimpleRateThrottle):
    """``SimpleRateThrottle`` with the check-and-record done atomically in the database (see module doc)."""

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        allowed, self.history = record_hit(self.key, now=self.now, duration=self.duration, limit=self.num_requests)
        # A racer that read the clock later may have recorded first: never count wait() from before its time.
        self.now = max([self.now, *self.history])
        return self.throttle_success() if allowed else self.throttle_failure()

    def throttle_success(self):
        return True  # already recorded by record_hit


class AtomicScopedRateThrottle(ScopedRateThrottle, AtomicRateThrottle):
    """``ScopedRateThrottle`` (a view's ``throttle_scope``, per user or client address), atomic."""
