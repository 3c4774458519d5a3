"""One headless Chromium, driven through Selenium, that loads a page the way a shopper's browser would.

``load()`` waits for the page's scripts to settle, then scrolls through it step by step (lazy loaders
built on IntersectionObserver only fire for what passes through the viewport) and again until a round
brings no new image URL and the page stops growing. The rendered DOM is returned as HTML for
``extract.py``; the browser never touches the database.

Every request Chromium makes goes through its own ``GuardProxy`` (see ``browser_guard.py``), which applies the
crawler's ``AddressPolicy``; page dialogs (alert, confirm, prompt) are answered at once so that they cannot
stall a load.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.common.exceptions import (
    InvalidSessionIdException,
    NoAlertPresentException,
    TimeoutException,
    UnexpectedAlertPresentException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service

from scraping.browser_guard import BlockedRequest, GuardProxy
from scraping.safety import AddressPolicy

logger = logging.getLogger(__name__)

# Reads of a page that a dialog opened in the middle of, before the page counts as failed.
DIALOG_RETRIES = 3
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
    # "<-loopback>" removes Chromium's implicit bypass of localhost: loopback goes through the proxy too.
    "--proxy-bypass-list=<-loopback>",
)

# Runs in every frame before the page's scripts: dialogs answer at once, as a user who says "no" would.
# (A beforeunload prompt needs nothing: chromedriver accepts it when it navigates away.)
SILENCE_DIALOGS_JS = """
(() => {
  const answers = {alert: () => undefined, confirm: () => false, prompt: () => null};
  for (const [name, answer] of Object.entries(answers)) {
    Object.defineProperty(window, name, {value: answer, writable: true, configurable: true});
  }
})();
"""

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

# Scrolls from ``from`` towards the bottom in viewport-sized steps, pausing so observers and loaders can run,
# for at most ``budget`` ms: a very tall page is covered over several calls, none outlasting the script timeout.
# Answers how far it got and whether that was the bottom.
SCROLL_JS = """
const [from, pause, budget, done] = [arguments[0], arguments[1], arguments[2], arguments[arguments.length - 1]];
const step = Math.max(200, Math.floor(window.innerHeight * 0.8));
const start = Date.now();
let y = Math.max(0, from);
(function tick() {
  window.scrollTo(0, y);
  const bottom = document.documentElement.scrollHeight;
  if (y >= bottom - window.innerHeight) { done({reached: bottom, bottom: true}); return; }
  if (Date.now() - start >= budget) { done({reached: y + window.innerHeight, bottom: false}); return; }
  y += step;
  setTimeout(tick, pause);
})();
"""

# After a load timeout: stop what is still loading and say whether a document worth reading is there.
STOP_AND_PROBE_JS = """
window.stop();
const nav = performance.getEntriesByType('navigation')[0];
return {ready: document.readyState, href: location.href, responded: !!(nav && nav.responseStart > 0),
        elements: document.body ? document.body.getElementsByTagName('*').length : 0};
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

# Chromium shows a failed navigation (redirect loop, refused tunnel, unsafe port...) as an error page at
# chrome-error://chromewebdata/ instead of failing the WebDriver command; the page names the net error.
NET_ERROR_PAGE_JS = """
if (!location.href.startsWith('chrome-error:')) return null;
const code = document.querySelector('.error-code');
return (code && code.textContent.trim()) || '';
"""

NAVIGATION_STATUS_JS = """
const entry = performance.getEntriesByType('navigation')[0];
return entry && entry.responseStatus ? entry.responseStatus : null;
"""


class BrowserUnavailable(RuntimeError):
    """Chromium or chromedriver is missing or does not start; the message says what to install or set."""


