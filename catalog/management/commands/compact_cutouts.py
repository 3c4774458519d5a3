"""manage.py compact_cutouts: re-encode stored RGBA PNG cutouts as WebP, drop whole-photo ones.

Cutouts stored before the switch to WebP stay PNG (and are still served) until this runs.
"""

from __future__ import annotations

import io

from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand
from django.db import transaction
from PIL import Image

from catalog.models import Garment

WEBP_QUALITY = 85


def _whole_photo(garment: Garment) -> bool:
    image = garment.image
    if garment.box != (0, 0, image.width, image.height):
        return False
    if not garment.mask:
        return True
    with garment.mask.open("rb") as handle, Image.open(handle) as mask:
        return mask.convert("L").getextrema()[0] == 255


class Command(BaseCommand):
    help = "Re-encode PNG cutouts as WebP (quality 85, alpha kept); remove cutouts that are the whole photo."

    def handle(self, *args, **options):
        converted = dropped = saved = 0
        garments = Garment.objects.select_related("image").filter(cutout__endswith=".png").order_by("pk")
        for garment in garments.iterator(chunk_size=200):
            old_names = [garment.cutout.name]
            old_size = garment.cutout.size
            with transaction.atomic():
                if _whole_photo(garment):
                    old_names += [garment.mask.name] if garment.mask else []
                    garment.cutout, garment.mask = "", ""
                    dropped += 1
                    saved += old_size
                else:
                    with garment.cutout.open("rb") as handle, Image.open(handle) as cutout:
                        buffer = io.BytesIO()
                        cutout.convert("RGBA").save(buffer, format="WEBP", quality=WEBP_QUALITY, method=4)
                    garment.cutout.save("cutout.webp", ContentFile(buffer.getvalue()), save=False)
                    converted += 1
                    saved += old_size - len(buffer.getvalue())
                garment.save(update_fields=["cutout", "mask"])
                storage = Garment._meta.get_field("cutout").storage
                transaction.on_commit(lambda names=old_names, storage=storage: [storage.delete(n) for n in names])
        self.stdout.write(
            self.style.SUCCESS(
                f"{converted} cutout(s) re-encoded as WebP, {dropped} whole-photo cutout(s) removed, "
                f"{saved / 1e6:.1f} MB freed."
            )
        )
