"""The real worker (``manage.py qcluster`` subprocesses on the test database) when it is stopped or killed.

Each cluster runs the offline embedder behind a whole-image detector that holds a photo while a file
exists (tests/fixtures/held_stage.py), so a test can stop or kill a worker in the middle of a task.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from catalog import services
from catalog.models import Garment, ImageStatus, ProductImage
from tests.conftest import REPO_ROOT, demo_photo
from tests.fixtures.workers import Worker, live_group_members, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Short enough for a test, in the proportions the settings require (retry and staleness > timeout).
FAST_RECOVERY = {"Q_TIMEOUT": "10", "Q_RETRY": "11", "IMAGE_STALE_PROCESSING_SECONDS": "11"}


@pytest.fixture
def worker_env(tmp_path, settings):
    """Environment of a cluster on the test database; also makes this process queue for real."""
    from django_q.conf import Conf

    Conf.SYNC = False  # the autouse fixture restores it
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = True
    media = tmp_path / "media"
    media.mkdir()
    settings.MEDIA_ROOT = media
    hold = tmp_path / "hold"
    db = connection.settings_dict
    env = {
        **os.environ,
        "EMBEDDED_PG_DBNAME": db["NAME"],
        "MEDIA_ROOT": str(media),
        "LOOKALIKE_PROFILE": "offline",
        "LOOKALIKE_DETECTOR": "tests.fixtures.held_stage.HeldDetector",
        "LOOKALIKE_SEGMENTER": "box",
        "LOOKALIKE_TEST_HOLD_FILE": str(hold),
        "LOOKALIKE_TEST_STARTED_FILE": str(tmp_path / "started"),
        "Q_SYNC": "0",
        "Q_WORKERS": "1",
        "OMP_NUM_THREADS": "1",
    }
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + db["NAME"]
    return env


@pytest.fixture
def workers(tmp_path):
    """Start clusters with ``workers(name, env)``; any still running at the end are killed."""
    started: list[Worker] = []

    def start(name: str, env: dict[str, str]) -> Worker:
        started.append(Worker(tmp_path, name, env).start())
        return started[-1]

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.kill()


def held(tmp_path: Path) -> Path:
    hold = tmp_path / "hold"
    hold.touch()
    return hold


def photo_reached_the_detector(tmp_path: Path, times: int = 1):
    started = tmp_path / "started"
    return lambda: started.exists() and len(started.read_text().split()) >= times


def queue_photo(category: str, index: int = 0) -> ProductImage:
    product, _ = services.upsert_product(
        external_id=f"{category}-{index}", shop="S", name=category, price="10", currency="EUR"
    )
    image, _ = services.add_image(product=product, content=demo_photo(category, index).read_bytes())
    return image


def status_of(image: ProductImage) -> str:
    return ProductImage.objects.get(pk=image.pk).status


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGTERM, True), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["SIGTERM-group", "SIGINT-group", "SIGTERM-cluster-process"],
)
def test_a_stop_signal_stops_an_idle_cluster(worker_env, workers, signum, to_group):
    """systemd and a terminal's Ctrl-C signal the whole group; docker and Kubernetes the main process only."""
    worker = workers("idle", worker_env)
    (os.killpg if to_group else os.kill)(worker.process.pid, signum)
    assert worker.exits_within(20), "the cluster did not stop"
    assert worker.process.returncode == 0
    assert live_group_members(worker.process.pid) == [], "no sentinel, worker, pusher or monitor left behind"


def test_a_photo_under_way_is_finished_before_the_cluster_stops(worker_env, workers, tmp_path):
    hold = held(tmp_path)
    worker = workers("busy", worker_env)
    image = queue_photo("Dress")
    wait_for(photo_reached_the_detector(tmp_path), 30, "the worker to take the photo")
    os.killpg(worker.process.pid, signal.SIGTERM)
    assert not worker.exits_within(1), "the worker waits for its photo (grace 20 s)"
    hold.unlink()
    assert worker.exits_within(20), "the cluster did not stop once the photo was done"
    image.refresh_from_db()
    assert image.status == ImageStatus.DONE and image.attempts == 1, image.error
    assert Garment.objects.filter(image=image).count() == 1
    assert not OrmQ.objects.exists(), "the finished task was acknowledged"
    assert live_group_members(worker.process.pid) == []


