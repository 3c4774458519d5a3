"""Background work: turn product photos into garment rows (django-q2 tasks).

Each task claims its image (pending/failed -> processing, row-locked), runs the shared pipeline and swaps
the image's garments in one transaction, so re-running a task is harmless. Failures are recorded on the
image and retried with exponential backoff until IMAGE_MAX_ATTEMPTS; rows left "processing" by a crashed
worker are requeued by ``recover_stale_images``, which runs on a schedule (and when a cluster starts).

A result is written only while the image is still this task's claim (same attempt, same start), checked
under the image's row lock: a worker the recovery gave up on may still finish, and its garments must not
land beside those of the claim that replaced it.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ, Schedule
from django_q.tasks import async_task

from catalog import selectors, services
from catalog.models import ImageStatus, ProductImage
from core.photos import load_image
from search.pipeline.base import GarmentResult
from search.pipeline.cutout import clear_transparent
from search.pipeline.registry import get_pipeline

logger = logging.getLogger(__name__)

TASK_GROUP = "process-image"


def enqueue_image(image_id: int) -> None:
    enqueue_images([image_id])


class _KeptPackages:
    """Takes django-q2's place of the ORM broker inside ``async_task``: keeps each signed task package
    instead of inserting it, so a batch of tasks goes in with one bulk INSERT rather than one per task."""

    def __init__(self, broker: ORM):
        self.list_key = broker.list_key or Conf.CLUSTER_NAME
        self.packages: list[str] = []

    def enqueue(self, package: str) -> int:
        self.packages.append(package)
        return len(self.packages)


def enqueue_images(image_ids: Sequence[int]) -> None:
    """One django-q2 task per image, each as ``async_task`` builds it; on the ORM broker in one INSERT."""
    broker = get_broker()
    kept = _KeptPackages(broker) if isinstance(broker, ORM) else None
    for image_id in image_ids:
        async_task(
            "search.tasks.process_image",
            image_id,
            group=TASK_GROUP,
            task_name=f"process-image-{image_id}",
            broker=kept or broker,
        )
    if kept is not None and kept.packages:
        now = timezone.now()
        OrmQ.objects.using(Conf.ORM).bulk_create(
            [OrmQ(key=kept.list_key, payload=package, lock=now) for package in kept.packages]
        )


def retry_delay_seconds(attempts: int) -> float:
    """Exponential backoff: base, 2x base, 4x base ... after the 1st, 2nd, 3rd failure."""
    return settings.IMAGE_RETRY_BACKOFF_SECONDS * (2 ** max(attempts - 1, 0))


# Lossy WebP keeps the alpha channel at a fraction of PNG's bytes (demo photos: bench/import_speed.py).
CUTOUT_WEBP_QUALITY = 85
# libwebp's effort (0-6): 2 encodes a demo cutout in ~11 ms against ~19 at 4, for 3.6% more bytes and the same
# look (PSNR 37.9 against 38.4 dB where opaque); bench/README.md, "Offline pipeline on 2 cores".
CUTOUT_WEBP_METHOD = 2


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _webp(image) -> bytes:
    """A cutout as lossy WebP with alpha: RGBA PNG cutouts took ~4.4x the photo's bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=CUTOUT_WEBP_QUALITY, method=CUTOUT_WEBP_METHOD)
    return buffer.getvalue()


def _is_whole_photo(result: GarmentResult, photo) -> bool:
    """True when the cutout would be the photo itself: a box over all of it and a mask that keeps it all.

    Then nothing is stored for the garment; readers fall back to the photo.
    """
    box = result.box
    if (round(box.x0), round(box.y0)) != (0, 0) or (round(box.x1), round(box.y1)) != photo.size:
        return False
    return result.mask.convert("L").getextrema()[0] == 255


