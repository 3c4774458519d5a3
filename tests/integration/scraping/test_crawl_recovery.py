"""Crawls that are cut short (Ctrl-C, a killed task) lose no page, and failed loads are retried, not "no product"."""

from __future__ import annotations

from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command
from django_q.exceptions import TimeoutException

from catalog.models import Product
from scraping import services
from scraping.browser import PageLoadError, PageSnapshot
from scraping.crawler import Crawler
from scraping.management.commands.crawl import CommandReporter
from scraping.models import CrawlPage, CrawlRun, PageStatus, RunStatus
from scraping.options import CrawlOptions
from scraping.tasks import crawl_task, slice_seconds
from tests.integration.scraping.test_crawler_rules import CannedBrowsers, product_page

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("crawl_settings")]


def listing_page(links: list[str]) -> str:
    return "<html><body>" + "".join(f'<a href="{link}">item</a>' for link in links) + "</body></html>"


def shop_of_seeds(server, seeds: int = 120, listings: int = 3, links_each: int = 5):
    """``seeds`` seed URLs, the first ``listings`` of them listings that link to pages that are no seed."""
    pages, urls, found = {}, [], []
    for n in range(seeds):
        url = server.url(f"/p/{n}")
        urls.append(url)
        if n < listings:
            links = [server.url(f"/found/{n}-{k}") for k in range(links_each)]
            found += links
            pages[url] = (url, listing_page(links))
        else:
            pages[url] = (url, product_page(f"Seed {n}", ""))
    for url in found:
        pages[url] = (url, product_page(f"Found {url.rsplit('/', 1)[1]}", ""))
    return urls, found, pages


def crawl(*args) -> str:
    out = StringIO()
    call_command("crawl", *args, "--no-progress", stdout=out, stderr=StringIO())
    return out.getvalue()


def interrupt_after(monkeypatch, pages: int) -> None:
    """Ctrl-C in the command's main thread once ``pages`` pages are done (once: a resume goes through)."""
    real_page_done = CommandReporter.page_done
    done = []

    def page_done(self, result):
        real_page_done(self, result)
        done.append(result["url"])
        if len(done) == pages:
            raise KeyboardInterrupt

    monkeypatch.setattr(CommandReporter, "page_done", page_done)


def test_resume_after_ctrl_c_visits_every_seed_and_found_page_exactly_once(scripted_server, monkeypatch):
    seeds, found, pages = shop_of_seeds(scripted_server)
    browsers = CannedBrowsers(pages)
    monkeypatch.setattr("scraping.crawler.open_browser_pool", lambda options: browsers)
    interrupt_after(monkeypatch, 21)
    with pytest.raises(KeyboardInterrupt):
        crawl(*seeds, "--follow")
    first = CrawlRun.objects.get()
    assert (first.status, first.error) == (RunStatus.FAILED, "interrupted")
    assert len(browsers.loaded) == 21
    assert first.pages.filter(status=PageStatus.PENDING).count() == 120 + 15 - 21  # the frontier survived

    out = crawl("--resume")
    second = CrawlRun.objects.exclude(pk=first.pk).get()
    assert (second.resumed_from, second.status) == (first, RunStatus.FINISHED)
    assert f"Crawl run {second.pk} finished" in out
    assert Counter(browsers.loaded) == Counter({url: 1 for url in seeds + found})
    assert second.pages.count() == second.pages.filter(status=PageStatus.OK).count() == 114
    assert Product.objects.count() == 120 - 3 + 15
    assert crawl("--resume").strip() == f"Crawl run {second.pk} left nothing to retry."


def test_a_task_killed_at_its_timeout_says_so_and_its_run_is_resumable(scripted_server, monkeypatch, settings):
    settings.CRAWL_TASK_SLICE_SECONDS = 3600
    seeds, found, pages = shop_of_seeds(scripted_server, seeds=30, listings=1, links_each=4)
    browsers = CannedBrowsers(pages)
    monkeypatch.setattr("scraping.crawler.open_browser_pool", lambda options: browsers)
    real_save_counters = services.RunRecorder.save_counters
    saves = []

    def killed_on_the_eighth_page(self, counters, **kwargs):
        real_save_counters(self, counters, **kwargs)
        saves.append(1)
        if len(saves) == 8:  # django-q's SIGALRM handler raises this in the task's main thread
            raise TimeoutException("Task exceeded maximum timeout value (900 seconds)")

    monkeypatch.setattr(services.RunRecorder, "save_counters", killed_on_the_eighth_page)
    run = services.create_run(seed_urls=seeds, options=CrawlOptions.build(follow=True))
    with pytest.raises(TimeoutException):
        crawl_task(run.pk)
    run.refresh_from_db()
    assert (run.status, run.error) == (RunStatus.FAILED, "Task exceeded maximum timeout value (900 seconds)")
    assert run.pages.filter(status=PageStatus.PENDING).count() == 30 + 4 - 8

    monkeypatch.setattr(services.RunRecorder, "save_counters", real_save_counters)
    crawl("--resume")
    assert Counter(browsers.loaded) == Counter({url: 1 for url in seeds + found})
    assert crawl_task(run.pk, 2) == {"run_id": run.pk, "status": RunStatus.FAILED}  # no slice of it starts again
    assert len(browsers.loaded) == 34


