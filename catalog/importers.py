"""Import products from a products.json or CSV file: idempotent, row by row, good rows always land.

Rows go in batches of ``BATCH_ROWS``. A batch's photos are read and checked by a thread pool first (no
database work), then its good rows are written in a few bulk queries, one transaction per batch, and its
new photos queued once it commits. A row that fails (bad record, missing or broken photo) is reported and
written not at all; if the bulk write itself fails, the batch is written again row by row, a savepoint
each. Row-at-a-time commits held a 4,756-product import at 6 rows/s (bench/import_speed.py).

products.json is a list of objects (or ``{"products": [...]}``) with keys ``id``, ``name``, ``price``,
``currency``, ``category`` and ``images`` (local paths, relative to the file, or http(s) URLs), and
optionally ``url``, ``shop``, ``brand``, ``sku``, ``gtin``, ``mpn``, ``colour``, ``description``,
``availability``. A CSV has the same columns; its ``images`` cell separates several images with ``|``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils.module_loading import import_string

from catalog import services
from catalog.vocabulary import PRODUCT_FIELDS
from core.errors import DomainError
from core.photos import CheckedPhoto, check_photo

logger = logging.getLogger(__name__)

FIELD_ALIASES = {"color": "colour", "title": "name", "link": "url", "image": "images", "image_url": "images"}
# Rows per transaction: big enough that commits stop mattering, small enough that an outage loses little.
BATCH_ROWS = 250
# Threads that read, fetch and decode a batch's photos (Pillow and file reads release the GIL).
PREPARE_THREADS = min(8, (os.cpu_count() or 1) * 2)
# Fields a row may leave out (name, price and currency are read on their own).
OPTIONAL_FIELDS = tuple(name for name in PRODUCT_FIELDS if name not in {"name", "price", "currency"})


class ImportFileError(ValueError):
    """The file as a whole cannot be read (not a row problem)."""


@dataclass
class RowError:
    row: int
    product_id: str
    message: str

    def __str__(self) -> str:
        label = f" (id {self.product_id})" if self.product_id else ""
        return f"row {self.row}{label}: {self.message}"


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    images_added: int = 0
    images_duplicate: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def rows_ok(self) -> int:
        return self.created + self.updated

    def summary(self) -> str:
        return (
            f"{self.rows_ok} product(s) imported ({self.created} new, {self.updated} updated), "
            f"{self.images_added} image(s) added, {self.images_duplicate} already known, "
            f"{len(self.errors)} row(s) with errors"
        )


def fetch_url(url: str) -> bytes:
    """Download an image URL named in an import file with the configured fetcher.

    ``CATALOG_IMAGE_FETCHER`` (a dotted path) defaults to the crawler's guarded downloader, so imports get
    the same address policy (no private networks), size cap and User-Agent without the catalog importing
    the crawler.
    """
    if urlparse(url).scheme not in {"http", "https"}:
        raise ValueError(f"only http(s) image URLs are allowed: {url}")
    return import_string(settings.CATALOG_IMAGE_FETCHER)(url)


def read_records(path: Path) -> list[dict]:
    """Parse the file into raw row dicts; raises ImportFileError if the file itself is unusable."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ImportFileError(f"file not found: {path}") from exc
    except (UnicodeDecodeError, OSError) as exc:
        raise ImportFileError(f"cannot read {path}: {exc}") from exc
    return parse_records(text, suffix=path.suffix.lower())


def parse_records(text: str, *, suffix: str) -> list[dict]:
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImportFileError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
        except RecursionError as exc:
            raise ImportFileError("the JSON is nested too deeply to be a list of products") from exc
        if isinstance(data, dict) and isinstance(data.get("products"), list):
            data = data["products"]
        if not isinstance(data, list):
            raise ImportFileError('a products.json must be a list of products or {"products": [...]}')
        return data
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "name" not in [name.strip().lower() for name in reader.fieldnames]:
            raise ImportFileError("the CSV needs a header row with at least a 'name' column")
        rows = []
        for row in reader:
            cleaned = {(key or "").strip().lower(): (value or "").strip() for key, value in row.items() if key}
            images = cleaned.get("images") or cleaned.get("image") or ""
            cleaned["images"] = [part.strip() for part in images.split("|") if part.strip()]
            rows.append(cleaned)
        return rows
    raise ImportFileError(f"unsupported file type {suffix or '(none)'}: use .json or .csv")


