"""Stored files follow their rows: a deleted photo or garment takes its files (and thumbnails) with it.

Removal waits for the deleting transaction to commit, so a rolled-back delete loses nothing.
"""

from __future__ import annotations

import logging
import shutil

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from catalog.models import Garment, ProductImage
from catalog.thumbnails import image_dir

logger = logging.getLogger(__name__)


def _delete_after_commit(storage, names: list[str]) -> None:
    def delete() -> None:
        for name in names:
            try:
                storage.delete(name)
            except OSError as exc:  # a file already gone or unreadable must not fail the delete
                logger.warning("could not remove stored file %s: %s", name, exc)

    if names:
        transaction.on_commit(delete)


@receiver(post_delete, sender=ProductImage, dispatch_uid="catalog-remove-image-files")
def remove_image_files(sender, instance: ProductImage, **kwargs) -> None:
    _delete_after_commit(instance.file.storage, [instance.file.name] if instance.file else [])
    thumbnails = image_dir(instance.pk)
    transaction.on_commit(lambda: shutil.rmtree(thumbnails, ignore_errors=True))


@receiver(post_delete, sender=Garment, dispatch_uid="catalog-remove-garment-files")
def remove_garment_files(sender, instance: Garment, **kwargs) -> None:
    _delete_after_commit(instance.cutout.storage, [f.name for f in (instance.mask, instance.cutout) if f])
