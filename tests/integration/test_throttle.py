"""The search throttle holds under concurrency (issue 15): requests racing from many threads, each with its own
database connection as gunicorn's processes and threads have, get exactly the rate and then 429.

DRF's cache throttle (get the history, then set it) lets racing requests overwrite each other's hits; the
atomic one in ``core.throttling`` must not. No timing: the clock of the window is passed in or not reached.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from core import throttling
from core.models import ThrottleHistory
from search.views import PageSearchThrottle

RATE = 5
RACERS = 20


@pytest.fixture
def five_per_minute(monkeypatch, settings):
    settings.LOOKALIKE_PROFILE = "offline"
    rates = {**ScopedRateThrottle.THROTTLE_RATES, "search": f"{RATE}/min"}
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", rates)
    monkeypatch.setattr(PageSearchThrottle, "THROTTLE_RATES", rates)


def race(make_client, path: str, params: dict) -> list:
    """RACERS requests released together, each thread with its own client and database connection."""
    start = threading.Barrier(RACERS)

    def one(_):
        client = make_client()
        try:
            start.wait()
            return client.get(path, params)
        finally:
            connection.close()

    with ThreadPoolExecutor(RACERS) as pool:
        return list(pool.map(one, range(RACERS)))


def assert_exactly_the_rate_got_through(responses) -> None:
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * RATE + [429] * (RACERS - RATE), statuses
    for refused in (r for r in responses if r.status_code == 429):
        assert 0 < int(refused["Retry-After"]) <= 60


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_background_processing")
def test_racing_api_searches_get_exactly_the_rate_and_other_clients_keep_theirs(five_per_minute):
    responses = race(lambda: APIClient(REMOTE_ADDR="10.1.0.1"), "/api/search/", {"q": "dress"})
    assert_exactly_the_rate_got_through(responses)
    assert APIClient(REMOTE_ADDR="10.1.0.1").get("/api/search/", {"q": "dress"}).status_code == 429
    assert APIClient(REMOTE_ADDR="10.1.0.2").get("/api/search/", {"q": "dress"}).status_code == 200, "own budget"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_background_processing")
def test_racing_page_text_searches_get_exactly_the_rate(five_per_minute):
    responses = race(lambda: Client(REMOTE_ADDR="10.2.0.1"), "/", {"q": "dress"})
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * RATE + [429] * (RACERS - RATE), statuses
    assert all(b"Too many searches" in r.content for r in responses if r.status_code == 429)


@pytest.mark.django_db
def test_the_window_slides_and_emptied_rows_are_cleaned_up(monkeypatch):
    def hit(now: float) -> bool:
        return throttling.record_hit("k", now=now, duration=60, limit=2)[0]

    assert [hit(1000), hit(1030), hit(1059)] == [True, True, False]
    allowed, history = throttling.record_hit("k", now=1059.5, duration=60, limit=2)
    assert not allowed and history == [1030, 1000]  # DRF's order: its wait() gives 0.5 s
    assert hit(1060.5) and not hit(1061), "1000 left the window, 1030 is still in it"
    monkeypatch.setattr(throttling, "CLEANUP_ODDS", 1)
    throttling.record_hit("other", now=5000, duration=60, limit=2)
    assert list(ThrottleHistory.objects.values_list("key", flat=True)) == ["other"]
