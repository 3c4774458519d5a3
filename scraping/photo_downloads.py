"""The photos of stored products: reused from earlier downloads when possible, else fetched by a thread pool.

A photo URL shared by several pages of a run is downloaded once; every page waiting for it gets the bytes.
Downloads are pure I/O; their results come back to the main thread through the crawl's results queue as
("image", (url, DownloadedImage | error text)), and only the main thread stores them.
"""

from __future__ import annotations

import logging
import queue
from concurrent.futures import ThreadPoolExecutor

from core.photos import PhotoError
from scraping import services
from scraping.download import DownloadedImage, FetchError, ImageDownloader
from scraping.page_results import PagePhotos, PageState
from scraping.robots import RobotsCache
from scraping.safety import UnsafeURL

logger = logging.getLogger(__name__)


class PhotoDownloads:
    """Book-keeping of one run's photo downloads: who waits for which URL, and how many are in flight."""

    def __init__(self, *, downloader: ImageDownloader, robots: RobotsCache, results: queue.Queue, workers: int) -> None:
        self.downloader = downloader
        self.robots = robots
        self.results = results
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crawl-image")
        self.in_flight = 0
        self._waiters: dict[str, list[PageState]] = {}

    def fetch_for(self, page: PageState, urls: list[str]) -> None:
        """Start on the photos of ``page``'s stored product; ``page.photos.pending`` counts those under way."""
        page.photos = PagePhotos()
        for url in urls:
            self._fetch_one(page, url)

    def _fetch_one(self, page: PageState, url: str) -> None:
        try:
            action, _image = services.reuse_stored_photo(page.product, url)
        except PhotoError as exc:
            action = "download"
            logger.warning("stored photo from %s could not be reused: %s", url, exc)
        if action in ("known", "duplicate"):
            page.photos.duplicate += 1
            return
        if action == "new":
            page.photos.new += 1
            return
        page.photos.pending += 1
        waiters = self._waiters.get(url)
        if waiters is not None:  # the same photo on two pages of this run: download it once
            waiters.append(page)
            return
        self._waiters[url] = [page]
        self.in_flight += 1
        future = self.executor.submit(self._download, url, page.referer)
        future.add_done_callback(lambda done, url=url: self.results.put(("image", (url, done.result()))))

    def arrived_many(self, results: list[tuple[str, DownloadedImage | str]]) -> list[PageState]:
        """Store finished downloads for every page waiting for them; returns the pages now complete.

        The photos go in together (``services.store_photos``: one transaction, a few bulk queries).
        """
        finished = [(url, result, self._waiters.pop(url, [])) for url, result in results]
        downloads = [
            (page.product, result) for _url, result, pages in finished if not isinstance(result, str) for page in pages
        ]
        outcomes = iter(services.store_photos(downloads))
        complete = []
        for url, result, pages in finished:
            self.in_flight -= 1
            for page in pages:
                if isinstance(result, str):
                    page.photos.lost(url, result)
                else:
                    _image, created = next(outcomes)
                    page.photos.stored(created)
                page.photos.pending -= 1
                if page.photos.pending == 0:
                    complete.append(page)
        return complete

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def _download(self, url: str, referer: str) -> DownloadedImage | str:
        """The photo, or why it could not be had (never raises: it runs in the download pool)."""
        try:
            verdict = self.robots.verdict(url)
            if not verdict.allowed:
                return verdict.reason
            return self.downloader.download(url, referer=referer)
        except (FetchError, UnsafeURL) as exc:
            return str(exc)
        except Exception as exc:
            logger.exception("downloading %s failed unexpectedly", url)
            return f"internal error: {exc!r}"
