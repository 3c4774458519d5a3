"""``manage.py crawl``: crawl product pages with a headless Chromium and store products and photos."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from tqdm import tqdm

from catalog import selectors as catalog_selectors
from scraping import services
from scraping.browser import BrowserUnavailable
from scraping.crawler import Crawler, CrawlError, Reporter, run_crawl
from scraping.models import PageStatus
from scraping.options import CrawlOptions, OptionsError


def catalog_unreadable() -> str | None:
    """Why the catalog cannot say whether a product is known (no database, or one not migrated), or None."""
    try:
        catalog_selectors.product_by_source_url("https://lookalike.invalid/probe")
    except DatabaseError as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def read_targets(targets: list[str]) -> list[str]:
    """URLs from arguments: a URL as is, a file as one URL a line (blank lines and ``#`` comments skipped)."""
    urls: list[str] = []
    for target in targets:
        if target.lower().startswith(("http://", "https://")):
            urls.append(target)
            continue
        path = Path(target)
        if not path.is_file():
            raise CommandError(f"{target!r} is neither an http(s) URL nor a file of URLs")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {target}: {exc}") from exc
        for number, line in enumerate(lines, start=1):
            url = line.split(" #", 1)[0].split("\t#", 1)[0].strip()
            if not url or url.startswith("#"):
                continue
            if not url.lower().startswith(("http://", "https://")):
                raise CommandError(f"{target}:{number}: {url!r} is not an http(s) URL")
            urls.append(url)
    return urls


class CommandReporter(Reporter):
    """Progress bar on stderr; JSON lines (or, in a dry run, a line per product) on stdout."""

    def __init__(self, command: BaseCommand, *, json_lines: bool, dry_run: bool, progress: bool | None) -> None:
        self.command = command
        self.json_lines = json_lines
        self.dry_run = dry_run
        self.bar = tqdm(
            total=0, unit="page", desc="crawl", file=sys.stderr, disable=True if progress is False else None
        )

    def pages_planned(self, total: int) -> None:
        if total > (self.bar.total or 0):
            self.bar.total = total
            self.bar.refresh()

    def page_done(self, result: dict) -> None:
        self.bar.update(1)
        if self.json_lines:
            self.command.stdout.write(json.dumps(result, ensure_ascii=False, default=str))
            return
        status = result["status"]
        if self.dry_run and result.get("name"):
            price = f"{result['price']} {result.get('currency') or '?'}" if result.get("price") else "no price"
            self.command.stdout.write(
                f"{result['product']}: {result['name']} | {price} | {len(result['image_urls'])} image(s) | "
                f"{result['canonical_url']}"
            )
            for image_url in result["image_urls"]:
                self.command.stdout.write(f"    {image_url}")
        elif status in (PageStatus.FAILED, PageStatus.REFUSED):
            self.bar.write(f"{status}: {result['url']}: {result['error']}", file=sys.stderr)
        elif result.get("image_downloads", {}).get("failed"):
            for error in result["image_downloads"]["errors"]:
                self.bar.write(f"image failed: {error['url']}: {error['error']}", file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


class Command(BaseCommand):
    help = (
        "Crawl product pages with headless Chromium: structured data, OpenGraph and selector profiles become "
        "products; their photos are downloaded and queued for processing. Targets are URLs or files of URLs."
    )

    def add_arguments(self, parser):
        parser.add_argument("targets", nargs="*", help="URLs, or files with one URL a line (# starts a comment)")
        parser.add_argument("--follow", action="store_const", const=True, help="follow links of listing pages")
        parser.add_argument(
            "--link-selector", help="CSS selector of product links on listing pages (default: all links)"
        )
        parser.add_argument("--next-selector", help="CSS selector of the next-page link (default: rel=next)")
        parser.add_argument("--max-depth", type=int, help="link levels to follow from the seeds (default 1)")
        parser.add_argument("--max-pages", type=int, help="pages to visit at most (default and cap: CRAWL_MAX_PAGES)")
        parser.add_argument("--concurrency", type=int, help="browsers working at once (default CRAWL_CONCURRENCY)")
        parser.add_argument("--host-concurrency", type=int, help="page loads per host at once (default: concurrency)")
        parser.add_argument("--delay", type=float, help="seconds between requests to one host (CRAWL_DELAY_SECONDS)")
        parser.add_argument(
            "--resume",
            nargs="?",
            const="latest",
            metavar="RUN_ID",
            help="visit what the last run (or RUN_ID) left: pages never reached, failed or skipped",
        )
        parser.add_argument(
            "--dry-run", action="store_const", const=True, help="store nothing; print what would be stored"
        )
        parser.add_argument("--json", action="store_true", help="one JSON object per page on stdout")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **opts):
        given = {
            "follow": opts["follow"],
            "link_selector": opts["link_selector"],
            "next_selector": opts["next_selector"],
            "max_depth": opts["max_depth"],
            "max_pages": opts["max_pages"],
            "concurrency": opts["concurrency"],
            "host_concurrency": opts["host_concurrency"],
            "delay": opts["delay"],
            "dry_run": opts["dry_run"],
        }
        given = {key: value for key, value in given.items() if value is not None}
        done_urls: set[str] = set()
        previous = None
        if opts["resume"]:
            if opts["targets"]:
                raise CommandError("give either URLs or --resume, not both")
            run_id = None if opts["resume"] == "latest" else self._run_id(opts["resume"])
            try:
                plan = services.resume_plan(run_id)
            except LookupError as exc:
                raise CommandError(str(exc)) from exc
            if not plan.seeds:
                self.stdout.write(f"Crawl run {plan.previous.pk} left nothing to retry.")
                return
            previous, seeds, done_urls = plan.previous, plan.seeds, plan.done_urls
            given = {**{k: v for k, v in plan.previous.options.items() if k != "dry_run"}, **given}
        else:
            if not opts["targets"]:
                raise CommandError("give URLs or files of URLs to crawl, or --resume")
            try:
                seeds = services.clean_seeds(read_targets(opts["targets"]))
            except services.SeedError as exc:
                raise CommandError(str(exc)) from exc
        try:
            options = CrawlOptions.build(**given)
        except OptionsError as exc:
            raise CommandError(str(exc)) from exc
        run = None
        if not options.dry_run:
            seed_urls = [seed[0] if isinstance(seed, tuple) else seed for seed in seeds]
            run = services.create_run(seed_urls=seed_urls, options=options, resumed_from=previous)
        check_catalog = True
        if options.dry_run:
            reason = catalog_unreadable()
            if reason:
                self.stderr.write(f"The catalog cannot be read ({reason}): products are not checked against it.")
                check_catalog = False
        reporter = CommandReporter(
            self, json_lines=opts["json"], dry_run=options.dry_run, progress=False if opts["no_progress"] else None
        )
        try:
            if run is None:
                summary = Crawler(options, reporter=reporter, check_catalog=check_catalog).crawl(
                    seeds, done_urls=done_urls
                )
            else:
                summary = run_crawl(run, seeds=seeds, done_urls=done_urls, reporter=reporter)
        except (CrawlError, BrowserUnavailable) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            reporter.close()
        out = self.stderr if opts["json"] else self.stdout
        for line in summary.lines():
            out.write(line)

    @staticmethod
    def _run_id(raw: str) -> int:
        if not raw.isdigit():
            raise CommandError(f"--resume takes a run id (a number), not {raw!r}")
        return int(raw)
