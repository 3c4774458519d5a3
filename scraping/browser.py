"""One headless Chromium, driven through Selenium, that loads a page the way a shopper's browser would.

``load()`` waits for the page's scripts to settle, then scrolls through it step by step (lazy loaders
built on IntersectionObserver only fire for what passes through the viewport) and again until a round
brings no new image URL and the page stops growing. The rendered DOM is returned as HTML for
``extract.py``; the browser never touches the database.
"""

from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import InvalidSessionIdException, TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service

logger = logging.getLogger(__name__)

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1024",
    "--mute-audio",
)

# Resolves after ``quiet`` ms without DOM changes that matter (nodes added, image sources set), or ``max`` ms.
WAIT_QUIET_JS = """
const [quiet, max, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const start = Date.now();
let last = Date.now();
const observer = new MutationObserver(() => { last = Date.now(); });
observer.observe(document.documentElement, {subtree: true, childList: true, attributes: true,
  attributeFilter: ['src', 'srcset', 'data-src', 'data-srcset', 'content']});
(function check() {
  const now = Date.now();
  if (now - last >= quiet || now - start >= max) { observer.disconnect(); done(true); }
  else setTimeout(check, 40);
})();
"""

# Scrolls from ``from`` to the bottom in viewport-sized steps, pausing so observers and loaders can run.
SCROLL_JS = """
const [from, pause, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const step = Math.max(200, Math.floor(window.innerHeight * 0.8));
let y = Math.max(0, from);
(function tick() {
  window.scrollTo(0, y);
  const bottom = document.documentElement.scrollHeight;
  if (y >= bottom - window.innerHeight) { done(bottom); return; }
  y += step;
  setTimeout(tick, pause);
})();
"""

# Every URL an image could come from, and the natural size of images already decoded.
IMAGE_STATE_JS = """
const urls = new Set();
const sizes = {};
const lazy = ['data-src', 'data-srcset', 'data-lazy-src', 'data-original', 'data-lazy', 'data-lazy-srcset'];
for (const img of document.querySelectorAll('img')) {
  for (const value of [img.currentSrc, img.src, img.getAttribute('srcset'), ...lazy.map(a => img.getAttribute(a))]) {
    if (value) urls.add(value);
  }
  if (img.complete && img.naturalWidth && img.currentSrc) sizes[img.currentSrc] = [img.naturalWidth, img.naturalHeight];
}
for (const source of document.querySelectorAll('picture source')) {
  for (const value of [source.getAttribute('srcset'), source.getAttribute('data-srcset')]) if (value) urls.add(value);
}
return {urls: Array.from(urls), sizes: sizes, height: document.documentElement.scrollHeight};
"""

NAVIGATION_STATUS_JS = """
const entry = performance.getEntriesByType('navigation')[0];
return entry && entry.responseStatus ? entry.responseStatus : null;
"""


class BrowserUnavailable(RuntimeError):
    """Chromium or chromedriver is missing or does not start; the message says what to install or set."""


