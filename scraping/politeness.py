"""Per-host politeness shared by the browser workers and the image downloader of one run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class HostThrottle:
    """At most ``per_host`` requests in flight per host, and ``delay`` seconds between two request starts.

    A host's delay can be raised (robots.txt ``Crawl-delay``) but never lowered below the run's delay.
    """

    def __init__(self, *, delay: float, per_host: int = 1, clock=time.monotonic, sleep=time.sleep) -> None:
        if per_host < 1:
            raise ValueError("per-host concurrency must be at least 1")
        self.delay = max(0.0, delay)
        self.per_host = per_host
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_start: dict[str, float] = {}
        self._host_delay: dict[str, float] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}

    def set_host_delay(self, host: str, delay: float | None) -> None:
        if delay is not None:
            with self._lock:
                self._host_delay[host] = max(self.delay, float(delay))

    def _reserve_start(self, host: str) -> float:
        """Book the next start time for ``host``; returns how long the caller must wait for it."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next_start.get(host, now))
            self._next_start[host] = start + self._host_delay.get(host, self.delay)
            return start - now

    @contextmanager
    def request(self, host: str) -> Iterator[None]:
        """Hold one of the host's slots for the duration of a request, started no sooner than polite."""
        with self._lock:
            slot = self._slots.setdefault(host, threading.BoundedSemaphore(self.per_host))
        with slot:
            wait = self._reserve_start(host)
            if wait > 0:
                self._sleep(wait)
            yield
