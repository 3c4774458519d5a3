"""manage.py index: (re)process product photos into garments and vectors, in batches."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand
from tqdm import tqdm

from catalog import selectors
from catalog.models import ImageStatus
from search import tasks
from search.pipeline.registry import get_pipeline


class Command(BaseCommand):
    help = (
        "Process product photos with the configured pipeline. Default: pending images plus images not yet "
        "indexed with the current embedder. Without --sync the work is queued for the worker (qcluster)."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--pending", action="store_true", help="pending and outdated images (default)")
        which.add_argument("--failed", action="store_true", help="images whose processing failed")
        which.add_argument("--all", action="store_true", help="every image (a clean re-index)")
        parser.add_argument("--sync", action="store_true", help="process here and now instead of queueing")
        parser.add_argument("--batch-size", type=int, default=None, help="images per pipeline call")

    def handle(self, *args, failed: bool, all: bool, sync: bool, batch_size: int | None, **options):
        pipeline = get_pipeline()
        self.stdout.write(f"Pipeline: {pipeline.describe()}")
        image_ids = tasks.prepare_index("all" if all else "failed" if failed else "pending")
        if not image_ids:
            self.stdout.write(self.style.SUCCESS("Nothing to index."))
            return
        if not sync:
            tasks.enqueue_images(image_ids)
            self.stdout.write(
                self.style.SUCCESS(f"Queued {len(image_ids)} image(s); run `python manage.py qcluster` to process.")
            )
            return
        dropped = tasks.drop_queued_tasks(image_ids)  # processed here: a worker must not redo them
        if dropped:
            self.stdout.write(f"Removed {dropped} queued task(s) for these images: they are processed here.")
        size = batch_size or settings.LOOKALIKE_BATCH_SIZE
        totals = {"done": 0, "failed": 0, "skipped": 0}
        with tqdm(total=len(image_ids), unit="img", desc="Indexing", file=self.stderr) as progress:
            for start in range(0, len(image_ids), size):
                batch = image_ids[start : start + size]
                for status, count in tasks.process_images(batch).items():
                    totals[status] += count
                progress.update(len(batch))
                progress.set_postfix(done=totals["done"], failed=totals["failed"])
        style = self.style.WARNING if totals["failed"] else self.style.SUCCESS
        self.stdout.write(
            style(f"Indexed {totals['done']} image(s), {totals['failed']} failed, {totals['skipped']} skipped.")
        )
        if totals["failed"]:
            for image_id in selectors.image_ids_by_status(ImageStatus.FAILED)[:10]:
                image = selectors.get_image(image_id)
                self.stdout.write(f"  image {image_id}: {image.error}")
