"""``manage.py crawl --dry-run --json`` on a fresh checkout: no migrated database needed (issue 14).

Runs the real command in a subprocess with DATABASE_URL naming a PostgreSQL address where nothing listens
(no database at all, the strongest form of "nobody migrated it") and a page served on 127.0.0.1; needs
Chromium (marked ``browser``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.scraping.browser_servers import RecordingServer

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[3]
PAGE = (ROOT / "tests" / "fixtures" / "extraction" / "ssr_plain_en.html").read_bytes()


def test_dry_run_json_needs_no_migrated_database():
    server = RecordingServer().start()
    server.routes["/p/cord-overshirt-rust"] = (200, {"Content-Type": "text/html; charset=utf-8"}, PAGE)
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://nobody@127.0.0.1:1/no-database",
        "CRAWL_ALLOWED_NETWORKS": "127.0.0.1/32",
        "CRAWL_DELAY_SECONDS": "0",
        "CRAWL_PAGE_RETRIES": "0",
    }
    try:
        result = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "crawl",
                "--dry-run",
                "--json",
                "--no-progress",
                server.url("/p/cord-overshirt-rust"),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    assert "The catalog cannot be read" in result.stderr
    (line,) = [json.loads(text) for text in result.stdout.splitlines() if text.startswith("{")]
    assert (line["status"], line["product"], line["name"], line["sku"], line["price"]) == (
        "ok",
        "not checked",
        "Cord Overshirt in Rust",
        "CO-7781",
        "71.25",
    )
    # Per-field sources and confidence travel in the JSON; so do the photos under the scoring's name.
    assert line["sources"]["price"] == "page" and 0 < line["confidence"]["price"] <= 1
    assert line["images"] == line["image_urls"] and len(line["images"]) == 3
