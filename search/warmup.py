"""Warm the models at start, so the first shopper's search is not the one that loads them (7-8 s on CPU)."""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

logger = logging.getLogger(__name__)


def warm_up() -> None:
    """Load the configured pipeline and run one small photo (and a text query, with a text tower) through it.
    Errors propagate so the caller decides."""
    from search.management.commands.warmup_models import sample_photo
    from search.pipeline.registry import get_pipeline
    from search.pipeline.remote import RemotePipeline

    pipeline = get_pipeline()
    if isinstance(pipeline, RemotePipeline):  # the service loaded its models before it opened its port
        pipeline.info()  # reachable, and this process knows the embedder
        return
    pipeline.process_image(sample_photo())
    if pipeline.supports_text:
        pipeline.embed_text(["a red t-shirt"])


def _warm_up_and_log() -> None:
    start = time.perf_counter()
    try:
        warm_up()
    except Exception:  # a model that cannot load: the first search reports it, the server keeps serving
        logger.exception("warming the models failed; the first search will load them")
        return
    print(f"Models warmed in {time.perf_counter() - start:.1f} s", flush=True)  # the serve log


def warm_up_in_background() -> threading.Thread | None:
    """Start ``warm_up`` in a daemon thread (LOOKALIKE_WARMUP, on by default) and return it.

    A thread, not a step before the server listens: the web process is ready at once, and a search that
    arrives during the warm-up waits on the registry's one load (``get_pipeline`` is thread-safe) rather
    than loading the models a second time. Called by each gunicorn worker (``config/gunicorn_conf.py``).
    """
    if not settings.LOOKALIKE_WARMUP:
        return None
    thread = threading.Thread(target=_warm_up_and_log, name="lookalike-warmup", daemon=True)
    thread.start()
    return thread
