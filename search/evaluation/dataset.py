"""Labelled photos for an evaluation: a folder of category sub-folders, a CSV, or the catalog itself.

Nothing here decodes a photo: items carry a way to read their bytes, and photos that cannot be read
are skipped later, one by one, with the reason listed.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import DomainError

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
FILE_COLUMNS = ("file", "path", "image", "filename")
CATEGORY_COLUMNS = ("category", "label", "class")
PRODUCT_COLUMNS = ("product", "product_id", "item", "item_id")
NO_CATEGORY = "(none)"


class EvaluationError(DomainError):
    """An evaluation that cannot run as asked; the message says what to fix."""

    code = "invalid_evaluation"


@dataclass(frozen=True)
class LabelledPhoto:
    """One photo with its labels. ``product`` groups photos of one item (its own name when unknown)."""

    key: str  # unique, shown in the report (relative path or "image 12")
    category: str
    product: str
    read: Callable[[], bytes] = field(compare=False, repr=False)


@dataclass
class Dataset:
    source: str
    photos: list[LabelledPhoto]
    skipped: list[dict] = field(default_factory=list)  # {"photo", "reason"}

    @property
    def categories(self) -> list[str]:
        return sorted({photo.category for photo in self.photos})


def _path_reader(path: Path) -> Callable[[], bytes]:
    return path.read_bytes


def from_folder(folder: Path) -> Dataset:
    """One sub-folder per category, photos inside (nested folders are read too)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvaluationError(f"{folder} is not a folder; expected one sub-folder of photos per category.")
    photos, skipped = [], []
    loose = [p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES]
    for category_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(category_dir.rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            key = str(path.relative_to(folder))
            if path.suffix.lower() not in PHOTO_SUFFIXES:
                skipped.append({"photo": key, "reason": "not a photo file (unknown extension)"})
                continue
            photos.append(LabelledPhoto(key=key, category=category_dir.name, product=key, read=_path_reader(path)))
    if not photos:
        hint = (
            f" It holds {len(loose)} photo(s) directly: move them into one sub-folder per category."
            if loose
            else " Expected one sub-folder per category, e.g. Dress/1.jpg, Skirt/2.jpg."
        )
        raise EvaluationError(f"no labelled photos found in {folder}.{hint}")
    for name in loose:
        skipped.append({"photo": name, "reason": "not inside a category sub-folder"})
    return Dataset(source=f"folder {folder}", photos=photos, skipped=skipped)


def _column(header: Sequence[str], names: Sequence[str]) -> str | None:
    lowered = {name.strip().lower(): name for name in header}
    return next((lowered[name] for name in names if name in lowered), None)


def from_csv(csv_path: Path) -> Dataset:
    """Rows of file (relative to the CSV), category and optionally product; other columns are ignored."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise EvaluationError(f"{csv_path} does not exist or is not a file.")
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
            header = rows[0].keys() if rows else []
    except (UnicodeDecodeError, csv.Error) as exc:
        raise EvaluationError(f"{csv_path} is not a readable UTF-8 CSV file ({exc}).") from exc
    if not rows:
        raise EvaluationError(f"{csv_path} has no rows; expected a header such as file,category[,product].")
    file_column = _column(header, FILE_COLUMNS)
    category_column = _column(header, CATEGORY_COLUMNS)
    product_column = _column(header, PRODUCT_COLUMNS)
    if file_column is None or (category_column is None and product_column is None):
        raise EvaluationError(
            f"{csv_path} needs a file column ({'/'.join(FILE_COLUMNS)}) and a category ({'/'.join(CATEGORY_COLUMNS)}) "
            f"or product ({'/'.join(PRODUCT_COLUMNS)}) column; its header is: {', '.join(header)}."
        )
    photos, skipped, seen = [], [], set()
    for line, row in enumerate(rows, start=2):
        name = (row.get(file_column) or "").strip()
        category = (row.get(category_column) or "").strip() if category_column else ""
        product = (row.get(product_column) or "").strip() if product_column else ""
        if not name:
            skipped.append({"photo": f"line {line}", "reason": "the file cell is empty"})
            continue
        if not category and not product:
            skipped.append({"photo": name, "reason": f"line {line} has neither a category nor a product"})
            continue
        path = (csv_path.parent / name).resolve()
        if not path.is_file():
            skipped.append({"photo": name, "reason": f"line {line}: no such file {path}"})
            continue
        if name in seen:
            skipped.append({"photo": name, "reason": f"line {line}: listed twice"})
            continue
        seen.add(name)
        photos.append(
            LabelledPhoto(key=name, category=category or NO_CATEGORY, product=product or name, read=_path_reader(path))
        )
    if not photos:
        raise EvaluationError(f"none of the {len(rows)} row(s) of {csv_path} names a usable photo.")
    return Dataset(source=f"csv {csv_path}", photos=photos, skipped=skipped)


def from_catalog() -> Dataset:
    """The live catalog's photos, labelled by their product's category and id (read-only)."""
    from catalog.models import ProductImage

    photos = []
    images = ProductImage.objects.select_related("product").order_by("product_id", "position", "pk")
    for image in images:
        photos.append(
            LabelledPhoto(
                key=f"image {image.pk} ({image.product.name})",
                category=image.product.category or NO_CATEGORY,
                product=f"product {image.product_id}",
                read=_storage_reader(image.file.name, image.file.storage),
            )
        )
    if not photos:
        raise EvaluationError("the catalog has no photos; import products first (manage.py import_products).")
    return Dataset(source="catalog", photos=photos)


def _storage_reader(name: str, storage) -> Callable[[], bytes]:
    def read() -> bytes:
        with storage.open(name, "rb") as handle:
            return handle.read()

    return read


def restrict(dataset: Dataset, categories: Sequence[str], *, relevance: str, limit_per_category: int = 0) -> Dataset:
    """Keep the named categories (unknown names are an error listing the known ones) and check that each
    query can have a relevant answer; at most ``limit_per_category`` photos per category when > 0."""
    photos, skipped = dataset.photos, list(dataset.skipped)
    if relevance == "category":  # a photo without a category can be neither a query nor a right answer
        skipped += [{"photo": p.key, "reason": "it has no category"} for p in photos if p.category == NO_CATEGORY]
        photos = [photo for photo in photos if photo.category != NO_CATEGORY]
    known = sorted({photo.category for photo in photos})
    if categories:
        lookup = {name.lower(): name for name in known}
        unknown = [name for name in categories if name.lower() not in lookup]
        if unknown:
            raise EvaluationError(
                f"unknown categor{'y' if len(unknown) == 1 else 'ies'}: {', '.join(unknown)}. "
                f"The data set has: {', '.join(known)}."
            )
        wanted = {lookup[name.lower()] for name in categories}
        photos = [photo for photo in photos if photo.category in wanted]
    if limit_per_category > 0:
        taken: Counter = Counter()
        kept = []
        for photo in photos:
            if taken[photo.category] < limit_per_category:
                taken[photo.category] += 1
                kept.append(photo)
        photos = kept
    if relevance == "product":
        per_product = Counter(photo.product for photo in photos)
        if not any(count >= 2 for count in per_product.values()):
            raise EvaluationError(
                "--relevance product needs products with at least two photos (each photo queries for its "
                "product's other photos); none has. Give a CSV with a product column, or use --relevance category."
            )
    elif len(photos) < 2:
        raise EvaluationError("an evaluation needs at least two labelled photos.")
    return Dataset(source=dataset.source, photos=photos, skipped=skipped)
