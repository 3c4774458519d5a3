"""Settings selection, run in fresh interpreters so each sees only the environment it is given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO_ROOT
from tests.fixtures.own_postgres import clean_env, manage, postmaster_of, servers_using

PRINT_DATABASE = textwrap.dedent(
    """
    import json, django
    from django.conf import settings
    django.setup()
    db = settings.DATABASES["default"]
    print(json.dumps({key: str(db.get(key)) for key in ("ENGINE", "NAME", "USER", "HOST", "PORT")}))
    """
)


def run_python(code: str, env_overrides: dict[str, str], *, check: bool = True) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_URL", "DJANGO_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", **env_overrides})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=check
    )


def test_database_url_selects_that_server_and_starts_nothing(tmp_path):
    embedded_dir = tmp_path / "must-not-exist"
    result = run_python(
        PRINT_DATABASE,
        {
            "DATABASE_URL": "postgres://shop:secret@db.internal:6543/lookalike_prod",
            "EMBEDDED_PG_DIR": str(embedded_dir),
        },
    )
    db = json.loads(result.stdout.strip().splitlines()[-1])
    assert db == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "lookalike_prod",
        "USER": "shop",
        "HOST": "db.internal",
        "PORT": "6543",
    }
    assert not embedded_dir.exists()


def test_without_database_url_an_embedded_server_keeps_data_across_restarts(pg_data_dir):
    data_dir = pg_data_dir
    env = {"EMBEDDED_PG_DIR": str(data_dir), "EMBEDDED_PG_DBNAME": "restart_check"}
    write = PRINT_DATABASE + textwrap.dedent(
        """
        from django.db import connection
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS survivor (v text)")
            cursor.execute("INSERT INTO survivor VALUES ('kept')")
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
            cursor.execute("SELECT '[1,0]'::vector <=> '[0,1]'::vector")
            print(cursor.fetchone()[0])
        """
    )
    first = run_python(write, env)
    db = json.loads(first.stdout.strip().splitlines()[0])
    assert db["NAME"] == "restart_check" and db["HOST"].startswith(str(data_dir.parent))
    assert float(first.stdout.strip().splitlines()[1]) == pytest.approx(1.0), "pgvector must be available"
    assert (data_dir / "PG_VERSION").exists()
    # The first process stopped the server when it exited; the second starts it again and finds the row.
    read = PRINT_DATABASE + textwrap.dedent(
        """
        from django.db import connection
        with connection.cursor() as cursor:
            cursor.execute("SELECT v FROM survivor")
            print(cursor.fetchall())
        """
    )
    second = run_python(read, env)
    assert second.stdout.strip().splitlines()[-1] == "[('kept',)]"


def test_commands_that_need_no_database_start_no_server(pg_data_dir):
    """Settings only name the data folder: nothing is created or started before a connection is needed."""
    data_dir = pg_data_dir
    env = clean_env(EMBEDDED_PG_DIR=data_dir)
    for args in (["help"], ["--version"], ["check"]):
        result = manage(args, env)
        assert result.returncode == 0, (args, result.stderr)
    assert not data_dir.exists()
    assert not servers_using(data_dir)


def test_first_query_starts_the_server_and_dbshell_reaches_it(pg_data_dir):
    data_dir = pg_data_dir
    env = {"EMBEDDED_PG_DIR": str(data_dir), "EMBEDDED_PG_SHARED_BUFFERS": "128MB"}
    code = PRINT_DATABASE + textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from django.db import connection
        from tests.fixtures.own_postgres import postmaster_of
        data_dir = Path(sys.argv[1])
        print("before the first query:", data_dir.exists())
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            print("database:", cursor.fetchone()[0])
        print("server running:", postmaster_of(data_dir) is not None)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(data_dir)],
        cwd=REPO_ROOT,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "before the first query: False",
        "database: lookalike",
        "server running: True",
    ]
    assert postmaster_of(data_dir) is None, "the server stops when its last process exits"
    shell = manage(["dbshell", "--", "-tAc", "SELECT 6 * 7"], clean_env(**env))
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.strip() == "42"


def test_embedded_server_gets_the_configured_buffer_cache_and_keeps_data_when_it_changes(pg_data_dir):
    env = {"EMBEDDED_PG_DIR": str(pg_data_dir), "EMBEDDED_PG_DBNAME": "buffers_check"}
    show = PRINT_DATABASE + textwrap.dedent(
        """
        from django.db import connection
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS survivor (v text)")
            cursor.execute("INSERT INTO survivor VALUES ('kept')")
            cursor.execute("SELECT current_setting('shared_buffers'), count(*) FROM survivor")
            print(cursor.fetchone())
        """
    )
    first = run_python(show, {**env, "EMBEDDED_PG_SHARED_BUFFERS": "160MB"})
    assert first.stdout.strip().splitlines()[-1] == "('160MB', 1)"
    changed = run_python(show, {**env, "EMBEDDED_PG_SHARED_BUFFERS": "200MB"})
    assert changed.stdout.strip().splitlines()[-1] == "('200MB', 2)"
    bad = run_python(show, {**env, "EMBEDDED_PG_SHARED_BUFFERS": "lots"}, check=False)
    assert bad.returncode != 0 and "EMBEDDED_PG_SHARED_BUFFERS='lots' is not a size" in bad.stderr


def test_default_buffer_cache_is_a_quarter_of_memory_within_bounds(monkeypatch):
    from config import embedded_db

    pages = {"SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(embedded_db.os, "sysconf", lambda name: pages.get(name, pages["SC_PHYS_PAGES"]))
    monkeypatch.setattr(embedded_db.Path, "read_text", lambda self: "max\n")
    for memory, expected in ((2 * 2**30, "512MB"), (256 * 2**20, "128MB"), (64 * 2**30, "4096MB")):
        pages["SC_PHYS_PAGES"] = memory // 4096
        assert embedded_db.default_shared_buffers() == expected
    monkeypatch.setattr(embedded_db.Path, "read_text", lambda self: str(4 * 2**30))  # a container's limit
    assert embedded_db.default_shared_buffers() == "1024MB"


def test_debug_off_without_secret_key_refuses_to_start():
    result = run_python(
        PRINT_DATABASE, {"DEBUG": "0", "SECRET_KEY": "", "DATABASE_URL": "postgres://u@h/d"}, check=False
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set while DEBUG is off" in result.stderr


def test_bad_boolean_is_a_clear_error():
    result = run_python(PRINT_DATABASE, {"DEBUG": "maybe", "DATABASE_URL": "postgres://u@h/d"}, check=False)
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_deploy_check_passes_with_production_settings():
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_URL", "DJANGO_"))}
    env.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": "x7!" + "k" * 60 + "-production-grade-secret-value",
            "ALLOWED_HOSTS": "shop.example.com",
            "DATABASE_URL": "postgres://u:p@127.0.0.1:1/never_connected",
        }
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
def test_db_pool_max_size_gives_each_process_a_bounded_connection_pool():
    """DB_POOL_MAX_SIZE: psycopg's pool in the process (CONN_MAX_AGE 0, as Django requires), threads share at
    most that many server connections, and every query still answers."""
    from urllib.parse import quote

    from django.db import connection

    own = connection.settings_dict
    url = f"postgres://{own['USER']}@{quote(str(own['HOST']), safe='')}:{own['PORT']}/{own['NAME']}"
    code = textwrap.dedent(
        """
        import json, threading, django
        from django.conf import settings
        django.setup()
        from django.db import connection, connections
        answers = []
        def query():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(0.2), 1")
                answers.append(cursor.fetchone()[1])
            connections.close_all()  # back to the pool
        threads = [threading.Thread(target=query) for _ in range(6)]
        [t.start() for t in threads]; [t.join() for t in threads]
        pool = connection.pool
        print(json.dumps({"answers": answers, "max_age": settings.DATABASES["default"]["CONN_MAX_AGE"],
                          "max_size": pool.max_size, "opened": pool.get_stats().get("connections_num", 0)}))
        """
    )
    result = run_python(code, {"DATABASE_URL": url, "DB_POOL_MAX_SIZE": "2", "DB_POOL_MIN_SIZE": "1"})
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["answers"] == [1] * 6 and report["max_age"] == 0
    assert report["max_size"] == 2 and 1 <= report["opened"] <= 2, report
