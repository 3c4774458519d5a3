"""Wire catalog events to background processing; the catalog does not import search."""

from django.conf import settings
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from catalog.signals import image_needs_processing


@receiver(image_needs_processing, dispatch_uid="search-enqueue-image")
def enqueue_new_image(sender, image_id: int, **kwargs) -> None:
    if settings.LOOKALIKE_PROCESS_ON_UPLOAD:
        from search.tasks import enqueue_image

        enqueue_image(image_id)


@receiver(post_migrate, dispatch_uid="search-ensure-schedules")
def create_schedules(sender, app_config=None, **kwargs) -> None:
    if app_config is not None and app_config.label == "search":
        from search.tasks import ensure_schedules

        ensure_schedules()
