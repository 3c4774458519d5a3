"""A database that goes away: 503s that say when to retry, a server brought back by whoever needs it,
commands that explain in one line, imports that can simply be run again.

The tests that kill a database kill a PostgreSQL of this module's own (a temporary data folder, started and
used only by subprocesses), never the shared one; they are `slow` because they start that server and web or
command processes (~15 s together).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from core.outage import is_database_outage
from tests.conftest import DEMO_DIR, REPO_ROOT
from tests.fixtures.own_postgres import (
    OwnServer,
    WebProcess,
    clean_env,
    kill_postmaster,
    manage,
    postmaster_of,
    temporary_data_dir,
)


@pytest.fixture(scope="module")
def own_server():
    with temporary_data_dir() as data_dir:
        server = OwnServer(data_dir, database="outage")
        result = manage(["migrate", "catalog", "-v0"], server.env)
        assert result.returncode == 0, result.stderr
        yield server


@pytest.fixture
def running_server(own_server):
    own_server.start()
    return own_server


@pytest.mark.slow
def test_web_process_starts_a_killed_embedded_server_again(running_server, tmp_path):
    """The embedded server (the default set-up): the next request brings it back instead of failing."""
    with WebProcess(running_server.env, tmp_path / "web.log") as web:
        assert web.get("/api/products/", accept="application/json")["status"] == 200
        # Straight after the kill, as after a crash: the dead postmaster's pid file and zombie are still there.
        killed = kill_postmaster(running_server.data_dir, wait_for_exit=False)
        answer = web.get("/api/products/", accept="application/json")
        assert answer["status"] == 200, answer
        assert "results" in json.loads(answer["body"])
        assert web.get("/")["status"] == 200
    restarted = postmaster_of(running_server.data_dir)
    assert restarted is not None and restarted.pid != killed


@pytest.mark.slow
def test_while_the_database_is_down_api_and_pages_answer_503_then_recover(running_server, tmp_path):
    """A server the web process cannot restart (DATABASE_URL): 503 with Retry-After until it is back."""
    env = {**running_server.env, "DATABASE_URL": running_server.database_url}
    with WebProcess(env, tmp_path / "web.log") as web:
        assert web.get("/api/products/", accept="application/json")["status"] == 200  # opens a kept connection
        kill_postmaster(running_server.data_dir)

        for attempt in ("breaks the kept connection", "cannot connect"):
            api = web.get("/api/products/", accept="application/json")
            assert api["status"] == 503, (attempt, api)
            assert int(api["headers"]["Retry-After"]) > 0
            assert api["headers"]["Content-Type"] == "application/json"
            body = json.loads(api["body"])
            assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
            assert body["error"]["code"] == "database_unavailable" and body["error"]["message"]

        page = web.get("/")
        assert page["status"] == 503
        assert page["headers"]["Content-Type"].startswith("text/html") and int(page["headers"]["Retry-After"]) > 0
        assert "Temporarily unavailable" in page["body"] and "Traceback" not in page["body"]

        running_server.start()
        assert web.get("/api/products/", accept="application/json")["status"] == 200
        assert web.get("/")["status"] == 200


@pytest.mark.slow
def test_import_interrupted_by_an_outage_is_finished_by_running_it_again(running_server, tmp_path):
    photos = sorted((DEMO_DIR / "images").iterdir())[:4]
    products = [
        {"id": f"outage-{i}", "name": f"Outage item {i}", "price": "10.00", "currency": "EUR", "category": "Dress"}
        | {"images": [f"http://photos.test/{photo.name}"]}
        for i, photo in enumerate(photos)
    ]
    catalog = tmp_path / "products.json"
    catalog.write_text(json.dumps(products))
    env = {
        **running_server.env,
        "DATABASE_URL": running_server.database_url,
        "MEDIA_ROOT": str(tmp_path / "media"),
        "CATALOG_IMAGE_FETCHER": "tests.fixtures.outage_fetcher.fetch",
        "OUTAGE_DATA_DIR": str(running_server.data_dir),
    }

    interrupted = manage(["import_products", str(catalog)], {**env, "OUTAGE_KILL_AT_URL": products[2]["images"][0]})
    assert interrupted.returncode != 0
    lines = [line for line in interrupted.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, interrupted.stderr  # one line, no traceback
    assert lines[0].startswith("CommandError: The database cannot be reached (")
    assert lines[0].endswith("Rows already imported are kept; run the same import again.")

    running_server.start()
    finished = manage(["import_products", str(catalog)], env)
    assert finished.returncode == 0, finished.stderr
    # Rows commit in batches, so the outage rolled back the open batch; the re-run stores every row once.
    assert "4 product(s) imported" in finished.stdout and "0 row(s) with errors" in finished.stdout
    again = manage(["import_products", str(catalog)], env)
    assert "4 product(s) imported (0 new, 4 updated), 0 image(s) added, 4 already known" in again.stdout


def test_manage_py_hook_gives_any_command_one_line_when_the_database_is_unreachable():
    """``core.outage.exit_on_database_outage`` around execute_from_command_line (the hook manage.py needs)."""
    code = textwrap.dedent(
        """
        import sys
        from django.core.management import execute_from_command_line
        from core.outage import exit_on_database_outage
        with exit_on_database_outage():
            execute_from_command_line(["manage.py", *sys.argv[1:]])
        """
    )
    env = clean_env(DATABASE_URL="postgres://nobody@127.0.0.1:1/unreachable")
    result = subprocess.run(
        [sys.executable, "-c", code, "migrate"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("The database cannot be reached (") and "\n" not in result.stderr.strip()


@pytest.mark.django_db
def test_a_query_failing_on_a_working_connection_is_not_an_outage():
    """A cancelled statement is an OperationalError too, but the server is there: it stays an ordinary error."""
    from django.db import OperationalError, connection, transaction

    with pytest.raises(OperationalError) as failure, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = 1")
        cursor.execute("SELECT pg_sleep(5)")
    assert not is_database_outage(failure.value)