class PageLoadError(Exception):
    """A page that could not be loaded; ``retryable`` for timeouts, network errors and 5xx answers."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


@dataclass
class PageSnapshot:
    requested_url: str
    final_url: str
    status: int | None
    html: str
    rendered_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    scroll_rounds: int = 0
    image_urls_seen: int = 0
    load_seconds: float = 0.0


@dataclass(frozen=True)
class BrowserConfig:
    binary: str
    driver_path: str
    user_agent: str
    page_timeout: float = 30.0
    scroll_max_seconds: float = 20.0
    scroll_pause: float = 0.12
    quiet_ms: int = 250
    settle_max_ms: int = 5000


class BrowserSession:
    """A Chromium instance of its own (fresh profile in a temporary directory), restarted if it dies."""

    def __init__(self, config: BrowserConfig) -> None:
        self.config = config
        self.driver: webdriver.Chrome | None = None
        self._profile_dir: str | None = None

    def __enter__(self) -> BrowserSession:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self) -> None:
        if self.driver is not None:
            return
        for path, setting in ((self.config.binary, "CHROMIUM_BINARY"), (self.config.driver_path, "CHROMEDRIVER_PATH")):
            if not Path(path).is_file():
                raise BrowserUnavailable(
                    f"{path} does not exist: install Chromium and its driver "
                    f"(apt-get install chromium chromium-driver) or point {setting} at them"
                )
        self._profile_dir = tempfile.mkdtemp(prefix="lookalike-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = self.config.binary
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self._profile_dir}")
        options.page_load_strategy = "normal"
        try:
            # An explicit driver path and binary: Selenium Manager has nothing to look up or download.
            self.driver = webdriver.Chrome(service=Service(executable_path=self.config.driver_path), options=options)
        except WebDriverException as exc:
            self._remove_profile()
            raise BrowserUnavailable(f"Chromium did not start: {exc.msg or exc}") from exc
        browser_agent = self.driver.execute_script("return navigator.userAgent")
        # Honest: the real browser's agent string with the crawler's name and contact appended.
        self.driver.execute_cdp_cmd(
            "Network.setUserAgentOverride", {"userAgent": f"{browser_agent} {self.config.user_agent}"}
        )
        self.driver.set_page_load_timeout(self.config.page_timeout)
        self.driver.set_script_timeout(max(self.config.scroll_max_seconds, self.config.settle_max_ms / 1000) + 10)

    def close(self) -> None:
        if self.driver is not None:
            try:
                self.driver.quit()
            except WebDriverException:
                logger.warning("Chromium did not quit cleanly", exc_info=True)
            self.driver = None
        self._remove_profile()

    def _remove_profile(self) -> None:
        if self._profile_dir:
            shutil.rmtree(self._profile_dir, ignore_errors=True)
            self._profile_dir = None

    def load(self, url: str) -> PageSnapshot:
        """Load, settle, scroll until no new images appear, and snapshot the rendered page."""
        self.start()
        driver = self.driver
        started = time.monotonic()
        try:
            driver.get(url)
        except TimeoutException as exc:
            self._stop_loading()
            raise PageLoadError(
                f"{url} did not finish loading within {self.config.page_timeout:g}s", retryable=True
            ) from exc
        except InvalidSessionIdException as exc:
            self.close()
            raise PageLoadError(f"the browser died while loading {url}", retryable=True) from exc
        except WebDriverException as exc:
            message = (exc.msg or str(exc)).splitlines()[0]
            if "net::" not in message:
                self.close()  # not a network error: the browser itself is in trouble, start a new one
            raise PageLoadError(f"{url} could not be loaded ({message})", retryable=True) from exc
        try:
            status = driver.execute_script(NAVIGATION_STATUS_JS)
            if status is not None and status >= 400:
                raise PageLoadError(
                    f"{url} answered HTTP {status}", retryable=status >= 500 or status == 429, status=status
                )
            self._settle()
            rounds, seen, sizes = self._scroll_until_no_new_images(started)
            html = driver.page_source
            final_url = driver.current_url
        except TimeoutException as exc:
            raise PageLoadError(f"{url} kept the browser busy for too long", retryable=True) from exc
        except WebDriverException as exc:
            self.close()
            raise PageLoadError(f"the browser failed on {url} ({(exc.msg or str(exc)).splitlines()[0]})") from exc
        return PageSnapshot(
            requested_url=url,
            final_url=final_url,
            status=status,
            html=html,
            rendered_sizes=sizes,
            scroll_rounds=rounds,
            image_urls_seen=len(seen),
            load_seconds=time.monotonic() - started,
        )

    def _stop_loading(self) -> None:
        try:
            self.driver.execute_script("window.stop();")
        except WebDriverException:
            self.close()

    def _settle(self) -> None:
        self.driver.execute_async_script(WAIT_QUIET_JS, self.config.quiet_ms, self.config.settle_max_ms)

    def _scroll_until_no_new_images(self, started: float) -> tuple[int, set[str], dict]:
        """Scroll rounds until one adds no image URL and the page height is unchanged (or time is up)."""
        seen: set[str] = set()
        sizes: dict[str, tuple[int, int]] = {}
        deadline = started + self.config.page_timeout + self.config.scroll_max_seconds
        scroll_from = 0
        last_height = -1
        rounds = 0
        pause_ms = int(self.config.scroll_pause * 1000)
        while True:
            rounds += 1
            height = self.driver.execute_async_script(SCROLL_JS, scroll_from, pause_ms)
            self._settle()
            state = self.driver.execute_script(IMAGE_STATE_JS)
            new_urls = set(state["urls"]) - seen
            seen.update(state["urls"])
            sizes.update({url: tuple(size) for url, size in state["sizes"].items()})
            grown = state["height"] != last_height
            if rounds > 1 and not new_urls and not grown:
                return rounds, seen, sizes
            if time.monotonic() > deadline:
                logger.info("stopped scrolling %s after %d rounds: time is up", self.driver.current_url, rounds)
                return rounds, seen, sizes
            last_height = state["height"]
            # Lazy images above were triggered already; a new round only needs to cover what was added.
            scroll_from = max(0, min(height, state["height"]) - 2 * self.driver.execute_script("return innerHeight"))


class BrowserPool:
    """Browsers lent to crawl workers; a pool can outlive one run (the tests share one per module)."""

    def __init__(self, config: BrowserConfig) -> None:
        self.config = config
        self._idle: queue.LifoQueue[BrowserSession] = queue.LifoQueue()
        self._all: list[BrowserSession] = []
        self._lock = threading.Lock()

    def acquire(self) -> BrowserSession:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            session = BrowserSession(self.config)
            with self._lock:
                self._all.append(session)
            return session

    def release(self, session: BrowserSession) -> None:
        self._idle.put(session)

    def close(self) -> None:
        with self._lock:
            sessions, self._all = self._all, []
        for session in sessions:
            session.close()
