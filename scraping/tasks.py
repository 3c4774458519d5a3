"""Background entry point (django-q2) for crawls started from the admin or the API.

A task may not outlive the cluster's timeout (``Q_TIMEOUT``), while a crawl may last ``CRAWL_MAX_SECONDS``:
so a task crawls for one slice (``CRAWL_TASK_SLICE_SECONDS``), leaves the rest recorded as pending pages
and queues the next slice of the same run, until the run is done or a cap stops it.
"""

from __future__ import annotations

import logging

from django.conf import settings

from scraping import selectors, services
from scraping.crawler import run_crawl
from scraping.models import RunStatus

logger = logging.getLogger(__name__)


def slice_seconds() -> float | None:
    """How long one task crawls: ``CRAWL_TASK_SLICE_SECONDS``, else half the task timeout (None: no timeout).

    Half leaves the other half for the pages under way when the slice ends (each bounded by the page and
    photo timeouts) and for the run's book-keeping.
    """
    configured = getattr(settings, "CRAWL_TASK_SLICE_SECONDS", None)
    if configured is not None:
        return float(configured)
    timeout = getattr(settings, "Q_CLUSTER", {}).get("timeout")
    return timeout / 2 if timeout else None


def crawl_task(run_id: int, slice_number: int = 1) -> dict:
    """Crawl one slice of a run (the first slice: a queued run); returns its counters so far."""
    run = selectors.get_run(run_id)
    if run is None:
        raise LookupError(f"crawl run {run_id} does not exist")
    if not services.claim_slice(run, slice_number):
        logger.info(
            "crawl run %s is %s (slice %s): not starting slice %s", run_id, run.status, run.slices, slice_number
        )
        return {"run_id": run_id, "status": run.status}
    summary = run_crawl(run, slice_seconds=slice_seconds())
    if summary.more_to_do:
        enqueue_crawl(run, slice_number=slice_number + 1)
        return {"run_id": run_id, "status": RunStatus.RUNNING, "slice": slice_number, **summary.counters}
    return {"run_id": run_id, "status": RunStatus.FINISHED, "slice": slice_number, **summary.counters}


def enqueue_crawl(run, *, slice_number: int = 1) -> str:
    """Queue (a slice of) the crawl of a run created by ``services.create_run``; returns the task id."""
    from django_q.tasks import async_task

    name = f"crawl-{run.pk}" if slice_number == 1 else f"crawl-{run.pk}-slice-{slice_number}"
    return async_task("scraping.tasks.crawl_task", run.pk, slice_number, task_name=name, group="crawl")
