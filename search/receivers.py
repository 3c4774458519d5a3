"""Wire catalog events to background processing; the catalog does not import search."""

from django.conf import settings
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from catalog.signals import images_need_processing


@receiver(images_need_processing, dispatch_uid="search-enqueue-images")
def enqueue_new_images(sender, image_ids: list[int], **kwargs) -> None:
    if settings.LOOKALIKE_PROCESS_ON_UPLOAD:
        from search.tasks import enqueue_images

        enqueue_images(image_ids)


@receiver(post_migrate, dispatch_uid="search-ensure-schedules")
def create_schedules(sender, app_config=None, using="default", apps=None, **kwargs) -> None:
    """After ``migrate`` (and a test's flush), make sure the periodic schedules exist.

    Django sends post_migrate only for apps with a models module, which search has not: listen for
    django_q's, whose migrations create the Schedule table.
    """
    if app_config is None or app_config.label != "django_q":
        return
    from search.tasks import ensure_schedules

    if apps is None:  # flush: the tables are those of the current models
        ensure_schedules(using=using)
        return
    try:
        schedule_model = apps.get_model("django_q", "Schedule")
    except LookupError:  # django_q's migrations were not applied (``migrate`` of another app only)
        return
    ensure_schedules(schedule_model=schedule_model, using=using)
