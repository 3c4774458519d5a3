"""gunicorn hooks for ``manage.py serve`` (``--config python:config.gunicorn_conf``)."""

from __future__ import annotations


def post_worker_init(worker) -> None:
    """Each web worker warms the models in the background as soon as it has loaded Django, so the first
    shopper's photo search does not pay for loading them (search/warmup.py)."""
    from search.warmup import warm_up_in_background

    warm_up_in_background()
