"""Catalog models, constraints and services against the real PostgreSQL."""

from __future__ import annotations

import io
import os
import re
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from PIL import Image

from catalog import selectors, services
from catalog.models import EmbeddingSpace, Garment, ImageStatus, Product, ProductImage
from core.photos import PhotoError
from tests.conftest import demo_photo

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_background_processing")]


def jpeg_bytes(colour=(200, 30, 30), size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def make_product(**overrides) -> Product:
    fields = {"external_id": "p-1", "shop": "Shop", "name": "Red dress", "price": "19.90", "currency": "eur"}
    fields.update(overrides)
    return services.upsert_product(**fields)[0]


class TestConstraints:
    def test_source_url_is_unique(self):
        Product.objects.create(name="A", source_url="https://shop.example/p/1")
        with pytest.raises(IntegrityError), transaction.atomic():
            Product.objects.create(name="B", source_url="https://shop.example/p/1")

    def test_external_id_unique_per_shop_only(self):
        Product.objects.create(name="A", shop="one", external_id="42")
        Product.objects.create(name="B", shop="two", external_id="42")
        with pytest.raises(IntegrityError), transaction.atomic():
            Product.objects.create(name="C", shop="one", external_id="42")

    def test_products_without_url_or_id_do_not_collide(self):
        Product.objects.create(name="A")
        Product.objects.create(name="B")
        assert Product.objects.count() == 2

    def test_price_cannot_be_negative(self):
        with pytest.raises(IntegrityError), transaction.atomic():
            Product.objects.create(name="A", price=Decimal("-1"), currency="EUR")

    def test_price_needs_currency(self):
        with pytest.raises(IntegrityError), transaction.atomic():
            Product.objects.create(name="A", price=Decimal("5"))

    def test_same_photo_twice_on_one_product_is_refused(self):
        product = make_product()
        ProductImage.objects.create(product=product, sha256="a" * 64, file="x.jpg", width=1, height=1)
        with pytest.raises(IntegrityError), transaction.atomic():
            ProductImage.objects.create(product=product, sha256="a" * 64, file="y.jpg", width=1, height=1)

    def test_garment_box_must_not_be_empty(self):
        product = make_product()
        image = ProductImage.objects.create(product=product, sha256="b" * 64, file="x.jpg", width=1, height=1)
        space = EmbeddingSpace.objects.create(model_id="m", dim=3)
        with pytest.raises(IntegrityError), transaction.atomic():
            Garment.objects.create(
                image=image, space=space, label="dress", box_x0=5, box_y0=5, box_x1=5, box_y1=9, embedding=[1, 0, 0]
            )

    def test_space_dimension_within_hnsw_limit(self):
        with pytest.raises(IntegrityError), transaction.atomic():
            EmbeddingSpace.objects.create(model_id="too-big", dim=4096)


class TestUpsertProduct:
    def test_creates_then_updates_by_external_id(self):
        product, created = services.upsert_product(external_id="7", shop="S", name="Shirt", price="9.5", currency="usd")
        assert created
        assert product.price == Decimal("9.50")
        assert product.currency == "USD"
        again, created = services.upsert_product(external_id="7", shop="S", name="Shirt v2", price=None)
        assert not created
        assert again.pk == product.pk
        assert again.name == "Shirt v2"
        assert again.price == Decimal("9.50"), "a field passed as None must be left unchanged"
        assert Product.objects.count() == 1

    def test_keyed_by_source_url(self):
        url = "https://shop.example/products/blue-jeans"
        first, created = services.upsert_product(source_url=url, name="Jeans", colour="blue")
        second, created_again = services.upsert_product(source_url=url, name="Jeans", colour="navy")
        assert created and not created_again
        assert first.pk == second.pk
        assert selectors.product_by_source_url(url).colour == "navy"

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"name": "A", "price": "abc", "currency": "EUR"}, "not a number"),
            ({"name": "A", "price": "-3", "currency": "EUR"}, "non-negative"),
            ({"name": "A", "price": "3"}, "needs a currency"),
            ({"name": "A", "price": "3", "currency": "EURO"}, "3-letter"),
            ({"name": "  "}, "name is empty"),
            ({"name": "A", "colour": "x" * 101}, "longer than 100"),
            ({"name": "A", "bogus": 1}, "unknown product field"),
        ],
    )
    def test_bad_fields_are_refused_with_a_clear_message(self, fields, message):
        with pytest.raises(services.InvalidProduct, match=message):
            services.upsert_product(external_id="x", **fields)
        assert Product.objects.count() == 0

    def test_needs_a_key(self):
        with pytest.raises(services.InvalidProduct, match="source URL or an id"):
            services.upsert_product(name="orphan")