def _normalise(record) -> dict:
    if not isinstance(record, dict):
        raise ValueError("a product must be an object with named fields")
    normalised = {}
    for key, value in record.items():
        key = FIELD_ALIASES.get(str(key).strip().lower(), str(key).strip().lower())
        normalised[key] = value
    images = normalised.get("images", [])
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list) or not all(isinstance(item, str) for item in images):
        raise ValueError("images must be a list of paths or URLs")
    normalised["images"] = images
    return normalised


def _load_image_bytes(reference: str, base_dir: Path | None, fetch: Callable[[str], bytes]) -> bytes:
    if urlparse(reference).scheme in {"http", "https"}:
        return fetch(reference)
    if base_dir is None:
        # An uploaded file has no folder of its own: a path in it would read the server's disk.
        raise ValueError(f"only http(s) image URLs are allowed in an uploaded file, not {reference!r}")
    path = Path(reference)
    if not path.is_absolute():
        path = base_dir / path
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ValueError(f"image file not found: {reference}") from exc


def import_records(
    records: Iterable,
    *,
    base_dir: Path | None,
    default_shop: str = "",
    fetch: Callable[[str], bytes] = fetch_url,
    batch_rows: int = BATCH_ROWS,
) -> ImportReport:
    """Upsert each record in its own savepoint, ``batch_rows`` rows per transaction; bad rows are reported.

    Local image paths are read relative to ``base_dir``; ``base_dir=None`` (an upload) allows URLs only.
    If the database goes away mid-import, the batches committed before stay and a re-run skips them.
    """
    report = ImportReport()
    batch: list[tuple[int, object]] = []
    for row_number, raw in enumerate(records, start=1):
        batch.append((row_number, raw))
        if len(batch) >= batch_rows:
            _import_batch(batch, report, base_dir=base_dir, default_shop=default_shop, fetch=fetch)
            batch = []
    if batch:
        _import_batch(batch, report, base_dir=base_dir, default_shop=default_shop, fetch=fetch)
    return report


@dataclass
class _Row:
    """A row that read and checked: its record and its photos, ready to write."""

    number: int
    product_id: str
    record: dict
    references: list[str]
    photos: list[CheckedPhoto]


def _import_batch(batch, report: ImportReport, *, base_dir, default_shop: str, fetch) -> None:
    """Read and check the batch's photos in parallel, then write every good row in a few bulk queries.

    Should the bulk write fail (a concurrent writer took a key), the batch is written again row by row,
    each in its own savepoint, so a bad row still rolls back alone.
    """
    errors: list[RowError] = []
    rows = _prepare_rows(batch, errors, base_dir=base_dir, fetch=fetch)
    with transaction.atomic(), services.announce_in_bulk():
        try:
            with transaction.atomic():
                _write_in_bulk(rows, report, errors, default_shop=default_shop)
        except (DatabaseError, OSError):
            logger.warning("bulk write of rows %s-%s failed; writing them one by one", batch[0][0], batch[-1][0])
            for row in rows:
                _write_row(row, report, errors, default_shop=default_shop)
    report.errors.extend(sorted(errors, key=lambda error: error.row))


