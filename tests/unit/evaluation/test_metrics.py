"""Ranking metrics against numbers worked out by hand on tiny rankings."""

from __future__ import annotations

import pytest

from search.evaluation import metrics
from search.evaluation.metrics import QueryOutcome

# Query A: results relevant at ranks 1 and 3, three relevant items in the gallery.
A = QueryOutcome(category="dress", relevant=(True, False, True, False, False), total_relevant=3, top_category="dress")
# Query B: its only relevant item at rank 3.
B = QueryOutcome(category="shoes", relevant=(False, False, True), total_relevant=1, top_category="dress")


def test_single_query_metrics_match_a_hand_computation():
    scores = metrics.query_scores(A)
    assert scores["p@1"] == 1.0
    assert scores["p@5"] == pytest.approx(2 / 5)
    assert scores["p@10"] == pytest.approx(2 / 10)  # a list shorter than K still divides by K
    assert scores["r@1"] == pytest.approx(1 / 3)
    assert scores["r@5"] == pytest.approx(2 / 3)
    assert scores["ap"] == pytest.approx((1 / 1 + 2 / 3) / 3)  # precision at each relevant rank / relevant count
    assert scores["rr"] == 1.0
    scores = metrics.query_scores(B)
    assert (scores["p@1"], scores["r@1"], scores["r@5"]) == (0.0, 0.0, 1.0)
    assert scores["ap"] == pytest.approx(1 / 3)
    assert scores["rr"] == pytest.approx(1 / 3)


def test_average_precision_is_normalised_by_the_depth_when_more_items_are_relevant():
    ranking = (True,) * 20
    assert metrics.average_precision(ranking, total_relevant=50) == pytest.approx(1.0)
    assert metrics.average_precision((False,) * 20 + (True,), total_relevant=1) == 0.0  # beyond depth 20
    assert metrics.reciprocal_rank((False,) * 5) == 0.0


def test_summary_means_over_queries_per_category_and_overall():
    summary = metrics.summarise([A, B], resamples=200)
    overall = summary["overall"]["metrics"]
    assert summary["overall"]["queries"] == 2
    assert overall["p@1"]["mean"] == pytest.approx(0.5)
    assert overall["ap"]["mean"] == pytest.approx(((1 + 2 / 3) / 3 + 1 / 3) / 2)
    assert overall["rr"]["mean"] == pytest.approx((1 + 1 / 3) / 2)
    assert set(summary["categories"]) == {"dress", "shoes"}
    assert summary["categories"]["shoes"]["metrics"]["rr"]["mean"] == pytest.approx(1 / 3)
    for value in overall.values():
        assert value["low"] <= value["mean"] <= value["high"]


def test_bootstrap_interval_brackets_the_mean_and_is_reproducible():
    values = [0.0, 1.0] * 50
    low, high = metrics.bootstrap_interval(values, resamples=500, seed=3)
    assert 0.35 < low < 0.5 < high < 0.65
    assert metrics.bootstrap_interval(values, resamples=500, seed=3) == (low, high)
    assert metrics.bootstrap_interval([0.7] * 10) == pytest.approx((0.7, 0.7))
    assert metrics.bootstrap_interval([0.2]) == (0.2, 0.2)


def test_curve_confusion_overlap_and_percentiles():
    curve = metrics.precision_curve([A, B], depth=3)
    assert curve == pytest.approx([(1 + 0) / 2, (1 / 2 + 0) / 2, (2 / 3 + 1 / 3) / 2])
    assert metrics.confusion([A, B]) == {"dress": {"dress": 1}, "shoes": {"dress": 1}}
    assert metrics.overlap_at([1, 2, 3], [3, 2, 9], k=3) == pytest.approx(2 / 3)
    assert metrics.overlap_at([1, 2], [1, 2], k=10) == 1.0
    latency = metrics.percentiles_ms([0.001, 0.002, 0.003])
    assert latency["p50"] == pytest.approx(2.0) and latency["n"] == 3
    assert latency["p95"] == pytest.approx(2.9)
