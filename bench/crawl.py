"""Crawl benchmark: pages/minute and images/minute on a generated local shop, at several concurrencies.

Run from the repository root (uses the configured database server, in its own throwaway database
``bench_crawl``, and a temporary media folder; the shop runs in a separate process on 127.0.0.1):

    python bench/crawl.py                                   # 200 product pages, concurrency 1 and 2
    python bench/crawl.py --products 40 --concurrency 1     # a quick smoke run

Each run starts from an empty catalog: a listing (20 products a page, rel=next pagination) is followed to
every product page, each with JSON-LD and ``--images`` real CC0 photos, of which all but the first are
lazy-loaded (they appear only while scrolling). Everything the real crawl does is measured: Chromium
load + scroll, extraction, robots.txt, guarded downloads, Pillow checks, storing products and photos.
Per-host delay is 0 (a local shop); photo processing is off (that is the pipeline's benchmark).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def serve_shop(products: int, images: int, ready) -> None:
    """Child process: the generated shop, until the parent terminates it."""
    from tests.fixtures.shop.server import ShopServer

    shop = ShopServer(generated_products=products, images_per_product=images).start()
    ready.put(shop.base_url)
    while True:
        time.sleep(3600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--images", type=int, default=3, help="photos per product page")
    parser.add_argument("--concurrency", default="1,2", help="comma-separated browser counts to compare")
    args = parser.parse_args()
    levels = [int(level) for level in args.concurrency.split(",")]

    ready = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve_shop, args=(args.products, args.images, ready), daemon=True)
    server.start()
    base_url = ready.get(timeout=30)

    import django
    from django.conf import settings

    django.setup()
    from django.db import connection

    media = tempfile.TemporaryDirectory(prefix="bench-crawl-media-")
    settings.MEDIA_ROOT = media.name
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
    settings.CRAWL_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.CRAWL_MAX_PAGES = max(settings.CRAWL_MAX_PAGES, args.products * 2)
    settings.CRAWL_PAGE_RETRIES = 0
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = "bench_crawl"
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        from catalog.models import Product, ProductImage
        from scraping import services
        from scraping.crawler import Crawler
        from scraping.models import CrawlRun
        from scraping.options import CrawlOptions

        print(
            f"Generated shop: {args.products} product pages + {-(-args.products // 20)} listing pages, "
            f"{args.images} photos each; {os.cpu_count()} CPU cores; Chromium headless."
        )
        print(f"{'concurrency':>11} {'pages':>6} {'photos':>7} {'seconds':>8} {'pages/min':>10} {'images/min':>11}")
        for level in levels:
            ProductImage.objects.all().delete()
            Product.objects.all().delete()
            CrawlRun.objects.all().delete()
            options = CrawlOptions.build(
                follow=True,
                link_selector="a.product-card",
                next_selector="a[rel=next]",
                max_pages=args.products * 2,
                concurrency=level,
                delay=0,
            )
            seed = f"{base_url}/gen/catalog?page=1"
            run = services.create_run(seed_urls=[seed], options=options)
            started = time.perf_counter()
            summary = Crawler(options, run=run).crawl([seed])
            elapsed = time.perf_counter() - started
            counters = summary.counters
            pages = counters["pages_ok"] + counters["pages_no_product"]
            photos = counters["images_new"] + counters["images_duplicate"]
            if counters["pages_failed"] or counters["images_failed"] or counters["pages_ok"] != args.products:
                print(f"warning: {counters}", file=sys.stderr)
            print(
                f"{level:>11} {pages:>6} {photos:>7} {elapsed:>8.1f} {pages / elapsed * 60:>10.1f} "
                f"{photos / elapsed * 60:>11.1f}"
            )
    finally:
        connection.creation.destroy_test_db(test_db, verbosity=0)
        server.terminate()
        media.cleanup()


if __name__ == "__main__":
    main()
