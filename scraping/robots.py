"""robots.txt, read once per site and run through the guarded client, judged by ``urllib.robotparser``.

The rules follow robotparser's own ``read()``: 401/403 forbid the whole site, other 4xx allow it; a
server error or an unreachable robots.txt forbids the site for this run (the safe reading of silence).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from scraping.download import FetchError, SafeHttpClient
from scraping.safety import UnsafeURL

ROBOTS_MAX_BYTES = 512 * 1024


@dataclass(frozen=True)
class RobotsVerdict:
    allowed: bool
    reason: str = ""
    crawl_delay: float | None = None


def user_agent_token(user_agent: str) -> str:
    """The product token robots.txt groups are matched against: ``LookalikeBot`` of ``LookalikeBot/0.1 (...)``."""
    return user_agent.split("/", 1)[0].split()[0] if user_agent.strip() else "*"


class RobotsCache:
    """One parsed robots.txt per origin for the life of a run; hosts in ``ignore_hosts`` are not asked."""

    def __init__(self, *, client: SafeHttpClient, user_agent: str, ignore_hosts=()) -> None:
        self.client = client
        self.agent = user_agent_token(user_agent)
        self.ignore_hosts = {host.lower() for host in ignore_hosts}
        self._parsers: dict[str, RobotFileParser | str] = {}
        self._lock = threading.Lock()
        self._origin_locks: dict[str, threading.Lock] = {}

    def verdict(self, url: str) -> RobotsVerdict:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host in self.ignore_hosts or parts.netloc.lower() in self.ignore_hosts:
            return RobotsVerdict(
                allowed=True, reason="robots.txt ignored for this host (CRAWL_ALLOWED_HOSTS_IGNORE_ROBOTS)"
            )
        origin = f"{parts.scheme.lower()}://{parts.netloc.lower()}"
        parser = self._parser_for(origin)
        if isinstance(parser, str):
            return RobotsVerdict(allowed=False, reason=parser)
        if not parser.can_fetch(self.agent, url):
            return RobotsVerdict(allowed=False, reason=f"disallowed by {origin}/robots.txt")
        delay = parser.crawl_delay(self.agent)
        return RobotsVerdict(allowed=True, crawl_delay=float(delay) if delay is not None else None)

    def _parser_for(self, origin: str) -> RobotFileParser | str:
        with self._lock:
            origin_lock = self._origin_locks.setdefault(origin, threading.Lock())
        with origin_lock:
            if origin not in self._parsers:
                self._parsers[origin] = self._load(origin)
            return self._parsers[origin]

    def _load(self, origin: str) -> RobotFileParser | str:
        """A parser, or a string saying why the whole site is off limits."""
        robots_url = f"{origin}/robots.txt"
        parser = RobotFileParser(robots_url)
        try:
            result = self.client.get(robots_url, max_bytes=ROBOTS_MAX_BYTES)
        except UnsafeURL as exc:
            return str(exc)
        except FetchError as exc:
            return f"robots.txt could not be read, so the site is skipped ({exc})"
        if result.status in (401, 403):
            return f"{robots_url} answered HTTP {result.status}, which forbids crawling the site"
        if 400 <= result.status < 500:
            parser.allow_all = True
        elif result.status >= 300:
            return f"{robots_url} answered HTTP {result.status}, so the site is skipped"
        else:
            parser.parse(result.body.decode("utf-8", errors="replace").splitlines())
        parser.modified()
        return parser