def test_a_task_past_the_grace_is_interrupted_and_given_back(worker_env, workers, tmp_path):
    """The next cluster runs it at once (its queue row is unlocked) and the photo's retry is scheduled."""
    held(tmp_path)
    worker = workers("stuck", {**worker_env, "Q_STOP_GRACE_SECONDS": "1"})
    image = queue_photo("Hat")
    wait_for(photo_reached_the_detector(tmp_path), 30, "the worker to take the photo")
    os.killpg(worker.process.pid, signal.SIGTERM)
    assert worker.exits_within(15), "the cluster did not stop after the grace"
    assert live_group_members(worker.process.pid) == []
    image.refresh_from_db()
    assert image.status == ImageStatus.FAILED and "WorkerStopping" in image.error and image.attempts == 1
    assert Schedule.objects.filter(name=f"retry-image-{image.pk}-attempt-2").exists()
    given_back = OrmQ.objects.get()
    assert given_back.task["args"] == (image.pk,) and given_back.lock <= timezone.now(), "unlocked, not Q_RETRY"
    assert services.claim_image(image.pk, max_attempts=3) is not None, "the next run can take the photo"


def test_photos_of_a_killed_cluster_come_back_and_are_done_exactly_once(worker_env, workers, tmp_path):
    """SIGKILL mid-task: the photo under way and the one fetched behind it are processed by the next cluster."""
    hold = held(tmp_path)
    env = {**worker_env, **FAST_RECOVERY}
    first = workers("killed", env)
    under_way = queue_photo("Skirt")
    wait_for(photo_reached_the_detector(tmp_path), 30, "the worker to take the photo")
    waiting = queue_photo("Polo")
    wait_for(lambda: OrmQ.objects.filter(lock__gt=timezone.now()).count() == 2, 10, "the second photo's fetch")
    first.kill()
    claimed_at = ProductImage.objects.get(pk=under_way.pk).processing_started_at
    assert status_of(under_way) == ImageStatus.PROCESSING and status_of(waiting) == ImageStatus.PENDING

    hold.unlink()
    stale_at = claimed_at.timestamp() + int(FAST_RECOVERY["IMAGE_STALE_PROCESSING_SECONDS"]) + 0.5
    time.sleep(max(0.0, stale_at - time.time()))  # a cluster that starts now finds the photo abandoned
    workers("next", env)
    for image in (under_way, waiting):
        wait_for(lambda image=image: status_of(image) == ImageStatus.DONE, 30, f"image {image.pk} to be done")
    for image, attempts in ((under_way, 2), (waiting, 1)):
        image.refresh_from_db()
        assert image.attempts == attempts, image.error
        assert Garment.objects.filter(image=image).count() == 1, "one set of garments, no duplicates"
    wait_for(lambda: not OrmQ.objects.exists(), 20, "every queued task to be acknowledged")
    assert Garment.objects.filter(image__in=[under_way, waiting]).count() == 2


def run_settings(env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_URL", "DJANGO_", "Q_"))}
    env.update(
        {"DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": "postgres://u@127.0.0.1:1/x", **env_overrides}
    )
    code = (
        "from django.conf import settings; print(settings.Q_CLUSTER['retry'], settings.IMAGE_STALE_PROCESSING_SECONDS)"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)


@pytest.mark.django_db(transaction=False)
def test_retry_and_staleness_follow_the_timeout_and_must_exceed_it():
    assert run_settings({"Q_TIMEOUT": "120"}).stdout.split() == ["180", "180"]
    for overrides in (
        {"Q_TIMEOUT": "120", "Q_RETRY": "120"},
        {"Q_TIMEOUT": "120", "IMAGE_STALE_PROCESSING_SECONDS": "60"},
    ):
        result = run_settings(overrides)
        assert result.returncode != 0 and "must be longer than Q_TIMEOUT" in result.stderr, overrides
