"""``manage.py inference_server``: the pipeline as a service that web processes and workers call."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Serve the configured pipeline over HTTP (LitServe): batching across concurrent requests, models "
        "loaded before the port opens and unloaded when idle. Point LOOKALIKE_INFERENCE_URL at it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=settings.LOOKALIKE_INFERENCE_BIND, help="HOST:PORT")
        parser.add_argument("--max-batch-size", type=int, default=settings.LOOKALIKE_INFERENCE_MAX_BATCH_SIZE)
        parser.add_argument("--batch-timeout", type=float, default=settings.LOOKALIKE_INFERENCE_BATCH_TIMEOUT)
        parser.add_argument(
            "--idle-unload-seconds", type=float, default=settings.LOOKALIKE_INFERENCE_IDLE_UNLOAD_SECONDS
        )
        parser.add_argument("--workers", type=int, default=1, help="inference processes (each loads the models)")

    def handle(self, *args, **options):
        from search.pipeline.service import serve

        host, _, port = options["bind"].rpartition(":")
        if not host or not port.isdigit():
            raise CommandError(f"--bind {options['bind']!r} is not HOST:PORT")
        self.stdout.write(
            f"Inference service on http://{host}:{port}/predict (health: /health), profile "
            f"LOOKALIKE_PROFILE={settings.LOOKALIKE_PROFILE}; loading models..."
        )
        self.stdout.flush()
        serve(
            host=host,
            port=int(port),
            max_batch_size=options["max_batch_size"],
            batch_timeout=options["batch_timeout"],
            idle_unload_seconds=options["idle_unload_seconds"],
            timeout=settings.LOOKALIKE_INFERENCE_TIMEOUT_SECONDS,
            workers=options["workers"],
        )