class PageLoadError(Exception):
    """A page that could not be loaded; ``retryable`` for timeouts, network errors, redirect loops and 5xx answers.

    ``reason`` says which kind of failure it was (one of the ``REASON_*`` names below), so the crawler can
    record a redirect loop or a refused redirect for what it is; ``net_error`` is Chromium's code
    ("ERR_TOO_MANY_REDIRECTS") where there is one, ``final_url`` the URL the navigation ended on.
    """

    REASON_TIMEOUT = "timeout"
    REASON_NETWORK = "network"
    REASON_REDIRECT_LOOP = "redirect_loop"
    REASON_REFUSED = "refused"
    REASON_HTTP_STATUS = "http_status"
    REASON_BROWSER = "browser"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        status: int | None = None,
        reason: str = REASON_BROWSER,
        net_error: str | None = None,
        final_url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.reason = reason
        self.net_error = net_error
        self.final_url = final_url

    @property
    def redirect_loop(self) -> bool:
        return self.reason == self.REASON_REDIRECT_LOOP

    @property
    def refused(self) -> bool:
        """The navigation (or one of its redirects) went to an address the crawler's AddressPolicy refuses."""
        return self.reason == self.REASON_REFUSED


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
    # The load event had not fired by the page timeout: the DOM was read as it stood then.
    load_timed_out: bool = False


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
    # Which addresses the browser may reach; None: the settings' CRAWL_ALLOW_PRIVATE_ADDRESSES, CRAWL_ALLOWED_NETWORKS.
    policy: AddressPolicy | None = None


class _LoadStillPending(Exception):
    """The first command after get() timed out waiting for a load that get() had not waited for."""


