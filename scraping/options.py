"""The options of one crawl: what a caller may choose (``USER_OPTIONS``) on top of what settings fix.

Safety switches (private addresses, robots exceptions) and the hard caps come from settings only, so a
crawl started through the admin or the API can narrow them but never widen them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from cssselect import GenericTranslator, SelectorError
from django.conf import settings

USER_OPTIONS = (
    "follow",
    "link_selector",
    "next_selector",
    "max_depth",
    "max_pages",
    "concurrency",
    "host_concurrency",
    "delay",
    "dry_run",
)
MAX_CONCURRENCY = 16


class OptionsError(ValueError):
    """An option value that cannot work; the message names the option."""


@dataclass(frozen=True)
class CrawlOptions:
    follow: bool
    link_selector: str | None
    next_selector: str | None
    max_depth: int
    max_pages: int
    concurrency: int
    host_concurrency: int
    delay: float
    dry_run: bool
    max_bytes: int
    max_seconds: float
    image_max_bytes: int
    page_timeout: float
    scroll_max_seconds: float
    image_timeout: float
    page_retries: int
    image_retries: int
    retry_backoff: float
    user_agent: str
    allow_private: bool
    allowed_networks: tuple[str, ...]
    ignore_robots_hosts: tuple[str, ...]
    profiles_file: str
    chromium_binary: str
    chromedriver_path: str

    @classmethod
    def build(cls, **given) -> CrawlOptions:
        """Options from keyword arguments (``USER_OPTIONS`` only; None means "the default") and settings."""
        unknown = set(given) - set(USER_OPTIONS)
        if unknown:
            raise OptionsError(f"unknown crawl option(s): {', '.join(sorted(unknown))}")
        given = {key: value for key, value in given.items() if value is not None}
        concurrency = _int(given, "concurrency", settings.CRAWL_CONCURRENCY, low=1, high=MAX_CONCURRENCY)
        max_pages = _int(given, "max_pages", settings.CRAWL_MAX_PAGES, low=1)
        if max_pages > settings.CRAWL_MAX_PAGES:
            raise OptionsError(f"max_pages {max_pages} is above the CRAWL_MAX_PAGES cap of {settings.CRAWL_MAX_PAGES}")
        delay = given.get("delay", settings.CRAWL_DELAY_SECONDS)
        try:
            delay = float(delay)
        except (TypeError, ValueError) as exc:
            raise OptionsError(f"delay {delay!r} is not a number of seconds") from exc
        if not 0 <= delay <= 3600:
            raise OptionsError(f"delay {delay} must be between 0 and 3600 seconds")
        return cls(
            follow=bool(given.get("follow", False)),
            link_selector=_selector(given, "link_selector"),
            next_selector=_selector(given, "next_selector"),
            max_depth=_int(given, "max_depth", 1, low=0, high=10),
            max_pages=max_pages,
            concurrency=concurrency,
            host_concurrency=_int(given, "host_concurrency", concurrency, low=1, high=MAX_CONCURRENCY),
            delay=delay,
            dry_run=bool(given.get("dry_run", False)),
            max_bytes=settings.CRAWL_MAX_BYTES,
            max_seconds=float(settings.CRAWL_MAX_SECONDS),
            image_max_bytes=settings.CRAWL_IMAGE_MAX_BYTES,
            page_timeout=settings.CRAWL_PAGE_TIMEOUT_SECONDS,
            scroll_max_seconds=settings.CRAWL_SCROLL_MAX_SECONDS,
            image_timeout=settings.CRAWL_IMAGE_TIMEOUT_SECONDS,
            page_retries=settings.CRAWL_PAGE_RETRIES,
            image_retries=settings.CRAWL_IMAGE_RETRIES,
            retry_backoff=settings.CRAWL_RETRY_BACKOFF_SECONDS,
            user_agent=settings.CRAWL_USER_AGENT,
            allow_private=settings.CRAWL_ALLOW_PRIVATE_ADDRESSES,
            allowed_networks=tuple(settings.CRAWL_ALLOWED_NETWORKS),
            ignore_robots_hosts=tuple(settings.CRAWL_ALLOWED_HOSTS_IGNORE_ROBOTS),
            profiles_file=settings.CRAWL_PROFILES_FILE,
            chromium_binary=settings.CHROMIUM_BINARY,
            chromedriver_path=settings.CHROMEDRIVER_PATH,
        )

    def user_options(self) -> dict:
        """The chosen part, as JSON, for the run record (a resumed run starts from it)."""
        data = asdict(self)
        return {field.name: data[field.name] for field in fields(self) if field.name in USER_OPTIONS}


def _int(given: dict, name: str, default: int, *, low: int, high: int | None = None) -> int:
    value = given.get(name, default)
    if isinstance(value, bool):
        raise OptionsError(f"{name} must be a whole number, not {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise OptionsError(f"{name} {value!r} is not a whole number") from exc
    if number != value and not isinstance(value, str):
        raise OptionsError(f"{name} {value!r} is not a whole number")
    if number < low or (high is not None and number > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise OptionsError(f"{name} must be {bounds}, not {number}")
    return number


def _selector(given: dict, name: str) -> str | None:
    value = given.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise OptionsError(f"{name} must be a CSS selector string")
    try:
        GenericTranslator().css_to_xpath(value)
    except SelectorError as exc:
        raise OptionsError(f"{name} {value!r} is not a valid CSS selector ({exc})") from exc
    return value