class TestAddImage:
    def test_stores_real_photo_under_generated_name_with_size(self):
        product = make_product()
        path = demo_photo("T-Shirt")
        image, created = services.add_image(
            product=product, content=path.read_bytes(), source_url="https://x/shop-photo.jpg"
        )
        assert created
        assert image.status == ImageStatus.PENDING
        stored_name = image.file.name.rsplit("/", 1)[-1]
        assert path.stem not in stored_name and "shop-photo" not in stored_name
        assert re.fullmatch(r"[0-9a-f]{32}\.jpg", stored_name)
        with Image.open(path) as original:
            assert (image.width, image.height) == original.size
        assert len(image.sha256) == 64

    def test_same_bytes_are_deduplicated(self):
        product = make_product()
        content = jpeg_bytes()
        first, created = services.add_image(product=product, content=content)
        second, created_again = services.add_image(product=product, content=content)
        assert created and not created_again
        assert first.pk == second.pk
        assert product.images.count() == 1

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (b"", "empty"),
            (b"<html>not an image</html>", "not an image"),
            (jpeg_bytes()[:200], "damaged or truncated"),
        ],
    )
    def test_bad_bytes_are_refused_and_nothing_is_stored(self, content, message):
        product = make_product()
        with pytest.raises(PhotoError, match=message):
            services.add_image(product=product, content=content)
        assert ProductImage.objects.count() == 0

    @pytest.mark.django_db(transaction=True)
    def test_new_image_is_announced_only_after_commit(self):
        from catalog.signals import images_need_processing

        announced: list[int] = []

        def listener(sender, image_ids, **kwargs):
            announced.extend(image_ids)

        images_need_processing.connect(listener)
        try:
            product = make_product()
            with transaction.atomic():
                image, _ = services.add_image(product=product, content=jpeg_bytes())
                assert announced == []
            assert announced == [image.pk]
            with pytest.raises(RuntimeError), transaction.atomic():
                services.add_image(product=product, content=jpeg_bytes(colour=(0, 0, 255)))
                raise RuntimeError("roll back")
            assert announced == [image.pk], "a rolled-back image must never be announced"
        finally:
            images_need_processing.disconnect(listener)


class TestGarmentsAndSpaces:
    def test_replace_garments_is_atomic_and_idempotent(self):
        product = make_product()
        image, _ = services.add_image(product=product, content=jpeg_bytes())
        space = services.ensure_embedding_space(model_id="test-model", dim=3)
        data = [
            services.GarmentData(label="dress", box=(0, 0, 10, 20), embedding=[1, 0, 0], score=0.9),
            services.GarmentData(label="shoes", box=(5, 5, 9, 9), embedding=[0, 1, 0]),
        ]
        services.replace_garments(image=image, space=space, garments=data)
        services.replace_garments(image=image, space=space, garments=data)
        assert Garment.objects.filter(image=image).count() == 2
        bad = [data[0], services.GarmentData(label="x", box=(0, 0, 1, 1), embedding=[1, 0])]
        with pytest.raises(ValueError, match="dimensions"):
            services.replace_garments(image=image, space=space, garments=bad)
        assert Garment.objects.filter(image=image).count() == 2, "a failed replace must keep the old rows"

    def test_new_model_replaces_old_vectors_of_the_image(self):
        product = make_product()
        image, _ = services.add_image(product=product, content=jpeg_bytes())
        old = services.ensure_embedding_space(model_id="old", dim=2)
        new = services.ensure_embedding_space(model_id="new", dim=3)
        services.replace_garments(image=image, space=old, garments=[services.GarmentData("a", (0, 0, 2, 2), [1, 0])])
        assert selectors.image_ids_missing_space(new) == [image.pk]
        services.replace_garments(image=image, space=new, garments=[services.GarmentData("a", (0, 0, 2, 2), [1, 0, 0])])
        assert list(Garment.objects.values_list("space__model_id", flat=True)) == ["new"]
        assert selectors.image_ids_missing_space(new) == []

    def test_space_refuses_a_dimension_change(self):
        services.ensure_embedding_space(model_id="m", dim=4)
        with pytest.raises(ValueError, match="new model id"):
            services.ensure_embedding_space(model_id="m", dim=8)

    def test_each_space_gets_its_partial_hnsw_index(self):
        from django.db import connection

        space = services.ensure_embedding_space(model_id="indexed", dim=5)
        services.ensure_embedding_space(model_id="indexed", dim=5)  # idempotent
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [space.index_name])
            (definition,) = cursor.fetchone()
        assert "hnsw" in definition
        assert "::halfvec(5)) halfvec_cosine_ops" in definition
        assert f"space_id = {space.pk}" in definition


