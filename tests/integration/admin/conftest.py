"""Catalog data with real photos, masks and cutouts for the admin tests, and a view of the task queue."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw

from catalog import services
from catalog.models import EmbeddingSpace, Product, ProductImage
from tests.conftest import demo_photo

SPACE_DIM = 4


def jpeg_bytes(colour=(200, 30, 30), size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_product(index: int, *, photos: int = 1, **fields) -> Product:
    values = {
        "external_id": f"p-{index}",
        "shop": "Shop A",
        "name": f"Product {index}",
        "sku": f"SKU-{index:05d}",
        "price": "19.90",
        "currency": "EUR",
        "category": "dress",
    }
    values.update(fields)
    product, _ = services.upsert_product(**values)
    for n in range(photos):
        services.add_image(product=product, content=jpeg_bytes(((index * 7 + n * 50) % 256, 40, 90)))
    return product


def garment_for(photo: Image.Image, box, *, label: str, embedding) -> services.GarmentData:
    """A garment as the pipeline stores it: box in photo pixels, mask over the whole photo, RGBA cutout."""
    mask = Image.new("L", photo.size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    cutout = photo.convert("RGBA")
    cutout.putalpha(mask)
    return services.GarmentData(
        label=label,
        box=box,
        embedding=embedding,
        score=0.91,
        mask_png=png_bytes(mask),
        cutout_png=png_bytes(cutout.crop(box)),
    )


@pytest.fixture
def space() -> EmbeddingSpace:
    return services.ensure_embedding_space(model_id="test-embedder", dim=SPACE_DIM)


@pytest.fixture
def current_space(monkeypatch, space):
    """Make ``space`` the configured embedder's space, without building a real pipeline."""
    import search.query

    monkeypatch.setattr(search.query, "current_space", lambda: space)
    return space


def dressed_product(index: int, space: EmbeddingSpace, *, category="Dress", embedding=(1.0, 0.0, 0.0, 0.0)):
    """A product with one real demo photo holding two processed garments (masks and cutouts included)."""
    path = demo_photo(category, index)
    product, _ = services.upsert_product(
        external_id=f"demo-{category}-{index}",
        shop="Demo shop",
        name=f"Demo {category} {index}",
        sku=f"D-{index}",
        price="49.00",
        currency="EUR",
        category=category,
    )
    image, _ = services.add_image(product=product, content=path.read_bytes())
    with Image.open(path) as opened:
        photo = opened.convert("RGB")
    width, height = photo.size
    services.replace_garments(
        image=image,
        space=space,
        garments=[
            garment_for(
                photo, (width // 5, height // 10, width * 4 // 5, height * 9 // 10), label=category, embedding=embedding
            ),
            garment_for(  # bags differ from product to product, so the dress decides who is most alike
                photo, (width // 3, height // 2, width * 2 // 3, height - 2), label="bag", embedding=(0, 1, index, 0)
            ),
        ],
    )
    services.mark_image_done(image)
    return product, ProductImage.objects.get(pk=image.pk)


@pytest.fixture
def queued_tasks(monkeypatch, settings):
    """Tasks go to the ORM broker instead of running here, so a test can read what was enqueued:
    returns a function giving ``[(func, args), ...]`` in queue order."""
    from django_q.conf import Conf
    from django_q.models import OrmQ

    monkeypatch.setattr(Conf, "SYNC", False)
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = True

    def read() -> list[tuple[str, tuple]]:
        return [(q.task["func"], tuple(q.task["args"])) for q in OrmQ.objects.order_by("pk")]

    return read