def _box_in_original_pixels(result: GarmentResult, image: ProductImage, photo) -> tuple[int, int, int, int]:
    """The pipeline saw an upright copy shrunk to max_side; stored boxes refer to the stored photo."""
    scale_x = (image.width or photo.width) / photo.width
    scale_y = (image.height or photo.height) / photo.height
    width, height = image.width or photo.width, image.height or photo.height
    box = result.box
    x0, x1 = sorted((min(max(round(box.x0 * scale_x), 0), width), min(max(round(box.x1 * scale_x), 0), width)))
    y0, y1 = sorted((min(max(round(box.y0 * scale_y), 0), height), min(max(round(box.y1 * scale_y), 0), height)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def _to_garment_data(result: GarmentResult, image: ProductImage, photo) -> services.GarmentData:
    box = result.box
    whole = _is_whole_photo(result, photo)
    return services.GarmentData(
        label=box.label,
        score=box.score,
        box=_box_in_original_pixels(result, image, photo),
        embedding=result.embedding.tolist(),
        mask_png=b"" if whole else _png(result.mask),
        cutout_png=b"" if whole else _webp(clear_transparent(result.cutout)),
    )


def _read_photo(image: ProductImage):
    with image.file.open("rb") as handle:
        content = handle.read()
    return load_image(content, max_side=get_pipeline().max_side)


def _schedule_retry(image: ProductImage, reason: str) -> None:
    delay = retry_delay_seconds(image.attempts)
    Schedule.objects.create(
        name=f"retry-image-{image.pk}-attempt-{image.attempts + 1}",
        func="search.tasks.process_image",
        args=str(image.pk),
        schedule_type=Schedule.ONCE,
        repeats=1,
        next_run=timezone.now() + timedelta(seconds=delay),
    )
    logger.info("image %s failed (attempt %s: %s); retry in %.0f s", image.pk, image.attempts, reason, delay)


def _still_claimed(image: ProductImage) -> bool:
    """Lock the image row (inside the caller's transaction) and check it is still the claim we hold."""
    return (
        ProductImage.objects.select_for_update()
        .filter(
            pk=image.pk,
            status=ImageStatus.PROCESSING,
            attempts=image.attempts,
            processing_started_at=image.processing_started_at,
        )
        .exists()
    )


def _taken_over(image: ProductImage) -> None:
    logger.warning("image %s was requeued while this worker processed it: result dropped", image.pk)


def _fail(image: ProductImage, exc: BaseException) -> bool:
    """Record the failure and schedule a retry; False when the image is no longer this claim."""
    with transaction.atomic():
        if not _still_claimed(image):
            _taken_over(image)
            return False
        reason = f"{type(exc).__name__}: {exc}"
        services.mark_image_failed(image, reason)
        if image.attempts < settings.IMAGE_MAX_ATTEMPTS:
            _schedule_retry(image, reason)
    return True


def _finish(image: ProductImage, space, garments: list[services.GarmentData]) -> bool:
    """Swap the garments and mark the image done in one transaction; False when no longer this claim."""
    with transaction.atomic():
        if not _still_claimed(image):
            _taken_over(image)
            return False
        services.replace_garments(image=image, space=space, garments=garments)
        services.mark_image_done(image)
    return True


def process_images(image_ids: Sequence[int]) -> dict[str, int]:
    """Process several images with one batched pipeline call; each image succeeds or fails on its own."""
    counts = {"done": 0, "failed": 0, "skipped": 0}
    claimed: list[ProductImage] = []
    for image_id in image_ids:
        image = services.claim_image(image_id, max_attempts=settings.IMAGE_MAX_ATTEMPTS)
        if image is None:
            counts["skipped"] += 1
        else:
            claimed.append(image)
    if not claimed:
        return counts
    unfinished = {image.pk: image for image in claimed}

    def failed(image: ProductImage, exc: BaseException) -> None:
        del unfinished[image.pk]
        counts["failed" if _fail(image, exc) else "skipped"] += 1

    try:
        _process_claimed(claimed, counts, unfinished, failed)
    except BaseException as exc:
        # A task timeout, a stopping worker, Ctrl-C in `index --sync`: what was claimed but not finished
        # fails with the reason and is retried after the backoff, rather than waiting for the recovery.
        for image in list(unfinished.values()):
            try:
                failed(image, exc)
            except Exception:  # the connection may be unusable now; the stale-row recovery takes it
                logger.exception("could not record the interruption of image %s", image.pk)
        raise
    return counts


def _process_claimed(claimed: list[ProductImage], counts: dict[str, int], unfinished: dict, failed) -> None:
    try:
        pipeline = get_pipeline()
        space = services.ensure_embedding_space(model_id=pipeline.embedder_id, dim=pipeline.embedding_dim)
    except Exception as exc:  # a model that cannot load fails every claimed image with the reason
        for image in claimed:
            failed(image, exc)
        return

    decoded = []
    for image in claimed:
        try:
            decoded.append((image, _read_photo(image)))
        except Exception as exc:
            failed(image, exc)
    if not decoded:
        return
    try:
        results = pipeline.process([photo for _, photo in decoded])
    except Exception:
        # One bad image must not fail its batch neighbours: fall back to one at a time.
        logger.exception("batched pipeline call failed; retrying images one by one")
        results = None
    for position, (image, photo) in enumerate(decoded):
        try:
            garments = results[position] if results is not None else pipeline.process([photo])[0]
            finished = _finish(image, space, [_to_garment_data(g, image, photo) for g in garments])
            del unfinished[image.pk]
            counts["done" if finished else "skipped"] += 1
        except Exception as exc:
            logger.exception("processing image %s failed", image.pk)
            failed(image, exc)


def process_image(image_id: int) -> str:
    """The django-q2 task for one image; returns "done", "failed" or "skipped" (not claimable)."""
    counts = process_images([int(image_id)])
    return next(status for status, n in counts.items() if n)


def recover_stale_images() -> list[int]:
    """Requeue images a crashed worker left in "processing" (a django-q2 schedule, and each cluster start)."""
    image_ids = services.reset_stale_processing(
        older_than_seconds=settings.IMAGE_STALE_PROCESSING_SECONDS, max_attempts=settings.IMAGE_MAX_ATTEMPTS
    )
    enqueue_images(image_ids)
    return image_ids


RECOVERY_SCHEDULE = "lookalike-recover-stale-images"


def ensure_schedules(*, schedule_model=Schedule, using: str = "default") -> None:
    """Create the stale-row recovery schedule (idempotent; run by ``migrate`` through post_migrate).

    Every minute (django-q2's finest; its scheduler looks every 30 s): the query is cheap, and a photo
    comes back at most a minute after it counts as abandoned.
    """
    schedule_model.objects.using(using).update_or_create(
        name=RECOVERY_SCHEDULE,
        defaults={
            "func": "search.tasks.recover_stale_images",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )


def outdated_image_ids() -> list[int]:
    """Images that must be (re)processed for the current embedder: never indexed in its space."""
    pipeline = get_pipeline()
    space = services.ensure_embedding_space(model_id=pipeline.embedder_id, dim=pipeline.embedding_dim)
    return selectors.image_ids_missing_space(space)


def prepare_index(which: str = "pending") -> list[int]:
    """Choose the photos to (re)index and reset them to pending with a fresh attempt budget.

    ``which``: "pending" (pending plus photos not yet indexed with the current embedder), "failed" or
    "all". Shared by ``manage.py index`` and the admin so the two cannot drift apart.
    """
    recover_stale_images()
    if which == "all":
        image_ids = selectors.image_ids_by_status(*ImageStatus.values)
    elif which == "failed":
        image_ids = selectors.image_ids_by_status(ImageStatus.FAILED)
    elif which == "pending":
        image_ids = sorted(set(selectors.image_ids_by_status(ImageStatus.PENDING)) | set(outdated_image_ids()))
    else:
        raise ValueError(f"which must be pending, failed or all, not {which!r}")
    services.requeue_images(image_ids, announce=False)
    return image_ids


def drop_queued_tasks(image_ids: Sequence[int]) -> int:
    """Delete queued processing tasks of these images (``index --sync`` processes them itself).

    Without this, an import with processing on upload followed by ``index --sync`` leaves one task per
    photo that a later worker would claim for nothing. Only the ORM broker can delete single tasks; with
    another broker they stay and are skipped cheaply (the claim refuses a done image before any model loads).
    Returns how many were deleted.
    """
    broker = get_broker()
    if not isinstance(broker, ORM):
        return 0
    names = {f"process-image-{image_id}" for image_id in image_ids}
    stale = [task.pk for task in OrmQ.objects.using(Conf.ORM).filter(key=broker.list_key) if task.name() in names]
    OrmQ.objects.using(Conf.ORM).filter(pk__in=stale).delete()
    return len(stale)


def enqueue_reindex(all_images: bool) -> int:
    """Queue one task per photo to (re)index; returns how many were queued."""
    image_ids = prepare_index("all" if all_images else "pending")
    enqueue_images(image_ids)
    return len(image_ids)
