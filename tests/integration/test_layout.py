"""The scale-out layout of deploy/compose.yaml as local processes, with one worker SIGKILLed mid-batch.

2 web processes behind one port (``manage.py serve --no-worker``: gunicorn with 2 workers), the inference
service, 2 django-q2 workers on Redis, SeaweedFS's S3 gateway and an external PostgreSQL (a server in a
folder of the test's own, reached through ``DATABASE_URL``). Nothing runs in this test's process but the
checks: the catalog is imported by ``manage.py import_products`` and searched through the web port.

The service runs the offline embedder behind tests/fixtures/held_stage.py's detector, which holds the
photos it gets while a file exists, so the test knows both workers are mid-task when it kills one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from tests.conftest import DEMO_DIR, REPO_ROOT
from tests.fixtures.inference_service import InferenceService
from tests.fixtures.own_postgres import OwnServer, clean_env, manage
from tests.fixtures.servers import free_port, redis_server, seaweedfs_s3
from tests.fixtures.workers import Worker, wait_for

pytestmark = pytest.mark.slow

FAST_RECOVERY = {"Q_TIMEOUT": "10", "Q_RETRY": "11", "IMAGE_STALE_PROCESSING_SECONDS": "11"}
CATEGORIES = ("Dress", "Shoes", "Hat", "Skirt", "Polo", "Blazer")


def demo_catalog(path: Path) -> Path:
    """One demo product of each category, one photo each (absolute paths)."""
    products = json.loads((DEMO_DIR / "products.json").read_text())
    chosen = [next(p for p in products if p["category"] == category) for category in CATEGORIES]
    for product in chosen:
        product["images"] = [str(DEMO_DIR / product["images"][0])]
    path.write_text(json.dumps(chosen))
    return path


def http(method: str, url: str, body: bytes | None = None, content_type: str = "") -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def multipart(field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = "lookalike-layout-test"
    body = io.BytesIO()
    body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'.encode())
    body.write(b"Content-Type: image/jpeg\r\n\r\n" + content + f"\r\n--{boundary}--\r\n".encode())
    return body.getvalue(), f"multipart/form-data; boundary={boundary}"


class Database:
    """Short read-only queries on the external server for the checks."""

    def __init__(self, server: OwnServer):
        socket_dir = (server.data_dir / "postmaster.pid").read_text().splitlines()[4].strip()
        self.conninfo = {"host": socket_dir, "port": 5432, "user": "postgres", "dbname": server.database}

    def rows(self, sql: str) -> list[tuple]:
        with psycopg.connect(**self.conninfo, autocommit=True) as connection:
            return connection.execute(sql).fetchall()

    def statuses(self) -> dict[str, int]:
        return dict(self.rows("SELECT status, count(*) FROM catalog_productimage GROUP BY status"))


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL a process and everything under it (serve's gunicorn runs in a session of its own)."""
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(process.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.fixture
def layout(pg_data_dir, tmp_path):
    """Every process of the layout, started at once where they do not depend on each other."""
    with contextlib.ExitStack() as stack:
        hold = tmp_path / "hold"
        hold.touch()
        service = InferenceService(
            clean_env(
                LOOKALIKE_PROFILE="offline",
                LOOKALIKE_DETECTOR="tests.fixtures.held_stage.HeldDetector",
                LOOKALIKE_SEGMENTER="box",
                LOOKALIKE_TEST_HOLD_FILE=hold,
                LOOKALIKE_TEST_STARTED_FILE=tmp_path / "started",
            ),
            tmp_path / "inference.log",
            *("--max-batch-size", "8", "--batch-timeout", "0.05"),
        )
        stack.callback(service.stop, graceful=False)
        redis_url = stack.enter_context(redis_server(tmp_path))
        s3 = stack.enter_context(seaweedfs_s3(tmp_path))
        database = OwnServer(pg_data_dir, database="layout")
        database.start()
        env = {
            **database.env,
            **s3.env,
            **FAST_RECOVERY,
            "DATABASE_URL": database.database_url,
            "REDIS_URL": redis_url,
            "LOOKALIKE_INFERENCE_URL": service.url,
            "LOOKALIKE_PROCESS_ON_UPLOAD": "1",
            "MEDIA_ROOT": str(tmp_path / "no-local-media"),
            "Q_SYNC": "0",
            "Q_WORKERS": "1",
            "SEARCH_THROTTLE_RATE": "1000/min",
        }
        migrated = manage(["migrate", "-v0"], env)
        assert migrated.returncode == 0, migrated.stderr
        port = free_port()
        with (tmp_path / "web.log").open("w") as log:
            web = subprocess.Popen(
                [sys.executable, "manage.py", "serve", "--no-worker", "--bind", f"127.0.0.1:{port}"]
                + ["--workers", "2", "--threads", "2"],
                cwd=REPO_ROOT,
                env=env,
                start_new_session=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        stack.callback(kill_tree, web)
        workers = []
        for n in (1, 2):
            workers.append(Worker(tmp_path, f"worker-{n}", env).launch())
            stack.callback(lambda worker=workers[-1]: worker.process.poll() is None and worker.kill())
        service.wait_healthy()
        for worker in workers:
            worker.wait_running()

        def web_answers() -> bool:
            assert web.poll() is None, (tmp_path / "web.log").read_text()[-3000:]
            try:
                return http("GET", f"http://127.0.0.1:{port}/api/products/")[0] == 200
            except (urllib.error.URLError, ConnectionError):
                return False

        wait_for(web_answers, 60, "the web port")
        started: list[Worker] = []
        stack.callback(lambda: [worker.kill() for worker in started if worker.process.poll() is None])
        yield {
            "url": f"http://127.0.0.1:{port}",
            "web": web,
            "workers": workers,
            "start_worker": lambda name: started.append(Worker(tmp_path, name, env).start()) or started[-1],
            "env": env,
            "db": Database(database),
            "hold": hold,
            "started": tmp_path / "started",
            "s3": s3,
            "service": service,
        }


def test_the_layout_processes_every_photo_exactly_once_when_a_worker_is_killed_mid_batch(layout, tmp_path):
    db, url = layout["db"], layout["url"]
    imported = manage(["import_products", str(demo_catalog(tmp_path / "catalog.json"))], layout["env"])
    assert imported.returncode == 0, imported.stderr
    statuses = db.statuses()
    errors = db.rows("SELECT error FROM catalog_productimage WHERE status = 'failed'")
    assert statuses.get("pending", 0) + statuses.get("processing", 0) == len(CATEGORIES), (statuses, errors)

    # Both workers have claimed a photo and wait on the (held) service: kill the first mid-task.
    wait_for(lambda: db.statuses().get("processing", 0) == 2, 30, "both workers to take a photo")
    wait_for(lambda: layout["started"].exists(), 30, "a photo to reach the service")
    killed, survivor = layout["workers"]
    killed.kill()
    claimed_at = db.rows("SELECT max(processing_started_at) FROM catalog_productimage WHERE status = 'processing'")
    layout["hold"].unlink()
    # The survivor drains the queue (the killed worker's prefetched tasks come back when their lease ends);
    # a replacement, as a supervisor would start, finds the killed worker's photo abandoned and requeues it.
    stale_at = claimed_at[0][0].timestamp() + int(FAST_RECOVERY["IMAGE_STALE_PROCESSING_SECONDS"]) + 0.5
    time.sleep(max(0.0, stale_at - time.time()))
    layout["start_worker"]("replacement")
    wait_for(lambda: db.statuses() == {"done": len(CATEGORIES)}, 60, f"every photo done (now {db.statuses()})")

    per_image = db.rows(
        "SELECT i.id, i.attempts, count(g.id) FROM catalog_productimage i "
        "LEFT JOIN catalog_garment g ON g.image_id = i.id GROUP BY i.id, i.attempts"
    )
    assert len(per_image) == len(CATEGORIES)
    assert all(garments == 1 for _, _, garments in per_image), f"lost or doubled garments: {per_image}"
    assert sorted(attempts for _, attempts, _ in per_image)[-1] == 2, "the killed worker's photo was retried"
    keys = [entry["Key"] for entry in layout["s3"].client.list_objects_v2(Bucket="lookalike-media")["Contents"]]
    assert len(keys) >= len(CATEGORIES) and not (tmp_path / "no-local-media").exists(), "media live on S3 only"

    # A photo search through the web port, answered by the inference service.
    body, content_type = multipart("image", "q.jpg", (DEMO_DIR / demo_image("Shoes")).read_bytes())
    status, answer = http("POST", f"{url}/api/search/", body, content_type)
    assert status == 200, answer[:500]
    assert json.loads(answer)["results"][0]["product"]["category"] == "Shoes"
    info = layout["service"].info()
    assert info["stats"]["batch_sizes"], info
    web_workers = gunicorn_workers(layout["web"].pid)
    assert len(web_workers) == 2, "2 web processes behind one port"
    for pid in web_workers:
        assert "libtorch" not in Path(f"/proc/{pid}/maps").read_text(), "a web process loaded torch"


def demo_image(category: str) -> str:
    products = json.loads((DEMO_DIR / "products.json").read_text())
    return next(p for p in products if p["category"] == category)["images"][0]


def gunicorn_workers(serve_pid: int) -> list[int]:
    """The gunicorn worker processes under ``manage.py serve`` (serve -> gunicorn master -> workers)."""
    import psutil

    serve = psutil.Process(serve_pid)
    masters = [child for child in serve.children() if "gunicorn" in " ".join(child.cmdline())]
    return [worker.pid for master in masters for worker in master.children()]
