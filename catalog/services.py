"""Writes to the catalog. Views, commands, tasks and the API call these, never the models directly."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from catalog.models import EmbeddingSpace, Garment, ImageStatus, Product, ProductImage
from catalog.signals import images_need_processing
from catalog.vocabulary import PRODUCT_FIELDS
from core.errors import DomainError
from core.photos import CheckedPhoto, check_photo

logger = logging.getLogger(__name__)

__all__ = [
    "GarmentData",
    "InvalidProduct",
    "NewPhoto",
    "ProductInput",
    "add_image",
    "add_images",
    "announce_in_bulk",
    "claim_image",
    "ensure_embedding_space",
    "mark_image_done",
    "mark_image_failed",
    "replace_garments",
    "requeue_images",
    "reset_stale_processing",
    "upsert_product",
    "upsert_products",
]


class InvalidProduct(DomainError):
    """A product record that cannot be stored; the message names the field."""

    code = "invalid_product"


@dataclass(frozen=True)
class GarmentData:
    """What the pipeline found for one garment, as plain data (the catalog knows no ML types)."""

    label: str
    box: tuple[int, int, int, int]
    embedding: Sequence[float]
    score: float | None = None
    mask_png: bytes = b""
    # Encoded cutout, WebP (the pipeline's) or PNG; empty when it is the whole photo (nothing stored).
    cutout_png: bytes = b""


def _image_suffix(data: bytes) -> str:
    return "webp" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else "png"


def _clean_price(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        price = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise InvalidProduct(f"price {value!r} is not a number") from exc
    if not price.is_finite() or price < 0:
        raise InvalidProduct(f"price {value!r} must be a non-negative number")
    return price.quantize(Decimal("0.01"))


def _clean_fields(fields: dict) -> dict:
    unknown = set(fields) - set(PRODUCT_FIELDS)
    if unknown:
        raise InvalidProduct(f"unknown product field(s): {', '.join(sorted(unknown))}")
    cleaned = {key: value for key, value in fields.items() if value is not None}
    for key, value in list(cleaned.items()):
        if isinstance(value, str):
            cleaned[key] = value.strip()
    if "price" in cleaned:
        cleaned["price"] = _clean_price(cleaned["price"])
    if "currency" in cleaned:
        currency = cleaned["currency"].upper()
        if currency and (len(currency) != 3 or not currency.isalpha()):
            raise InvalidProduct(f"currency {fields['currency']!r} is not a 3-letter ISO 4217 code")
        cleaned["currency"] = currency
    if "name" in cleaned and not cleaned["name"]:
        raise InvalidProduct("name is empty")
    for key, value in cleaned.items():
        if isinstance(value, str):
            limit = Product._meta.get_field(key).max_length
            if limit and len(value) > limit:
                raise InvalidProduct(f"{key} is longer than {limit} characters")
    return cleaned


@transaction.atomic
def upsert_product(
    *, source_url: str | None = None, shop: str | None = None, external_id: str | None = None, **fields
) -> tuple[Product, bool]:
    """Create or update a product keyed by canonical ``source_url``, else by ``(shop, external_id)``.

    Fields passed as None are left unchanged, so a partial record never erases what is known.
    """
    if not source_url and not external_id:
        raise InvalidProduct("a product needs a source URL or an id")
    cleaned = _clean_fields({"shop": shop, **fields})
    if source_url:
        lookup = {"source_url": source_url}
    else:
        lookup = {"shop": cleaned.get("shop", ""), "external_id": str(external_id)}
    product = Product.objects.select_for_update().filter(**lookup).first()
    if product is None and source_url and external_id:
        # An imported product that later got its URL: keep one row.
        product = (
            Product.objects.select_for_update().filter(shop=cleaned.get("shop", ""), external_id=external_id).first()
        )
    item = ProductInput(source_url=source_url, external_id=external_id, shop=shop, fields=fields)
    product, created, changed = _apply(product, item, cleaned)
    if created or changed:  # a record that changes nothing writes nothing, as in upsert_products
        product.save()
    return product, created


@dataclass(frozen=True)
class ProductInput:
    """One record for ``upsert_products``: the keys and fields ``upsert_product`` takes."""

    source_url: str | None = None
    external_id: str | None = None
    shop: str | None = None
    fields: dict = field(default_factory=dict)


def _lookup_keys(item: ProductInput, shop: str) -> set[tuple]:
    keys = set()
    if item.source_url:
        keys.add(("url", item.source_url))
    if item.external_id:
        keys.add(("id", shop, str(item.external_id)))
    return keys


# Every column a record can change.
_RECORD_COLUMNS = ("source_url", "external_id", *PRODUCT_FIELDS)


@transaction.atomic
def upsert_products(items: Sequence[ProductInput]) -> list[tuple[Product, bool] | InvalidProduct]:
    """``upsert_product`` for many records in a handful of queries instead of a few per record.

    Each result is ``(product, created)`` or the record's InvalidProduct; the outcome is the one calling
    ``upsert_product`` on each record in order would give. A record naming a product that an earlier record
    of the same call also names is applied afterwards on its own, so the later record still wins.
    Database errors (a concurrent writer took a key) propagate: the caller can retry record by record.
    """
    results: list = [None] * len(items)
    prepared: dict[int, dict] = {}
    deferred: list[int] = []
    seen: set[tuple] = set()
    for index, item in enumerate(items):
        try:
            if not item.source_url and not item.external_id:
                raise InvalidProduct("a product needs a source URL or an id")
            cleaned = _clean_fields({"shop": item.shop, **item.fields})
        except InvalidProduct as exc:
            results[index] = exc
            continue
        keys = _lookup_keys(item, cleaned.get("shop", ""))
        if keys & seen:
            deferred.append(index)
        else:
            prepared[index] = cleaned
        seen |= keys

    urls = {items[i].source_url for i in prepared if items[i].source_url}
    ids = {str(items[i].external_id) for i in prepared if items[i].external_id}
    by_url = {p.source_url: p for p in Product.objects.select_for_update().filter(source_url__in=urls)}
    by_id = {(p.shop, p.external_id): p for p in Product.objects.select_for_update().filter(external_id__in=ids)}

    created_rows, updated_rows, changed_columns, claimed = [], [], set(), set()
    for index, cleaned in prepared.items():
        item = items[index]
        shop = cleaned.get("shop", "")
        product = by_url.get(item.source_url) if item.source_url else None
        if product is None and item.external_id:
            product = by_id.get((shop, str(item.external_id)))
        if product is not None and product.pk in claimed:  # reached through another key earlier
            deferred.append(index)
            continue
        try:
            product, created, changed = _apply(product, item, cleaned)
        except InvalidProduct as exc:
            results[index] = exc
            continue
        if created:
            created_rows.append(product)
        else:
            claimed.add(product.pk)
            if changed:  # a record that changes nothing writes nothing (a re-import is reads only)
                updated_rows.append(product)
                changed_columns |= changed
        results[index] = (product, created)

    Product.objects.bulk_create(created_rows)
    now = timezone.now()
    for product in updated_rows:
        product.updated_at = now
    # Only the columns some record changed: bulk_update's CASE per row and column is the slow part.
    Product.objects.bulk_update(updated_rows, [*sorted(changed_columns), "updated_at"])
    for index in sorted(deferred):
        item = items[index]
        try:
            results[index] = upsert_product(
                source_url=item.source_url, shop=item.shop, external_id=item.external_id, **item.fields
            )
        except InvalidProduct as exc:
            results[index] = exc
    return results


def _apply(product: Product | None, item: ProductInput, cleaned: dict) -> tuple[Product, bool, set[str]]:
    """The record's changes on ``product`` (a new one when None), validated as ``upsert_product`` does;
    returns the product, whether it is new, and the columns of a stored one that changed."""
    created = product is None
    if created:
        if not cleaned.get("name"):
            raise InvalidProduct("name is required for a new product")
        product = Product(source_url=item.source_url or None, external_id=item.external_id)
    if cleaned.get("price", product.price) is not None and not cleaned.get("currency", product.currency):
        raise InvalidProduct("a price needs a currency")  # checked before any change to the instance
    original = {name: getattr(product, name) for name in _RECORD_COLUMNS}
    if item.source_url and not product.source_url:
        product.source_url = item.source_url
    if item.external_id and not product.external_id:
        product.external_id = str(item.external_id)
    for key, value in cleaned.items():
        setattr(product, key, value)
    if created:
        return product, True, set()
    return product, False, {name for name, value in original.items() if getattr(product, name) != value}


_bulk = threading.local()


def _send_announcements(image_ids: list[int]) -> None:
    if not image_ids:
        return
    # One transaction around the receivers: queueing on the ORM broker then commits once, not per photo.
    with transaction.atomic():
        images_need_processing.send(sender=ProductImage, image_ids=list(image_ids))


@contextmanager
def announce_in_bulk() -> Iterator[None]:
    """Announce the photos stored inside this block together, once the enclosing transaction commits.

    Use it inside ``transaction.atomic()``: each photo is still announced only if its savepoint survived
    (the ids are collected by on_commit callbacks), but the receivers run in one go after the commit.
    """
    if getattr(_bulk, "ids", None) is not None:  # nested: the outer block announces
        yield
        return
    ids: list[int] = []
    _bulk.ids = ids
    try:
        yield
    finally:
        _bulk.ids = None
    transaction.on_commit(lambda: _send_announcements(ids))


def _announce(*image_ids: int) -> None:
    ids = getattr(_bulk, "ids", None)
    if ids is not None:
        transaction.on_commit(lambda: ids.extend(image_ids))
    else:
        transaction.on_commit(lambda: _send_announcements(list(image_ids)))


@transaction.atomic
def add_image(
    *,
    product: Product,
    content: bytes | None = None,
    photo: CheckedPhoto | None = None,
    source_url: str = "",
    position: int | None = None,
):
    """Store a photo of ``product`` unless the same bytes are already there; returns ``(image, created)``.

    Pass ``content`` to have it checked here (PhotoError otherwise), or a ``photo`` that ``core.photos``
    already checked (a crawled download), so no photo is decoded twice. Processing is announced only after
    the transaction commits, so a worker never sees a row that may still roll back.
    """
    if (content is None) == (photo is None):
        raise TypeError("add_image() takes either content or photo")
    data = photo.content if photo is not None else content
    digest = hashlib.sha256(data).hexdigest()
    existing = ProductImage.objects.filter(product=product, sha256=digest).first()
    if existing is not None:
        return existing, False
    if photo is None:
        photo = check_photo(data)
    if position is None:
        position = product.images.count()
    image = ProductImage(
        product=product,
        source_url=source_url or "",
        sha256=digest,
        position=position,
    )
    image.file.save(f"photo.{photo.extension}", ContentFile(data), save=False)
    image.width, image.height = photo.width, photo.height  # known already: no second decode
    image.save()
    _announce(image.pk)
    return image, True


@dataclass(frozen=True)
class NewPhoto:
    """One photo for ``add_images``: checked by ``core.photos`` already (decoded once, never here)."""

    product: Product
    photo: CheckedPhoto
    source_url: str = ""
    position: int | None = None


_file_writers: ThreadPoolExecutor | None = None
_file_writers_lock = threading.Lock()


def _writers() -> ThreadPoolExecutor:
    """Threads that write photo files: storage writes wait on the disk or the network, not on the CPU."""
    global _file_writers
    with _file_writers_lock:
        if _file_writers is None:
            _file_writers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="catalog-files")
        return _file_writers


@transaction.atomic
def add_images(items: Sequence[NewPhoto]) -> list[tuple[ProductImage, bool]]:
    """``add_image`` for many checked photos: one lookup of known bytes, files written in parallel, one INSERT.

    Each result is ``(image, created)`` as ``add_image`` gives it; a photo repeated within ``items`` for the
    same product is stored once. All or nothing: on an error no row stays and the written files are removed.
    """
    digests = [hashlib.sha256(item.photo.content).hexdigest() for item in items]
    product_ids = {item.product.pk for item in items}
    known = {
        (image.product_id, image.sha256): image
        for image in ProductImage.objects.filter(product_id__in=product_ids, sha256__in=set(digests))
    }
    counts: dict[int, int] = {}
    if any(item.position is None for item in items):
        counts = dict(
            ProductImage.objects.filter(product_id__in=product_ids)
            .values_list("product_id")
            .annotate(n=Count("id"))
            .values_list("product_id", "n")
        )
    results: list[tuple[ProductImage, bool]] = []
    new: list[tuple[ProductImage, CheckedPhoto]] = []
    for item, digest in zip(items, digests, strict=True):
        existing = known.get((item.product.pk, digest))
        if existing is not None:
            results.append((existing, False))
            continue
        position = item.position
        if position is None:
            position = counts.get(item.product.pk, 0)
            counts[item.product.pk] = position + 1
        image = ProductImage(
            product=item.product,
            source_url=item.source_url or "",
            sha256=digest,
            position=position,
            width=item.photo.width,
            height=item.photo.height,
        )
        known[(item.product.pk, digest)] = image
        new.append((image, item.photo))
        results.append((image, True))
    if not new:
        return results
    file_field = ProductImage._meta.get_field("file")

    def write(pair: tuple[ProductImage, CheckedPhoto]) -> str:
        image, photo = pair
        name = file_field.generate_filename(image, f"photo.{photo.extension}")
        return file_field.storage.save(name, ContentFile(photo.content), max_length=file_field.max_length)

    written = [_writers().submit(write, pair) for pair in new]
    try:
        for (image, _photo), future in zip(new, written, strict=True):
            image.file.name = future.result()  # stored already: only the name is set, no second write
        ProductImage.objects.bulk_create([image for image, _photo in new])
    except BaseException:
        _delete_files(file_field.storage, [future.result() for future in written if future.exception() is None])
        raise
    _announce(*[image.pk for image, _photo in new])
    return results


def _delete_files(storage, names: Sequence[str]) -> None:
    for name in names:
        try:
            storage.delete(name)
        except OSError as exc:
            logger.warning("could not remove stored file %s: %s", name, exc)


def hnsw_index_sql(
    *, index_name: str, space_id: int, dim: int, m: int, ef_construction: int, table: str = "catalog_garment"
) -> str:
    """DDL of a space's partial HNSW index: half-precision copies of the vectors, cosine distance.

    halfvec halves the index (1M x 512-d: ~1.6 GB instead of ~3 GB), so more of it stays in memory and a
    query reads half the bytes; bench/README.md shows recall is unchanged. The table keeps full precision.
    ``table`` is for bench/search.py, which measures this exact index on its own table.
    """
    return (
        f"CREATE INDEX IF NOT EXISTS {index_name} ON {table} "
        f"USING hnsw ((embedding::halfvec({int(dim)})) halfvec_cosine_ops) "
        f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)}) "
        f"WHERE space_id = {int(space_id)}"
    )


def ensure_embedding_space(*, model_id: str, dim: int) -> EmbeddingSpace:
    """The space for a model, with its partial HNSW cosine index (created once, idempotent)."""
    space, _ = EmbeddingSpace.objects.get_or_create(model_id=model_id, defaults={"dim": dim})
    if space.dim != dim:
        raise ValueError(
            f"model {model_id!r} was registered with {space.dim} dimensions but now produces {dim}; "
            "use a new model id for different weights"
        )
    # Workers that meet a new space at the same moment would each run CREATE INDEX IF NOT EXISTS, and
    # PostgreSQL lets only one of them through (the others fail with a duplicate pg_class key): one at a time.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('lookalike-space-index'), %s)", [space.pk])
        cursor.execute(  # this schema only: an evaluation schema has a space of its own
            "SELECT 1 FROM pg_indexes WHERE indexname = %s AND schemaname = current_schema()", [space.index_name]
        )
        if cursor.fetchone() is None:
            if connection.in_atomic_block:
                # CREATE INDEX refuses to run while deferred FK checks are pending: run them now instead.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(
                hnsw_index_sql(
                    index_name=space.index_name,
                    space_id=space.pk,
                    dim=dim,
                    m=settings.HNSW_M,
                    ef_construction=settings.HNSW_EF_CONSTRUCTION,
                )
            )
    return space


@transaction.atomic
def replace_garments(*, image: ProductImage, space: EmbeddingSpace, garments: Iterable[GarmentData]) -> list[Garment]:
    """Swap all of the image's garments for new ones in one transaction (re-running is harmless).

    Rows of other spaces go too: after a model change a re-indexed image keeps no vectors of the old model.
    """
    Garment.objects.filter(image=image).delete()
    rows = []
    for data in garments:
        if len(data.embedding) != space.dim:
            raise ValueError(f"embedding has {len(data.embedding)} dimensions, the space expects {space.dim}")
        x0, y0, x1, y1 = (int(round(v)) for v in data.box)
        garment = Garment(
            image=image,
            space=space,
            label=data.label,
            score=data.score,
            box_x0=x0,
            box_y0=y0,
            box_x1=x1,
            box_y1=y1,
            embedding=list(map(float, data.embedding)),
        )
        if data.mask_png:
            garment.mask.save("mask.png", ContentFile(data.mask_png), save=False)
        if data.cutout_png:
            garment.cutout.save(f"cutout.{_image_suffix(data.cutout_png)}", ContentFile(data.cutout_png), save=False)
        rows.append(garment)
    return Garment.objects.bulk_create(rows)


def claim_image(image_id: int, *, max_attempts: int) -> ProductImage | None:
    """Move a pending/failed image to "processing" and count the attempt; None if it is not claimable.

    Row locking (SKIP LOCKED) means two workers never process the same image at once.
    """
    with transaction.atomic():
        image = (
            ProductImage.objects.select_for_update(skip_locked=True)
            .filter(pk=image_id, status__in=[ImageStatus.PENDING, ImageStatus.FAILED], attempts__lt=max_attempts)
            .first()
        )
        if image is None:
            return None
        image.status = ImageStatus.PROCESSING
        image.attempts += 1
        image.processing_started_at = timezone.now()
        image.save(update_fields=["status", "attempts", "processing_started_at", "updated_at"])
        return image


def mark_image_done(image: ProductImage) -> None:
    image.status = ImageStatus.DONE
    image.error = ""
    image.processed_at = timezone.now()
    image.save(update_fields=["status", "error", "processed_at", "updated_at"])


def mark_image_failed(image: ProductImage, error: str) -> None:
    image.status = ImageStatus.FAILED
    image.error = error[:4000]
    image.processed_at = timezone.now()
    image.save(update_fields=["status", "error", "processed_at", "updated_at"])


def requeue_images(image_ids: Iterable[int], *, announce: bool = True) -> int:
    """Put images back to pending with a fresh attempt budget (an operator's "reprocess")."""
    ids = list(image_ids)
    with transaction.atomic():
        count = ProductImage.objects.filter(pk__in=ids).update(
            status=ImageStatus.PENDING, attempts=0, error="", processing_started_at=None, updated_at=timezone.now()
        )
        if announce:
            _announce(*ids)
    return count


def reset_stale_processing(*, older_than_seconds: int, max_attempts: int) -> list[int]:
    """Images left "processing" by a crashed worker go back to pending (or failed once out of attempts).

    Returns the ids that went back to pending, for the caller to enqueue again.
    """
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    message = "the worker stopped while processing this image"
    with transaction.atomic():
        stale = ProductImage.objects.select_for_update(skip_locked=True).filter(
            status=ImageStatus.PROCESSING, processing_started_at__lt=cutoff
        )
        retry_ids = list(stale.filter(attempts__lt=max_attempts).values_list("pk", flat=True))
        now = timezone.now()
        exhausted = stale.filter(attempts__gte=max_attempts).update(
            status=ImageStatus.FAILED, error=f"{message} (no attempts left)", processed_at=now, updated_at=now
        )
        if retry_ids:
            ProductImage.objects.filter(pk__in=retry_ids).update(
                status=ImageStatus.PENDING, error=f"{message}; requeued", updated_at=now
            )
    if retry_ids or exhausted:
        logger.warning("stale processing rows: %d requeued, %d failed for good", len(retry_ids), exhausted)
    return retry_ids
