"""Import and crawl-storage speed: rows/s of ``import_products`` and photos/s of crawl photo storage.

Usage: python bench/import_speed.py [--products 3000] [--photos 1200]

Generates a products.json of ``--products`` products whose local photos are the demo catalog's
(catalog/demo/images, 1-2 per product, each made unique by a JPEG comment so no two rows share bytes), and
imports it into a fresh database twice in the same run:
"one row per batch" (``batch_rows=1``: a transaction per row, as the first importer committed) and
"batched" (the default: ``BATCH_ROWS`` rows per transaction, photos checked by a thread pool, products and
photos written in bulk, processing queued once per batch). Then a re-import
(idempotent: no new rows). Processing on upload is on, so queueing the tasks (django-q2 ORM broker) is
part of the cost. Crawl storage: ``--photos`` checked downloads stored one transaction each vs in
``store_photos()`` batches of 32 (bulk rows and queueing), as the crawler stores downloads that arrive together.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def unique_copy(photo: Path, directory: Path, tag: str) -> str:
    """The demo JPEG with a comment segment naming ``tag``: new bytes (a photo of its own to check, hash and
    store, as in a real catalog) that decode exactly as the original."""
    content = photo.read_bytes()
    comment = tag.encode()
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    target = directory / f"{tag}.jpg"
    target.write_bytes(content[:2] + segment + content[2:])
    return str(target)


def generate(directory: Path, count: int) -> Path:
    photos = sorted((ROOT / "catalog" / "demo" / "images").glob("*.jpg"))
    rows = []
    for n in range(count):
        images = [unique_copy(photos[n % len(photos)], directory, f"p{n}a")]
        if n % 3 == 0:
            images.append(unique_copy(photos[(n * 7 + 1) % len(photos)], directory, f"p{n}b"))
        rows.append(
            {
                "id": f"bench-{n}",
                "name": f"Bench product {n}",
                "price": f"{10 + n % 90}.95",
                "currency": "EUR",
                "category": "Dress",
                "images": images,
            }
        )
    path = directory / "products.json"
    path.write_text(json.dumps(rows))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--photos", type=int, default=1200, help="crawled photos to store per mode")
    args = parser.parse_args()

    import django
    from django.conf import settings

    django.setup()
    from django.db import connection

    media = tempfile.TemporaryDirectory(prefix="bench-import-media-")
    work = tempfile.TemporaryDirectory(prefix="bench-import-")
    settings.MEDIA_ROOT = media.name
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = True
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = "bench_import_speed"
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        from django_q.models import OrmQ

        from catalog.importers import import_file
        from catalog.models import Product, ProductImage
        from core.photos import check_photo
        from scraping import services as scraping_services
        from scraping.download import DownloadedImage

        path = generate(Path(work.name), args.products)
        print(f"{args.products} products, {os.cpu_count()} CPU cores, embedded PostgreSQL, ORM queue")
        print(f"{'mode':>22} {'rows':>6} {'photos':>7} {'queued':>7} {'seconds':>8} {'rows/s':>8}")
        rates = {}
        for mode, batch_rows in (("one row per batch", 1), ("import batched", None)):
            ProductImage.objects.all().delete()
            Product.objects.all().delete()
            OrmQ.objects.all().delete()
            started = time.perf_counter()
            if batch_rows is None:
                report = import_file(path)
            else:
                from catalog.importers import import_records, read_records

                report = import_records(read_records(path), base_dir=path.parent, batch_rows=batch_rows)
            elapsed = time.perf_counter() - started
            assert not report.errors, report.errors[:3]
            rates[mode] = report.rows_ok / elapsed
            print(
                f"{mode:>22} {report.rows_ok:>6} {report.images_added:>7} {OrmQ.objects.count():>7} "
                f"{elapsed:>8.2f} {rates[mode]:>8.0f}"
            )
        images_before = ProductImage.objects.count()
        started = time.perf_counter()
        report = import_file(path)
        elapsed = time.perf_counter() - started
        assert ProductImage.objects.count() == images_before and report.created == 0
        print(
            f"{'re-import (no-op)':>22} {report.rows_ok:>6} {report.images_added:>7} {'':>7} {elapsed:>8.2f} "
            f"{report.rows_ok / elapsed:>8.0f}"
        )
        print(f"import speed-up: {rates['import batched'] / rates['one row per batch']:.1f}x")

        photos = sorted((ROOT / "catalog" / "demo" / "images").glob("*.jpg"))
        downloads = []
        for n in range(args.photos):
            content = photos[n % len(photos)].read_bytes()
            url = f"https://shop.example/p/{n}.jpg"
            downloads.append(  # the downloader checks the photo before it is stored
                DownloadedImage(url, url, "image/jpeg", hashlib.sha256(content).hexdigest(), check_photo(content))
            )
        print(f"\n{'crawl storage':>22} {'photos':>7} {'seconds':>8} {'photos/s':>9}")
        crawl = {}
        for mode, batch in (("one commit per photo", 1), ("store_photos() of 32", 32)):
            ProductImage.objects.all().delete()
            Product.objects.all().delete()
            products = [
                Product.objects.create(name=f"Crawled {n}", source_url=f"https://shop.example/p/{n}")
                for n in range(args.photos)
            ]
            started = time.perf_counter()
            for start in range(0, args.photos, batch):
                chunk = list(zip(products[start : start + batch], downloads[start : start + batch], strict=True))
                if batch == 1:
                    scraping_services.store_photo(*chunk[0])
                else:
                    scraping_services.store_photos(chunk)
            elapsed = time.perf_counter() - started
            crawl[mode] = args.photos / elapsed
            print(f"{mode:>22} {args.photos:>7} {elapsed:>8.2f} {crawl[mode]:>9.0f}")
        print(f"crawl storage speed-up: {crawl['store_photos() of 32'] / crawl['one commit per photo']:.1f}x")
    finally:
        connection.creation.destroy_test_db(test_db, verbosity=0)
        media.cleanup()
        work.cleanup()


if __name__ == "__main__":
    main()