def test_resuming_a_run_left_running_by_a_killed_worker_retires_it(scripted_server, monkeypatch):
    seeds, _found, pages = shop_of_seeds(scripted_server, seeds=5, listings=0)
    browsers = CannedBrowsers(pages)
    monkeypatch.setattr("scraping.crawler.open_browser_pool", lambda options: browsers)
    killed = services.create_run(seed_urls=seeds, options=CrawlOptions.build())
    recorder = services.RunRecorder(killed)
    recorder.start()
    recorder.pages_found([(url, 0) for url in seeds])
    recorder.page_started(seeds[0], 0)  # the worker died here: no finish, no error

    crawl("--resume")
    killed.refresh_from_db()
    resumed = CrawlRun.objects.exclude(pk=killed.pk).get()
    assert killed.status == RunStatus.FAILED
    assert killed.error == f"stopped before it finished (interrupted or killed); resumed as run {resumed.pk}"
    assert sorted(browsers.loaded) == sorted(seeds)
    assert resumed.pages_ok == 5


def test_a_slice_that_ends_leaves_its_frontier_pending_and_the_next_goes_on(scripted_server, monkeypatch, settings):
    """The task's slices without a browser: every page once, counters summed, caps over the whole run."""
    settings.CRAWL_TASK_SLICE_SECONDS = 0.000001  # one page a slice
    seeds, found, pages = shop_of_seeds(scripted_server, seeds=6, listings=1, links_each=2)
    browsers = CannedBrowsers(pages)
    monkeypatch.setattr("scraping.crawler.open_browser_pool", lambda options: browsers)
    run = services.create_run(seed_urls=seeds, options=CrawlOptions.build(follow=True, max_pages=7))
    first = crawl_task(run.pk)  # queues the next slice, which (tasks run in-process here) queues the next...
    run.refresh_from_db()
    assert (first["status"], first["slice"]) == (RunStatus.RUNNING, 1)
    assert (run.status, run.slices) == (RunStatus.FINISHED, 7)
    assert Counter(browsers.loaded) == Counter({url: 1 for url in (seeds + found)[:7]})
    assert (run.pages_ok, run.pages_no_product, run.pages_skipped) == (6, 1, 1)
    assert run.stop_reason == "page limit of 7 reached"
    assert run.crawl_seconds > 0
    assert crawl_task(run.pk, 8) == {"run_id": run.pk, "status": RunStatus.FINISHED}  # a late duplicate: nothing
    assert len(browsers.loaded) == 7


def test_slice_length_is_half_the_task_timeout_unless_set(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 900}
    settings.CRAWL_TASK_SLICE_SECONDS = None
    assert slice_seconds() == 450
    settings.CRAWL_TASK_SLICE_SECONDS = 60
    assert slice_seconds() == 60


class FailingBrowsers(CannedBrowsers):
    """Loads end the way Chromium ends a redirect loop: as an error, or on its error page."""

    def __init__(self, pages, errors: dict[str, PageLoadError]) -> None:
        super().__init__(pages)
        self.errors = errors

    def load(self, url: str) -> PageSnapshot:
        if url in self.errors:
            self.loaded.append(url)
            raise self.errors[url]
        return super().load(url)


def test_redirect_loops_and_browser_error_pages_are_retryable_failures(scripted_server, settings):
    settings.CRAWL_PAGE_RETRIES = 1
    looping, error_page = scripted_server.url("/loop"), scripted_server.url("/error-page")
    loop_error = PageLoadError(
        f"{looping} redirects in a loop (net::ERR_TOO_MANY_REDIRECTS)",
        retryable=True,
        reason=PageLoadError.REASON_REDIRECT_LOOP,
        net_error="ERR_TOO_MANY_REDIRECTS",
        final_url="chrome-error://chromewebdata/",
    )
    browsers = FailingBrowsers(
        {error_page: ("chrome-error://chromewebdata/", "<html><body>This page isn't working</body></html>")},
        {looping: loop_error},
    )
    options = CrawlOptions.build()
    run = services.create_run(seed_urls=[looping, error_page], options=options)
    Crawler(options, run=run, browser_pool=browsers).crawl([looping, error_page])
    run.refresh_from_db()
    loop_page, error_page_row = run.pages.get(url=looping), run.pages.get(url=error_page)
    assert (loop_page.status, loop_page.attempts) == (PageStatus.FAILED, 2)
    assert loop_page.error == f"{looping} redirects in a loop (net::ERR_TOO_MANY_REDIRECTS) (gave up after 2 tries)"
    assert error_page_row.status == PageStatus.FAILED
    assert "error page" in error_page_row.error
    assert (run.pages_failed, run.pages_no_product) == (2, 0)
    assert {url for url, _depth in services.resume_plan().seeds} == {looping, error_page}


@pytest.mark.browser
def test_a_real_redirect_loop_is_recorded_as_a_failed_page(scripted_server, browser_pool, settings):
    scripted_server.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    url = scripted_server.url("/loop")
    options = CrawlOptions.build()
    run = services.create_run(seed_urls=[url], options=options)
    Crawler(options, run=run, browser_pool=browser_pool).crawl([url])
    page = CrawlPage.objects.get()
    assert page.status == PageStatus.FAILED
    assert page.error == f"{url} redirects in a loop (net::ERR_TOO_MANY_REDIRECTS)"
    assert scripted_server.hits["/loop"] > 1
    assert [seed for seed, _depth in services.resume_plan().seeds] == [url]