class TestProcessingStateMachine:
    def test_claim_counts_attempts_and_respects_the_limit(self):
        product = make_product()
        image, _ = services.add_image(product=product, content=jpeg_bytes())
        claimed = services.claim_image(image.pk, max_attempts=2)
        assert claimed.status == ImageStatus.PROCESSING and claimed.attempts == 1
        assert services.claim_image(image.pk, max_attempts=2) is None, "a processing image is not claimable"
        services.mark_image_failed(claimed, "boom")
        again = services.claim_image(image.pk, max_attempts=2)
        assert again.attempts == 2
        services.mark_image_failed(again, "boom")
        assert services.claim_image(image.pk, max_attempts=2) is None, "out of attempts"
        assert services.requeue_images([image.pk], announce=False) == 1
        assert services.claim_image(image.pk, max_attempts=2).attempts == 1

    def test_stale_processing_rows_are_recovered(self):
        from datetime import timedelta

        from django.utils import timezone

        product = make_product()
        fresh, _ = services.add_image(product=product, content=jpeg_bytes(colour=(1, 2, 3)))
        stale, _ = services.add_image(product=product, content=jpeg_bytes(colour=(90, 2, 3)))
        exhausted, _ = services.add_image(product=product, content=jpeg_bytes(colour=(1, 200, 3)))
        for image in (fresh, stale, exhausted):
            services.claim_image(image.pk, max_attempts=3)
        long_ago = timezone.now() - timedelta(hours=2)
        ProductImage.objects.filter(pk__in=[stale.pk, exhausted.pk]).update(processing_started_at=long_ago)
        ProductImage.objects.filter(pk=exhausted.pk).update(attempts=3)
        requeued = services.reset_stale_processing(older_than_seconds=600, max_attempts=3)
        assert requeued == [stale.pk]
        statuses = dict(ProductImage.objects.values_list("pk", "status"))
        assert statuses == {fresh.pk: "processing", stale.pk: "pending", exhausted.pk: "failed"}

    def test_status_counts_cover_every_status(self):
        product = make_product()
        services.add_image(product=product, content=jpeg_bytes())
        assert selectors.status_counts() == {"pending": 1, "processing": 0, "done": 0, "failed": 0}


def png_bytes(mode="L", size=(8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 255).save(buffer, format="PNG")
    return buffer.getvalue()


class TestStoredFilesFollowTheirRows:
    def stored_image_with_garment(self):
        from catalog import thumbnails

        image, _ = services.add_image(product=make_product(), content=jpeg_bytes())
        space = services.ensure_embedding_space(model_id="files-model", dim=2)
        data = services.GarmentData("dress", (0, 0, 8, 8), [1, 0], mask_png=png_bytes(), cutout_png=png_bytes("RGBA"))
        (garment,) = services.replace_garments(image=image, space=space, garments=[data])
        thumbnail = thumbnails.image_thumbnail(image, "overlay", [garment])
        files = [image.file.path, garment.mask.path, garment.cutout.path, thumbnail]
        assert all(os.path.exists(path) for path in files)
        return image, space, garment, files

    def test_deleting_a_product_removes_its_photos_garment_files_and_thumbnails(
        self, django_capture_on_commit_callbacks
    ):
        image, _, _, files = self.stored_image_with_garment()
        with django_capture_on_commit_callbacks(execute=True):
            image.product.delete()
        assert not any(os.path.exists(path) for path in files)

    def test_a_rolled_back_delete_keeps_every_file(self, django_capture_on_commit_callbacks):
        image, _, _, files = self.stored_image_with_garment()
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
            image.product.delete()
            raise RuntimeError("the request failed after the delete")
        assert Product.objects.filter(pk=image.product_id).exists()
        assert all(os.path.exists(path) for path in files)

    def test_reprocessing_removes_the_replaced_garments_files_only(self, django_capture_on_commit_callbacks):
        image, space, old, files = self.stored_image_with_garment()
        data = services.GarmentData("skirt", (0, 0, 4, 4), [0, 1], mask_png=png_bytes(), cutout_png=png_bytes("RGBA"))
        with django_capture_on_commit_callbacks(execute=True):
            (new,) = services.replace_garments(image=image, space=space, garments=[data])
        assert not os.path.exists(old.mask.path) and not os.path.exists(old.cutout.path)
        assert os.path.exists(image.file.path) and os.path.exists(new.mask.path) and os.path.exists(new.cutout.path)


@pytest.mark.django_db(transaction=True)
def test_workers_meeting_a_new_embedding_space_at_once_all_get_it_and_one_index():
    """Two workers that start on a new model together both call ensure_embedding_space: without a lock the
    second CREATE INDEX IF NOT EXISTS failed with a duplicate pg_class key (and its photo with it)."""
    import threading

    from django.db import connection, connections

    barrier = threading.Barrier(6)
    errors, spaces = [], []

    def first_photo_of_a_worker():
        try:
            barrier.wait()
            spaces.append(services.ensure_embedding_space(model_id="new-model", dim=8).pk)
        except Exception as exc:  # the failure this test is about
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first_photo_of_a_worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(spaces) == 6 and len(set(spaces)) == 1
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_indexes WHERE indexname = %s", [f"catalog_garment_hnsw_space_{spaces[0]}"]
        )
        assert cursor.fetchone()[0] == 1
