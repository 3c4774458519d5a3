"""Settings selection, run in fresh interpreters so each sees only the environment it is given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO_ROOT

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


def test_without_database_url_an_embedded_server_keeps_data_across_restarts(tmp_path):
    data_dir = tmp_path / "pg"
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


def test_embedded_server_gets_the_configured_buffer_cache_and_keeps_data_when_it_changes(tmp_path):
    env = {"EMBEDDED_PG_DIR": str(tmp_path / "pg"), "EMBEDDED_PG_DBNAME": "buffers_check"}
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
