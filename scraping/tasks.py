"""Background entry point (django-q2) for crawls started from the admin or the API."""

from __future__ import annotations

import logging

from scraping import selectors
from scraping.crawler import run_crawl
from scraping.models import RunStatus

logger = logging.getLogger(__name__)


def crawl_task(run_id: int) -> dict:
    """Crawl a queued run; returns its counters (the run record holds the details)."""
    run = selectors.get_run(run_id)
    if run is None:
        raise LookupError(f"crawl run {run_id} does not exist")
    if run.status != RunStatus.QUEUED:
        logger.info("crawl run %s is %s, not queued: not starting it again", run_id, run.status)
        return {"run_id": run_id, "status": run.status}
    summary = run_crawl(run)
    return {"run_id": run_id, "status": RunStatus.FINISHED, **summary.counters}


def enqueue_crawl(run) -> str:
    """Queue the crawl of a run created by ``services.create_run``; returns the task id."""
    from django_q.tasks import async_task

    return async_task("scraping.tasks.crawl_task", run.pk, task_name=f"crawl-{run.pk}", group="crawl")
