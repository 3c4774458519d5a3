"""``manage.py serve``: the whole site on one machine, the production web server and the worker together.

Why one command: a site served without a worker never processes a photo or runs a crawl. This starts
gunicorn (``config.wsgi``) and the django-q2 cluster (``manage.py qcluster``, search/worker.py's graceful
one) as child processes, each in a process group of its own so that a Ctrl-C in the terminal reaches only
this process, which then stops both in order: SIGTERM to gunicorn (finishes the requests under way) and to
the cluster's group (a task finishes within ``Q_STOP_GRACE_SECONDS`` or is given back). If either child
dies, the other is stopped too and the command fails, so a process manager restarts the pair. Last, the
embedded PostgreSQL this command started is stopped (``config.embedded_db.release``), which a SIGTERM
alone never did: atexit handlers do not run on a signal's default action.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
GUNICORN_CONFIG = "python:config.gunicorn_conf"


class Command(BaseCommand):
    help = "Run the production web server (gunicorn) and the background worker together; Ctrl-C stops both."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--bind", default=settings.WEB_BIND, help="host:port (default: WEB_BIND)")
        parser.add_argument("--workers", type=int, default=settings.WEB_WORKERS, help="gunicorn processes")
        parser.add_argument("--threads", type=int, default=settings.WEB_THREADS, help="threads per process")
        parser.add_argument("--no-worker", action="store_true", help="web only (workers run elsewhere)")

    def handle(self, *args, bind: str, workers: int, threads: int, no_worker: bool, **options) -> None:
        self._stop_signal: int | None = None
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)
        connection.ensure_connection()  # starts (and so owns a handle on) the embedded server first
        connection.close()
        self._announce(bind)
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, verbosity=0)
        children = {"web": self._start_web(bind, workers, threads)}
        if not no_worker:
            children["worker"] = self._spawn([sys.executable, "manage.py", "qcluster"])
        failed = self._wait(children)
        self._stop(children)
        self._release_database()
        if failed:
            self.stderr.write(f"{failed} exited unexpectedly: stopped everything")
            sys.exit(1)
        self.stdout.write("stopped")

    def _on_signal(self, signum, frame) -> None:
        self._stop_signal = signum

    def _announce(self, bind: str) -> None:
        from search.pipeline.config import PipelineConfig
        from search.pipeline.registry import resolved_profile

        config = PipelineConfig.from_settings()
        profile = resolved_profile(config)
        stages = ", ".join(f"{stage} {name}" for stage, name in config.stage_names(profile).items())
        if settings.LOOKALIKE_INFERENCE_URL:  # the models run in the service, not in these processes
            self.stdout.write(f"Pipeline: the inference service at {settings.LOOKALIKE_INFERENCE_URL}")
        else:
            self.stdout.write(f"Pipeline profile: {profile} (LOOKALIKE_PROFILE={config.profile}; {stages})")
        self.stdout.write(f"Database: {database_location()}")
        broker = "Redis" if settings.REDIS_URL else "the database (ORM broker)"
        self.stdout.write(f"Web: http://{bind}/ (gunicorn); task queue: {broker}")
        self.stdout.flush()

    def _start_web(self, bind: str, workers: int, threads: int) -> subprocess.Popen:
        command = [
            sys.executable, "-m", "gunicorn", "config.wsgi:application",
            "--config", GUNICORN_CONFIG,  # each worker warms the models in the background (search/warmup.py)
            "--bind", bind, "--workers", str(workers), "--threads", str(threads),
            "--worker-class", "gthread" if threads > 1 else "sync",
            "--timeout", str(settings.WEB_TIMEOUT_SECONDS),
            "--graceful-timeout", str(int(settings.Q_STOP_GRACE_SECONDS)),
            "--access-logfile", "-",
        ]  # fmt: skip
        return self._spawn(command)

    def _spawn(self, command: list[str]) -> subprocess.Popen:
        return subprocess.Popen(command, cwd=settings.BASE_DIR, start_new_session=True)

    def _wait(self, children: dict[str, subprocess.Popen]) -> str | None:
        """Until a stop signal (None) or a child's exit (its name)."""
        while self._stop_signal is None:
            for name, child in children.items():
                if child.poll() is not None:
                    return name
            time.sleep(0.2)
        self.stdout.write(f"{signal.Signals(self._stop_signal).name}: stopping the web server and the worker")
        return None

    def _stop(self, children: dict[str, subprocess.Popen]) -> None:
        for child in children.values():
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + settings.Q_STOP_GRACE_SECONDS + 10
        for child in children.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
        for child in children.values():
            _signal_group(child, signal.SIGKILL)  # whatever of the group is left (a stuck worker)
            child.wait()

    def _release_database(self) -> None:
        connection.close()
        if not settings.DATABASE_URL:
            from config.embedded_db import release

            release(settings.DATABASES["default"]["EMBEDDED"])


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signum)


def database_location() -> str:
    if settings.DATABASE_URL:
        db = settings.DATABASES["default"]
        return f"PostgreSQL {db['NAME']} at {db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432} (DATABASE_URL)"
    return f"embedded PostgreSQL, database {settings.EMBEDDED_PG_DBNAME}, data in {settings.EMBEDDED_PG_DIR}"
