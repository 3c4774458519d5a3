"""The pages a run still has to visit, in the order found, each URL (without its fragment) once per run."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from scraping.page_fetch import without_fragment


class Frontier:
    def __init__(self) -> None:
        self._queue: deque[tuple[str, int]] = deque()
        self._seen: set[str] = set()

    def __len__(self) -> int:
        return len(self._queue)

    def mark_seen(self, urls: Iterable[str]) -> None:
        """URLs that are done already (or waiting elsewhere): never added again."""
        self._seen.update(urls)

    def add(self, pages: Iterable[str | tuple[str, int]]) -> list[tuple[str, int]]:
        """Queue URLs (depth 0) or (URL, depth) pairs not seen before; returns those that were new."""
        added = []
        for page in pages:
            url, depth = page if isinstance(page, tuple) else (page, 0)
            url = without_fragment(url)
            if url in self._seen:
                continue
            self._seen.add(url)
            self._queue.append((url, depth))
            added.append((url, depth))
        return added

    def restore(self, pages: Iterable[tuple[str, int]]) -> None:
        """Queue pages recorded as pending by an earlier slice of the run, as they are."""
        for url, depth in pages:
            self._seen.add(url)
            self._queue.append((url, depth))

    def pop(self) -> tuple[str, int]:
        return self._queue.popleft()

    def drain(self) -> list[tuple[str, int]]:
        left = list(self._queue)
        self._queue.clear()
        return left