class BrowserSession:
    """A Chromium instance of its own (fresh profile in a temporary directory), restarted if it dies."""

    def __init__(self, config: BrowserConfig) -> None:
        self.config = config
        # Read from the settings at the first start when the config names none; kept across restarts.
        self.policy: AddressPolicy | None = config.policy
        self.driver: webdriver.Chrome | None = None
        self.guard: GuardProxy | None = None
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
        if self.policy is None:
            self.policy = AddressPolicy.from_settings()
        self.guard = GuardProxy(self.policy).start()
        self._profile_dir = tempfile.mkdtemp(prefix="lookalike-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = self.config.binary
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--proxy-server={self.guard.proxy_server}")
        options.add_argument(f"--user-data-dir={self._profile_dir}")
        # WebRTC would otherwise send STUN/TURN over UDP straight to any address, around the proxy. (A preference:
        # the --force-webrtc-ip-handling-policy switch had no effect on Chromium 156.)
        options.add_experimental_option("prefs", {"webrtc.ip_handling_policy": "disable_non_proxied_udp"})
        options.page_load_strategy = "normal"
        # A dialog that slips past SILENCE_DIALOGS_JS is dismissed instead of failing the next command.
        options.unhandled_prompt_behavior = "dismiss"
        try:
            # An explicit driver path and binary: Selenium Manager has nothing to look up or download.
            self.driver = webdriver.Chrome(service=Service(executable_path=self.config.driver_path), options=options)
        except WebDriverException as exc:
            self._stop_guard()
            self._remove_profile()
            raise BrowserUnavailable(f"Chromium did not start: {exc.msg or exc}") from exc
        for control_url in (self.driver.service.service_url, self._debugger_url()):
            if control_url and urlsplit(control_url).port:
                self.guard.forbid_loopback_port(urlsplit(control_url).port)
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": SILENCE_DIALOGS_JS})
        browser_agent = self.driver.execute_script("return navigator.userAgent")
        # Honest: the real browser's agent string with the crawler's name and contact appended.
        self.driver.execute_cdp_cmd(
            "Network.setUserAgentOverride", {"userAgent": f"{browser_agent} {self.config.user_agent}"}
        )
        self.driver.set_page_load_timeout(self.config.page_timeout)
        self.driver.set_script_timeout(self._script_timeout())

    def close(self) -> None:
        if self.driver is not None:
            try:
                self.driver.quit()
            except WebDriverException:
                logger.warning("Chromium did not quit cleanly", exc_info=True)
            self.driver = None
        self._stop_guard()
        self._remove_profile()

    def _debugger_url(self) -> str | None:
        address = (self.driver.capabilities.get("goog:chromeOptions") or {}).get("debuggerAddress")
        return f"http://{address}" if address else None

    def _stop_guard(self) -> None:
        if self.guard is not None:
            self.guard.close()
            self.guard = None

    def _remove_profile(self) -> None:
        if self._profile_dir:
            shutil.rmtree(self._profile_dir, ignore_errors=True)
            self._profile_dir = None

    def load(self, url: str) -> PageSnapshot:
        """Load, settle, scroll until no new images appear, and snapshot the rendered page."""
        self.start()
        driver = self.driver
        self.guard.take_blocked()  # what earlier pages had blocked is not this page's business
        started = time.monotonic()
        load_timed_out = False
        try:
            driver.get(url)
        except TimeoutException as exc:
            self._read_after_load_timeout(url, exc)
            load_timed_out = True
        except InvalidSessionIdException as exc:
            self.close()
            raise PageLoadError(f"the browser died while loading {url}", retryable=True) from exc
        except WebDriverException as exc:
            message = (exc.msg or str(exc)).splitlines()[0]
            if "net::" not in message:
                self.close()  # not a network error: the browser itself is in trouble, start a new one
                raise PageLoadError(f"{url} could not be loaded ({message})", retryable=True) from exc
            net_error = message.split("net::", 1)[1].split()[0]
            raise self._navigation_failure(url, net_error, detail=message) from exc
        dialogs = 0
        while True:
            try:
                return self._snapshot(url, started, load_timed_out)
            except _LoadStillPending as pending:
                # get() came back before the load event, and the first command then waited for it until the
                # page timeout: the same case as get() timing out itself (this happens once: the flag is set).
                self._read_after_load_timeout(url, pending.__cause__)
                load_timed_out = True
            except UnexpectedAlertPresentException:
                # A dialog that opened in the middle of a command: chromedriver refuses that one command
                # even though it dismisses the dialog. Dismiss it (if still there) and read the page again.
                if dialogs == DIALOG_RETRIES:
                    self.close()
                    raise PageLoadError(f"{url} kept opening dialogs", retryable=True) from None
                dialogs += 1
                with contextlib.suppress(NoAlertPresentException, WebDriverException):
                    driver.switch_to.alert.dismiss()

    def _snapshot(self, url: str, started: float, load_timed_out: bool) -> PageSnapshot:
        """Everything after the navigation: failure pages, status, settling, scrolling, the rendered HTML."""
        driver = self.driver
        try:
            try:
                net_error = driver.execute_script(NET_ERROR_PAGE_JS)
            except TimeoutException as exc:
                if load_timed_out:
                    raise
                raise _LoadStillPending from exc
            if net_error is not None:
                raise self._navigation_failure(url, net_error or "ERR_UNKNOWN")
            status = driver.execute_script(NAVIGATION_STATUS_JS)
            if status is not None and status >= 400:
                blocked = self._blocked(driver.current_url)
                if blocked is not None:
                    raise self._blocked_failure(url, driver.current_url, blocked)
                raise PageLoadError(
                    f"{url} answered HTTP {status}",
                    retryable=status >= 500 or status == 429,
                    status=status,
                    reason=PageLoadError.REASON_HTTP_STATUS,
                )
            self._settle()
            # A page that never finished loading keeps changing (that is why): two rounds, not until it is quiet.
            rounds, seen, sizes = self._scroll_until_no_new_images(started, max_rounds=2 if load_timed_out else None)
            html = driver.page_source
            final_url = driver.current_url
        except TimeoutException as exc:
            raise PageLoadError(
                f"{url} kept the browser busy for too long", retryable=True, reason=PageLoadError.REASON_TIMEOUT
            ) from exc
        except UnexpectedAlertPresentException:
            raise
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
            load_timed_out=load_timed_out,
        )

    def _blocked(self, final_url: str) -> BlockedRequest | None:
        """The proxy's record of the navigation's own request, if the proxy did not pass it on."""
        matching = [blocked for blocked in self.guard.take_blocked() if blocked.matches(final_url)]
        return matching[-1] if matching else None

    def _blocked_failure(self, url: str, final_url: str, blocked: BlockedRequest) -> PageLoadError:
        redirected = final_url.split("#", 1)[0] != url.split("#", 1)[0]
        if blocked.refused:
            message = f"redirected: {blocked.reason}" if redirected else blocked.reason
            return PageLoadError(message, reason=PageLoadError.REASON_REFUSED, final_url=final_url)
        return PageLoadError(
            f"{url} could not be loaded ({blocked.reason})",
            retryable=True,
            reason=PageLoadError.REASON_NETWORK,
            final_url=final_url,
        )

    def _navigation_failure(self, url: str, net_error: str, *, detail: str = "") -> PageLoadError:
        """The error of a navigation that ended on Chromium's error page (or failed the WebDriver command)."""
        try:
            final_url = self.driver.current_url
        except WebDriverException:
            final_url = url
        blocked = self._blocked(final_url)
        if blocked is not None:
            return self._blocked_failure(url, final_url, blocked)
        if net_error == "ERR_PROXY_CONNECTION_FAILED":
            self.close()  # the guard proxy is gone: the next load starts a browser with a new one
        if net_error == "ERR_TOO_MANY_REDIRECTS":
            return PageLoadError(
                f"{url} redirects in a loop (net::ERR_TOO_MANY_REDIRECTS)",
                retryable=True,
                reason=PageLoadError.REASON_REDIRECT_LOOP,
                net_error=net_error,
                final_url=final_url,
            )
        return PageLoadError(
            f"{url} could not be loaded ({detail or f'net::{net_error}'})",
            retryable=True,
            reason=PageLoadError.REASON_NETWORK,
            net_error=net_error,
            final_url=final_url,
        )

    def _read_after_load_timeout(self, url: str, exc: BaseException | None) -> None:
        """The load event may never come (an onerror handler that re-points broken images forever) although the
        document is all there: read what exists at the deadline; only an empty page is a failure."""
        if not self._document_after_timeout(url):
            raise PageLoadError(
                f"{url} did not finish loading within {self.config.page_timeout:g}s",
                retryable=True,
                reason=PageLoadError.REASON_TIMEOUT,
            ) from exc

    def _document_after_timeout(self, url: str) -> bool:
        """Stop the load; True if the page has a body with elements to read (the browser is then still usable)."""
        try:
            state = self.driver.execute_script(STOP_AND_PROBE_JS) or {}
        except WebDriverException:
            self.close()
            return False
        if not state.get("elements") or not str(state.get("href") or "").startswith(("http://", "https://")):
            return False  # nothing arrived yet: what is shown is still the blank tab (or an error page)
        logger.info("%s: no load event within %gs (%s); reading the DOM as it is", url, self.config.page_timeout, state)
        return True

    def _script_timeout(self) -> float:
        return max(self.config.scroll_max_seconds, self.config.settle_max_ms / 1000) + 10

    def _settle(self) -> None:
        self.driver.execute_async_script(WAIT_QUIET_JS, self.config.quiet_ms, self.config.settle_max_ms)

    def _scroll_until_no_new_images(self, started: float, max_rounds: int | None = None) -> tuple[int, set[str], dict]:
        """Scroll rounds until one adds no image URL and the page height is unchanged (or time is up)."""
        seen: set[str] = set()
        sizes: dict[str, tuple[int, int]] = {}
        deadline = started + self.config.page_timeout + self.config.scroll_max_seconds
        scroll_from = 0
        last_height = -1
        rounds = 0
        pause_ms = int(self.config.scroll_pause * 1000)
        # Each scroll call stops well inside the script timeout (and the page's deadline); the next goes on from there.
        step_cap = self._script_timeout() - 5
        while True:
            rounds += 1
            budget_ms = int(1000 * max(0.5, min(step_cap, deadline - time.monotonic())))
            # A script cut short by a dismissed dialog returns None: count it as a round that found nothing.
            scrolled = self.driver.execute_async_script(SCROLL_JS, scroll_from, pause_ms, budget_ms) or {}
            height = scrolled.get("reached") or 0
            at_bottom = scrolled.get("bottom", True)
            self._settle()
            state = self.driver.execute_script(IMAGE_STATE_JS) or {"urls": [], "sizes": {}, "height": last_height}
            new_urls = set(state["urls"]) - seen
            seen.update(state["urls"])
            sizes.update({url: tuple(size) for url, size in state["sizes"].items()})
            grown = state["height"] != last_height
            if rounds > 1 and at_bottom and not new_urls and not grown:
                return rounds, seen, sizes
            if time.monotonic() > deadline or (max_rounds and rounds >= max_rounds):
                logger.info("stopped scrolling %s after %d rounds: time is up", self.driver.current_url, rounds)
                return rounds, seen, sizes
            last_height = state["height"]
            # Lazy images above were triggered already; a new round only needs to cover what was added.
            viewport = self.driver.execute_script("return innerHeight") or 0
            if not at_bottom:
                scroll_from = max(0, height - viewport)  # cut short by its time cap: carry on where it stopped
            else:
                scroll_from = max(0, min(height, state["height"]) - 2 * viewport)


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
