"""Per-field precision / recall / F1 of ``scraping.extract.extract_product`` over the synthetic fixture corpus.

Each page of ``tests/fixtures/extraction`` has its expected output beside it (see the README there). A scalar
field counts as a true positive when the extracted value equals the expected one, a false positive when a
value is given that is wrong (or none was expected), a false negative when the expected value is missing or
wrong. Photos count per photo: an extracted URL that shows an expected photo is a true positive (a second URL
of the same photo is a duplicate, counted as a false positive), an URL of no expected photo is a false positive.

    python bench/extraction.py              # the table
    python bench/extraction.py --verbose    # and every mismatch, page by page
    python bench/extraction.py --json-lines FILE   # score `manage.py crawl --dry-run --json` output instead
    python bench/extraction.py --urls BASE         # print the corpus URLs as served at BASE (for crawl)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fixtures" / "extraction"
SCALAR_FIELDS = ("name", "price", "currency", "sku", "availability", "colour")


def load_corpus(folder: Path = CORPUS) -> list[dict]:
    """(page, expectation) pairs: ``{"name", "html", "url", "expected"}`` for each NAME.html with a NAME.json."""
    pages = []
    for spec_path in sorted(folder.glob("*.json")):
        html_path = spec_path.with_suffix(".html")
        if not html_path.exists():
            continue
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        pages.append({"name": spec_path.stem, "html": html_path.read_text(encoding="utf-8"), **spec})
    return pages


def _same(field: str, got, expected) -> bool:
    if field == "price":
        try:
            return Decimal(str(got)) == Decimal(str(expected))
        except InvalidOperation:
            return False
    return got == expected


def score_scalar(field: str, got, expected) -> tuple[int, int, int]:
    """(tp, fp, fn) of one field on one page."""
    got = None if got in (None, "") else got
    if expected is None:
        return 0, int(got is not None), 0
    if got is None:
        return 0, 0, 1
    return (1, 0, 0) if _same(field, got, expected) else (0, 1, 1)


def score_images(got: list[str], expected: list[list[str]]) -> dict:
    """Photo counts of one page: tp, fp (foreign + duplicates), fn, and the two kinds of false positives."""
    matched: set[int] = set()
    foreign = duplicates = 0
    for url in got:
        photo = next((index for index, urls in enumerate(expected) if url in urls), None)
        if photo is None:
            foreign += 1
        elif photo in matched:
            duplicates += 1
        else:
            matched.add(photo)
    return {
        "tp": len(matched),
        "fp": foreign + duplicates,
        "fn": len(expected) - len(matched),
        "foreign": foreign,
        "duplicates": duplicates,
        "returned": len(got),
    }


def _f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def extract_all(pages: list[dict]) -> dict[str, dict]:
    """Page name -> the fields `crawl --json` would print for it (extraction only, no browser)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from scraping.extract import extract_product

    results = {}
    for page in pages:
        record = extract_product(page["html"], page["url"])
        results[page["name"]] = record.as_json() if record else {}
    return results


def from_json_lines(path: Path, pages: list[dict]) -> dict[str, dict]:
    """Page name -> fields, from `crawl --dry-run --json` output.

    A line belongs to a page by its ``url``: the page's own URL, or any URL whose file name is the page's
    (``http://127.0.0.1:8000/ssr_plain_en.html`` when the corpus folder is served on loopback).
    """
    by_name = {}
    names = {page["url"]: page["name"] for page in pages}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("{"):
            data = json.loads(line)
            url = data.get("url") or ""
            name = names.get(url) or Path(urlsplit(url).path).stem
            by_name[name] = data if data.get("status") == "ok" else {}
    return {page["name"]: by_name.get(page["name"], {}) for page in pages}


def score(pages: list[dict], results: dict[str, dict], *, verbose: bool = False) -> dict:
    totals = {field: [0, 0, 0] for field in (*SCALAR_FIELDS, "images")}
    photos = {"foreign": 0, "duplicates": 0, "returned": 0}
    listings = {"pages": 0, "taken_for_products": 0}
    for page in pages:
        got, expected = results.get(page["name"], {}), page["expected"]
        if expected is None:  # a page that shows no product: every value given is a false positive
            listings["pages"] += 1
            listings["taken_for_products"] += bool(got.get("name"))
            expected = {"images": []}
            if verbose and got.get("name"):
                print(f"  {page['name']}: no product expected, got {got.get('name')!r}")
        for field in SCALAR_FIELDS:
            counts = score_scalar(field, got.get(field), expected.get(field))
            for index, value in enumerate(counts):
                totals[field][index] += value
            if verbose and counts != (1, 0, 0) and counts != (0, 0, 0):
                source = (got.get("sources") or {}).get(field)
                print(f"  {page['name']}: {field} = {got.get(field)!r} ({source}), expected {expected.get(field)!r}")
        image_counts = score_images(got.get("image_urls") or [], expected.get("images") or [])
        for index, key in enumerate(("tp", "fp", "fn")):
            totals["images"][index] += image_counts[key]
        for key in photos:
            photos[key] += image_counts[key]
        if verbose and (image_counts["fp"] or image_counts["fn"]):
            wanted = {url for urls in expected.get("images") or [] for url in urls}
            extra = [url for url in got.get("image_urls") or [] if url not in wanted]
            print(f"  {page['name']}: images {image_counts} extra={extra}")
    return {
        "fields": {field: _f1(*counts) for field, counts in totals.items()},
        "photos": photos,
        "pages": len(pages),
        "listings": listings,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--json-lines", type=Path, help="score this `crawl --dry-run --json` output instead")
    parser.add_argument("--urls", metavar="BASE", help="print each page's URL under BASE (with its query) and stop")
    args = parser.parse_args(argv)
    if args.urls:
        for page in load_corpus(args.corpus):
            query = urlsplit(page["url"]).query
            print(f"{args.urls.rstrip('/')}/{page['name']}.html" + (f"?{query}" if query else ""))
        return 0
    pages = load_corpus(args.corpus)
    results = from_json_lines(args.json_lines, pages) if args.json_lines else extract_all(pages)
    report = score(pages, results, verbose=args.verbose)
    corpus = args.corpus.relative_to(ROOT) if args.corpus.is_relative_to(ROOT) else args.corpus
    print(f"{report['pages']} synthetic pages ({corpus})")
    print(f"{'field':<13} {'precision':>9} {'recall':>7} {'F1':>6}")
    for field, (precision, recall, f1) in report["fields"].items():
        print(f"{field:<13} {precision:>9.3f} {recall:>7.3f} {f1:>6.3f}")
    photos = report["photos"]
    share = photos["foreign"] / photos["returned"] if photos["returned"] else 0.0
    print(
        f"photos returned: {photos['returned']}, not this product's: {photos['foreign']} ({share:.0%}), "
        f"same photo again at another size: {photos['duplicates']}"
    )
    listings = report["listings"]
    print(f"pages without a product: {listings['pages']}, taken for a product: {listings['taken_for_products']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
