"""Scale-out stores as real servers started by the test: the queue on Redis, media on S3 (SeaweedFS).

`slow`: each test starts a server of its own (redis-server ~0.1 s, SeaweedFS ~4 s) and the kill test
starts two ``manage.py qcluster`` processes.
"""

from __future__ import annotations

import io
import time

import pytest
import redis
from django.test import override_settings
from django_q.conf import Conf
from rest_framework.test import APIClient

from catalog.models import Garment, ImageStatus, ProductImage
from search import tasks
from search.pipeline.registry import reset_pipeline
from search.redis_broker import ReliableRedis
from tests.conftest import demo_photo
from tests.fixtures.servers import redis_server, seaweedfs_s3
from tests.integration.test_worker_faults import (  # noqa: F401 - fixtures
    FAST_RECOVERY,
    held,
    photo_reached_the_detector,
    queue_photo,
    status_of,
    wait_for,
    worker_env,  # noqa: F811 - fixture imported above
    workers,  # noqa: F811 - fixture imported above
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def redis_url(tmp_path, monkeypatch):
    """A redis-server of this test's own; this process's django-q2 queues on it with the reliable broker."""
    with redis_server(tmp_path) as url:
        monkeypatch.setattr(Conf, "REDIS", url)
        monkeypatch.setattr(Conf, "BROKER_CLASS", "search.redis_broker.ReliableRedis")
        monkeypatch.setattr(Conf, "ORM", None)
        yield url


def test_a_leased_task_comes_back_after_q_retry_and_an_acknowledged_one_does_not(redis_url):
    broker = ReliableRedis(list_key="lease-test")
    broker.enqueue("first")
    broker.enqueue("second")
    (ack_first, _), (ack_second, _) = broker.dequeue()[0], broker.dequeue()[0]
    assert broker.queue_size() == 0 and broker.lock_size() == 2
    broker.acknowledge(ack_first)
    assert broker.requeue_expired(now=time.time() + Conf.RETRY - 5) == 0, "not yet expired"
    assert broker.requeue_expired(now=time.time() + Conf.RETRY + 5) == 1
    assert broker.connection.lrange(broker.list_key, 0, -1) == [b"second"] and broker.lock_size() == 0
    other = ReliableRedis(list_key="lease-test")  # a second cluster recovering at the same time finds nothing
    assert other.requeue_expired(now=time.time() + Conf.RETRY + 5) == 0
    assert ack_second == b"second"


def test_photos_of_a_killed_cluster_on_redis_come_back_and_are_done_exactly_once(
    redis_url,
    worker_env,  # noqa: F811 - fixture imported above
    workers,  # noqa: F811 - fixture imported above
    tmp_path,
):
    """SIGKILL mid-task on Redis: django-q2's stock broker would lose both photos (BLPOP removed them)."""
    hold = held(tmp_path)
    env = {**worker_env, **FAST_RECOVERY, "REDIS_URL": redis_url}
    leased = redis.from_url(redis_url)
    first = workers("killed", env)
    under_way = queue_photo("Skirt")
    wait_for(photo_reached_the_detector(tmp_path), 30, "the worker to take the photo")
    waiting = queue_photo("Polo")
    wait_for(lambda: leased.llen("django_q:lookalike:q:leased") == 2, 10, "the second photo's fetch")
    first.kill()
    assert status_of(under_way) == ImageStatus.PROCESSING and status_of(waiting) == ImageStatus.PENDING
    assert leased.llen("django_q:lookalike:q") == 0, "both tasks are out of the queue, only leased"

    hold.unlink()
    claimed_at = ProductImage.objects.get(pk=under_way.pk).processing_started_at
    stale_at = claimed_at.timestamp() + int(FAST_RECOVERY["IMAGE_STALE_PROCESSING_SECONDS"]) + 0.5
    time.sleep(max(0.0, stale_at - time.time()))
    workers("next", env)
    for image in (under_way, waiting):
        wait_for(lambda image=image: status_of(image) == ImageStatus.DONE, 40, f"image {image.pk} to be done")
    for image, attempts in ((under_way, 2), (waiting, 1)):
        image.refresh_from_db()
        assert image.attempts == attempts, image.error
        assert Garment.objects.filter(image=image).count() == 1, "one set of garments, no duplicates"
    wait_for(lambda: leased.llen("django_q:lookalike:q:leased") == 0, 20, "every lease to be acknowledged")


@pytest.fixture
def s3_storage(tmp_path):
    """A SeaweedFS server (master, volume, filer and S3 gateway) of this test's own, and settings for it."""
    with seaweedfs_s3(tmp_path) as server:
        storages = {
            "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": server.storage_options},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
        with override_settings(STORAGES=storages):
            yield server.client


def test_photos_and_cutouts_live_on_s3_and_search_finds_them(s3_storage, settings, tmp_path):
    """Upload through the API, process (reads the photo from S3, writes cutouts there), search."""
    from django.contrib.auth.models import User

    settings.LOOKALIKE_PROFILE = "offline"
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
    settings.MEDIA_ROOT = tmp_path / "no-local-media"  # nothing may land here
    reset_pipeline()
    client = APIClient()
    client.force_authenticate(User.objects.create_superuser("admin", password="pw"))
    image_ids = []
    for category in ("Shoes", "Dress", "T-Shirt"):
        product = client.post(
            "/api/products/",
            {"external_id": category, "name": category, "price": "10", "currency": "EUR", "shop": "S"},
            format="json",
        ).json()
        upload = io.BytesIO(demo_photo(category, 1).read_bytes())
        upload.name = "photo.jpg"
        response = client.post(f"/api/products/{product['id']}/images/", {"image": upload}, format="multipart")
        assert response.status_code == 201, response.content
        image_ids.append(response.json()["id"])
    assert tasks.process_images(image_ids)["done"] == 3

    keys = {entry["Key"] for entry in s3_storage.list_objects_v2(Bucket="lookalike-media")["Contents"]}
    for image in ProductImage.objects.filter(pk__in=image_ids):
        assert image.file.name in keys
        for garment in image.garments.all():
            assert garment.cutout.name in keys and garment.mask.name in keys
            assert garment.cutout.url.startswith(s3_storage.meta.endpoint_url)
    assert not settings.MEDIA_ROOT.exists(), "photos and cutouts went to S3 only"

    upload = io.BytesIO(demo_photo("Shoes", 0).read_bytes())
    upload.name = "query.jpg"
    found = client.post("/api/search/", {"image": upload}, format="multipart")
    assert found.status_code == 200, found.content
    assert found.json()["results"][0]["product"]["name"] == "Shoes"
    reset_pipeline()