def _prepare_rows(batch, errors: list[RowError], *, base_dir, fetch) -> list[_Row]:
    """Rows whose record is sound and whose photos all load and pass ``check_photo``; the rest go to ``errors``.

    Nothing here touches the database, so the photos are read, fetched and decoded by a thread pool.
    """

    def prepare(item) -> _Row | RowError:
        row_number, raw = item
        product_id = str(raw.get("id", "")).strip() if isinstance(raw, dict) else ""
        try:
            record = _normalise(raw)
            if not product_id and not record.get("url"):
                raise ValueError("each product needs an 'id' (or a 'url')")
            # Every image is read and checked before anything is written: a bad file fails the row, not half of it.
            photos = [check_photo(_load_image_bytes(ref, base_dir, fetch)) for ref in record["images"]]
        except (DomainError, ValueError, OSError) as exc:
            return RowError(row=row_number, product_id=product_id, message=str(exc))
        return _Row(row_number, product_id, record, record["images"], photos)

    with ThreadPoolExecutor(max_workers=PREPARE_THREADS, thread_name_prefix="import-photos") as pool:
        prepared = list(pool.map(prepare, batch))
    errors.extend(item for item in prepared if isinstance(item, RowError))
    return [item for item in prepared if isinstance(item, _Row)]


def _product_input(row: _Row, default_shop: str) -> services.ProductInput:
    fields = {name: row.record.get(name) for name in ("name", "price", "currency", *OPTIONAL_FIELDS)}
    shop = fields.pop("shop") or default_shop
    return services.ProductInput(
        source_url=row.record.get("url") or None, external_id=row.product_id or None, shop=shop, fields=fields
    )


def _photo_url(reference: str) -> str:
    return reference if urlparse(reference).scheme in {"http", "https"} else ""


def _write_in_bulk(rows: list[_Row], report: ImportReport, errors: list[RowError], *, default_shop: str) -> None:
    """Both bulk writes; the report and ``errors`` change only once both succeeded (else nothing happened)."""
    outcomes = services.upsert_products([_product_input(row, default_shop) for row in rows])
    photos, owners = [], []
    for row, outcome in zip(rows, outcomes, strict=True):
        if isinstance(outcome, DomainError):
            continue
        product, _created = outcome
        for position, (reference, photo) in enumerate(zip(row.references, row.photos, strict=True)):
            photos.append(services.NewPhoto(product, photo, source_url=_photo_url(reference), position=position))
            owners.append(row.number)
    stored = services.add_images(photos)
    added, duplicate = Counter(), Counter()
    for number, (_image, created) in zip(owners, stored, strict=True):
        (added if created else duplicate)[number] += 1
    for row, outcome in zip(rows, outcomes, strict=True):
        if isinstance(outcome, DomainError):
            errors.append(RowError(row=row.number, product_id=row.product_id, message=str(outcome)))
        else:
            _count(report, created=outcome[1], added=added[row.number], duplicate=duplicate[row.number])


def _write_row(row: _Row, report: ImportReport, errors: list[RowError], *, default_shop: str) -> None:
    item = _product_input(row, default_shop)
    try:
        with transaction.atomic():  # a savepoint: a failing row takes back only its own writes
            product, created = services.upsert_product(
                source_url=item.source_url, external_id=item.external_id, shop=item.shop, **item.fields
            )
            added = duplicate = 0
            for position, (reference, photo) in enumerate(zip(row.references, row.photos, strict=True)):
                _, is_new = services.add_image(
                    product=product, photo=photo, source_url=_photo_url(reference), position=position
                )
                added += is_new
                duplicate += not is_new
    except (DomainError, ValueError, OSError) as exc:
        errors.append(RowError(row=row.number, product_id=row.product_id, message=str(exc)))
        return
    _count(report, created=created, added=added, duplicate=duplicate)


def _count(report: ImportReport, *, created: bool, added: int, duplicate: int) -> None:
    report.created += created
    report.updated += not created
    report.images_added += added
    report.images_duplicate += duplicate


def import_file(path: Path, *, default_shop: str = "", fetch: Callable[[str], bytes] = fetch_url) -> ImportReport:
    path = Path(path)
    return import_records(read_records(path), base_dir=path.parent, default_shop=default_shop, fetch=fetch)
