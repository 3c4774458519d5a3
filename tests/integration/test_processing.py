"""Background processing: the django-q2 task path, tiny real-class models, failures, retries, recovery."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_q.models import Schedule
from PIL import Image

from catalog import services
from catalog.models import EmbeddingSpace, Garment, ImageStatus, ProductImage
from search import tasks
from search.pipeline.registry import get_pipeline, reset_pipeline
from tests.conftest import REPO_ROOT, demo_photo


@pytest.fixture
def tiny_full_pipeline(settings, tiny_model_dirs):
    """The full profile (Florence-2 + SAM 2 + CLIP classes) on tiny random-weight models."""
    settings.LOOKALIKE_PROFILE = "full"
    settings.LOOKALIKE_DETECTOR_MODEL = str(tiny_model_dirs["detector"])
    settings.LOOKALIKE_SEGMENTER_MODEL = str(tiny_model_dirs["segmenter"])
    settings.LOOKALIKE_EMBEDDER_MODEL = str(tiny_model_dirs["embedder"])
    reset_pipeline()
    yield
    reset_pipeline()


@pytest.fixture
def offline_pipeline(settings):
    settings.LOOKALIKE_PROFILE = "offline"
    reset_pipeline()
    yield
    reset_pipeline()


def new_product(external_id="p1"):
    return services.upsert_product(external_id=external_id, shop="S", name="Product", price="10", currency="EUR")[0]


@pytest.mark.django_db(transaction=True)
def test_new_image_is_processed_through_the_task_queue_on_tiny_models(tiny_full_pipeline, tiny_model_dirs):
    """add_image -> on_commit signal -> django-q2 async_task (sync mode) -> garments in PostgreSQL."""
    product = new_product()
    image, _ = services.add_image(product=product, content=demo_photo("Dress").read_bytes())
    image.refresh_from_db()
    assert image.status == ImageStatus.DONE, image.error
    assert image.attempts == 1 and image.processed_at is not None
    garments = list(Garment.objects.filter(image=image).select_related("space"))
    assert garments, "every image yields at least one garment (whole image when nothing is detected)"
    for garment in garments:
        assert garment.space.dim == len(garment.embedding) == get_pipeline().embedding_dim
        assert garment.space.model_id == get_pipeline().embedder_id != "efficientnet-lite0"
        assert np.linalg.norm(np.array(garment.embedding)) == pytest.approx(1.0, abs=1e-4)
        assert 0 <= garment.box_x0 < garment.box_x1 <= image.width
        assert 0 <= garment.box_y0 < garment.box_y1 <= image.height
        if not garment.cutout:  # nothing stored only when the cutout would be the whole photo
            assert garment.box == (0, 0, image.width, image.height) and not garment.mask
            continue
        with garment.mask.open("rb") as handle:
            mask = Image.open(io.BytesIO(handle.read()))
            assert mask.mode == "L"
        with garment.cutout.open("rb") as handle:
            cutout = Image.open(io.BytesIO(handle.read()))
            assert cutout.mode == "RGBA" and cutout.format == "WEBP" and garment.cutout.name.endswith(".webp")
    from django_q.models import Success

    assert Success.objects.filter(func="search.tasks.process_image").exists(), "ran as a django-q2 task"


@pytest.mark.django_db
def test_boxes_are_stored_in_original_image_pixels(offline_pipeline, settings):
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
    settings.LOOKALIKE_DETECTOR, settings.LOOKALIKE_SEGMENTER = "whole-image", "box"  # a box known in advance
    settings.LOOKALIKE_MAX_IMAGE_SIDE = 100
    reset_pipeline()
    product = new_product()
    image, _ = services.add_image(product=product, content=demo_photo("Shoes").read_bytes())
    assert tasks.process_image(image.pk) == "done"
    garment = Garment.objects.get(image=image)
    assert garment.box == (0, 0, image.width, image.height), "whole-image box scaled back from the 100 px copy"


@pytest.mark.django_db
def test_corrupt_image_fails_with_message_then_retry_succeeds_after_fix(offline_pipeline, settings):
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
    product = new_product()
    good = demo_photo("Hat").read_bytes()
    image, _ = services.add_image(product=product, content=good)
    with image.file.open("wb") as handle:  # the stored file gets damaged on disk
        handle.write(good[:300])
    assert tasks.process_image(image.pk) == "failed"
    image.refresh_from_db()
    assert image.status == ImageStatus.FAILED and image.attempts == 1
    assert "damaged or truncated" in image.error
    retry = Schedule.objects.get(name=f"retry-image-{image.pk}-attempt-2")
    assert retry.func == "search.tasks.process_image" and retry.args == str(image.pk)
    delay = (retry.next_run - timezone.now()).total_seconds()
    assert settings.IMAGE_RETRY_BACKOFF_SECONDS - 5 < delay <= settings.IMAGE_RETRY_BACKOFF_SECONDS

    with image.file.open("wb") as handle:  # fixed
        handle.write(good)
    assert tasks.process_image(image.pk) == "done"
    image.refresh_from_db()
    assert image.status == ImageStatus.DONE and image.error == "" and image.attempts == 2
    assert Garment.objects.filter(image=image).count() == 1


@pytest.mark.django_db
def test_backoff_doubles_and_attempts_are_capped(offline_pipeline, settings):
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
    settings.IMAGE_MAX_ATTEMPTS = 2
    assert [tasks.retry_delay_seconds(n) for n in (1, 2, 3)] == [
        settings.IMAGE_RETRY_BACKOFF_SECONDS * f for f in (1, 2, 4)
    ]
    image, _ = services.add_image(product=new_product(), content=demo_photo("Hat").read_bytes())
    with image.file.open("wb") as handle:
        handle.write(b"broken")
    assert [tasks.process_image(image.pk) for _ in range(3)] == ["failed", "failed", "skipped"]
    assert Schedule.objects.filter(name__startswith=f"retry-image-{image.pk}-").count() == 1, "no retry past the cap"


@pytest.mark.django_db
def test_one_bad_image_does_not_fail_its_batch(offline_pipeline, settings):
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
    product = new_product()
    ok, _ = services.add_image(product=product, content=demo_photo("Skirt").read_bytes())
    bad, _ = services.add_image(product=product, content=demo_photo("Skirt", 1).read_bytes())
    with bad.file.open("wb") as handle:
        handle.write(b"nope")
    assert tasks.process_images([ok.pk, bad.pk]) == {"done": 1, "failed": 1, "skipped": 0}


@pytest.mark.django_db
def test_reprocessing_replaces_garments_atomically(offline_pipeline, settings):
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
    image, _ = services.add_image(product=new_product(), content=demo_photo("Polo").read_bytes())
    tasks.process_image(image.pk)
    first = list(Garment.objects.filter(image=image).values_list("pk", flat=True))
    services.requeue_images([image.pk], announce=False)
    tasks.process_image(image.pk)
    second = list(Garment.objects.filter(image=image).values_list("pk", flat=True))
    assert len(first) == len(second) == 1 and first != second


@pytest.mark.django_db
def test_crashed_worker_leaves_nothing_stuck(offline_pipeline, settings):
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
    image, _ = services.add_image(product=new_product(), content=demo_photo("Top").read_bytes())
    assert services.claim_image(image.pk, max_attempts=3) is not None  # a worker took it, then died
    ProductImage.objects.filter(pk=image.pk).update(processing_started_at=timezone.now() - timedelta(hours=1))
    assert tasks.process_image(image.pk) == "skipped", "still marked processing"
    assert tasks.recover_stale_images() == [image.pk]  # re-enqueued; sync mode runs it right away
    image.refresh_from_db()
    assert image.status == ImageStatus.DONE


@pytest.mark.django_db
def test_recovery_runs_on_a_schedule():
    tasks.ensure_schedules()
    tasks.ensure_schedules()
    schedule = Schedule.objects.get(name="lookalike-recover-stale-images")
    assert schedule.func == "search.tasks.recover_stale_images" and schedule.repeats == -1


@pytest.mark.django_db
def test_index_command_processes_pending_and_reindexes_on_model_change(offline_pipeline, settings, capsys):
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
    product = new_product()
    for category in ("Shoes", "Dress", "Hat"):
        services.add_image(product=product, content=demo_photo(category).read_bytes())
    call_command("index", "--sync", "--batch-size", "2")
    out = capsys.readouterr()
    assert "Indexed 3 image(s), 0 failed" in out.out and "profile offline" in out.out
    call_command("index", "--sync")
    assert "Nothing to index" in capsys.readouterr().out

    # A different embedder (model id) means a new space: everything is re-indexed and old vectors go.
    space = EmbeddingSpace.objects.get()
    EmbeddingSpace.objects.filter(pk=space.pk).update(model_id="an-older-model")
    call_command("index", "--sync")
    assert "Indexed 3 image(s)" in capsys.readouterr().out
    assert set(Garment.objects.values_list("space__model_id", flat=True)) == {get_pipeline().embedder_id}
    assert get_pipeline().embedder_id != "an-older-model"

    call_command("index")  # without --sync: queued for the worker (runs inline in tests)
    assert "Nothing to index" in capsys.readouterr().out
    call_command("index", "--all")
    assert "Queued 3 image(s)" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_real_worker_process_picks_up_queued_images(offline_pipeline, settings, tmp_path):
    """A real `manage.py qcluster` against the test database processes what the web process queued."""
    from django_q.conf import Conf

    Conf.SYNC = False  # queue for real (the autouse fixture restores it)
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = True
    media = tmp_path / "media"
    media.mkdir()
    settings.MEDIA_ROOT = media
    image, _ = services.add_image(product=new_product(), content=demo_photo("Shorts").read_bytes())
    assert ProductImage.objects.get(pk=image.pk).status == ImageStatus.PENDING
    db = connection.settings_dict
    env = {
        **os.environ,
        "EMBEDDED_PG_DBNAME": db["NAME"],
        "MEDIA_ROOT": str(media),
        "LOOKALIKE_PROFILE": "offline",
        "Q_SYNC": "0",
        "OMP_NUM_THREADS": "1",
    }
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + db["NAME"]
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = ProductImage.objects.get(pk=image.pk).status
            if status in (ImageStatus.DONE, ImageStatus.FAILED):
                break
            time.sleep(0.5)
        image.refresh_from_db()
        assert image.status == ImageStatus.DONE, image.error
        assert Garment.objects.filter(image=image).exists()
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        shutil.rmtree(media, ignore_errors=True)


@pytest.mark.django_db
def test_migrate_creates_the_recovery_schedule_once():
    """search has no models, so Django sends it no post_migrate: the schedule must still come from migrate."""
    assert Schedule.objects.filter(name=tasks.RECOVERY_SCHEDULE).count() == 1, "made when this database was migrated"
    Schedule.objects.filter(name=tasks.RECOVERY_SCHEDULE).delete()
    call_command("migrate", verbosity=0)
    call_command("migrate", verbosity=0)
    schedule = Schedule.objects.get(name=tasks.RECOVERY_SCHEDULE)
    assert schedule.func == "search.tasks.recover_stale_images" and schedule.repeats == -1
    assert (schedule.schedule_type, schedule.minutes) == (Schedule.MINUTES, 1)


@pytest.fixture
def taken_over_mid_processing(offline_pipeline, settings, monkeypatch):
    """The first pipeline call finds its photo given up on by the recovery and done by another worker."""
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
    settings.LOOKALIKE_DETECTOR, settings.LOOKALIKE_SEGMENTER = "whole-image", "box"  # one garment a photo
    reset_pipeline()
    pipeline = get_pipeline()
    real_process = pipeline.process
    state = {"other_garments": None, "fail": False}

    def process(photos):
        if state["other_garments"] is None:
            image_id = ProductImage.objects.get(status=ImageStatus.PROCESSING).pk
            ProductImage.objects.filter(pk=image_id).update(processing_started_at=timezone.now() - timedelta(hours=1))
            state["other_garments"] = []
            assert tasks.recover_stale_images() == [image_id]  # sync mode: the other worker runs it now
            state["other_garments"] = list(Garment.objects.filter(image_id=image_id).values_list("pk", flat=True))
            if state["fail"]:
                raise RuntimeError("the slow worker's model failed at last")
        return real_process(photos)

    monkeypatch.setattr(pipeline, "process", process)
    return state


@pytest.mark.django_db
@pytest.mark.parametrize("slow_worker_fails", [False, True], ids=["finishes", "fails"])
def test_a_worker_whose_photo_was_taken_over_writes_nothing(taken_over_mid_processing, slow_worker_fails):
    """Exactly once: the late worker neither swaps garments in nor marks the photo failed."""
    taken_over_mid_processing["fail"] = slow_worker_fails
    image, _ = services.add_image(product=new_product(), content=demo_photo("Top").read_bytes())
    assert tasks.process_image(image.pk) == "skipped"
    image.refresh_from_db()
    assert image.status == ImageStatus.DONE and image.attempts == 2 and image.error == ""
    assert (
        list(Garment.objects.filter(image=image).values_list("pk", flat=True))
        == (taken_over_mid_processing["other_garments"])
    )
    assert len(taken_over_mid_processing["other_garments"]) == 1
    assert not Schedule.objects.filter(name__startswith=f"retry-image-{image.pk}-").exists()


@pytest.mark.django_db
def test_a_real_cutout_is_stored_as_webp_and_a_whole_photo_one_not_at_all(settings):
    """The offline box pipeline's whole-photo garment stores nothing; a real mask stores a small WebP."""
    from PIL import Image as PILImage

    from search import tasks
    from search.pipeline.base import Box, GarmentResult

    photo = PILImage.open(demo_photo("Dress")).convert("RGB")
    product = new_product()
    image, _ = services.add_image(product=product, content=demo_photo("Dress").read_bytes())
    whole = GarmentResult(
        box=Box(0, 0, *photo.size, label="garment"),
        mask=PILImage.new("L", photo.size, 255),
        cutout=photo.convert("RGBA"),
        embedding=np.ones(4, dtype=np.float32) / 2,
    )
    data = tasks._to_garment_data(whole, image, photo)
    assert (data.mask_png, data.cutout_png) == (b"", b"")
    mask = PILImage.new("L", photo.size, 0)
    mask.paste(255, (10, 10, photo.size[0] // 2, photo.size[1] // 2))
    cutout = photo.convert("RGBA")
    cutout.putalpha(mask)
    real = GarmentResult(
        box=Box(10, 10, *photo.size, label="dress"), mask=mask, cutout=cutout, embedding=whole.embedding
    )
    data = tasks._to_garment_data(real, image, photo)
    stored = PILImage.open(io.BytesIO(data.cutout_png))
    assert stored.format == "WEBP" and stored.mode == "RGBA"
    assert stored.getpixel((0, 0))[3] == 0 and stored.getpixel((20, 20))[3] == 255
    assert len(data.cutout_png) < len(demo_photo("Dress").read_bytes())


@pytest.mark.django_db(transaction=True)
def test_import_with_processing_on_upload_then_index_sync_leaves_no_queued_task(
    offline_pipeline, settings, monkeypatch, tmp_path, capsys
):
    """Issue 15: import queues a task per photo; ``index --sync`` processes them and removes those tasks."""
    import json
    import shutil

    from django_q.conf import Conf
    from django_q.models import OrmQ

    monkeypatch.setattr(Conf, "SYNC", False)  # tasks go to the ORM queue, as without a running worker
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = True
    for category in ("Shoes", "Dress"):
        shutil.copy(demo_photo(category), tmp_path / f"{category}.jpg")
    rows = [{"id": c, "name": c, "images": [f"{c}.jpg"]} for c in ("Shoes", "Dress")]
    (tmp_path / "products.json").write_text(json.dumps(rows))
    OrmQ.objects.all().delete()
    call_command("import_products", str(tmp_path / "products.json"))
    queued = [task.name() for task in OrmQ.objects.all()]
    assert sorted(queued) == sorted(f"process-image-{pk}" for pk in ProductImage.objects.values_list("pk", flat=True))
    call_command("index", "--sync")
    assert "Indexed 2 image(s), 0 failed" in capsys.readouterr().out
    assert not OrmQ.objects.exists(), "a later worker would have claimed these for nothing"


@pytest.mark.django_db(transaction=True)
def test_compact_cutouts_reencodes_old_png_and_drops_whole_photo_ones(capsys):

    photo = Image.open(demo_photo("Dress")).convert("RGBA")
    alpha = Image.new("L", photo.size, 255)
    alpha.paste(0, (0, 0, 10, 10))
    photo.putalpha(alpha)
    image, _ = services.add_image(product=new_product(), content=demo_photo("Dress").read_bytes())
    space = services.ensure_embedding_space(model_id="compact-test", dim=2)
    png = io.BytesIO()
    photo.save(png, format="PNG")
    full_mask = io.BytesIO()
    Image.new("L", photo.size, 255).save(full_mask, format="PNG")
    whole = services.GarmentData(
        "garment", (0, 0, image.width, image.height), [1, 0], mask_png=full_mask.getvalue(), cutout_png=png.getvalue()
    )
    part = services.GarmentData(
        "dress", (5, 5, 50, 50), [0, 1], mask_png=full_mask.getvalue(), cutout_png=png.getvalue()
    )
    first, second = services.replace_garments(image=image, space=space, garments=[whole, part])
    old_files = [first.cutout.path, first.mask.path, second.cutout.path]
    call_command("compact_cutouts")
    assert "1 cutout(s) re-encoded as WebP, 1 whole-photo cutout(s) removed" in capsys.readouterr().out
    first.refresh_from_db()
    second.refresh_from_db()
    assert not first.cutout and not first.mask
    with Image.open(second.cutout.path) as stored:
        assert second.cutout.name.endswith(".webp") and stored.mode == "RGBA" and stored.getpixel((2, 2))[3] == 0
    assert not any(os.path.exists(path) for path in old_files)
