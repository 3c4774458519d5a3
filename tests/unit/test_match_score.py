"""The calibrated match score (search.selectors.match_score): where a distance falls among the catalog's
distances of unrelated pairs, so unrelated items no longer read as "50 % similar"."""

from __future__ import annotations

import pytest

from search.selectors import match_score

# Percentiles 0..100 of unrelated-pair distances: evenly from 0.40 to 0.60 (0.002 a percentile).
EVEN = [0.40 + 0.002 * i for i in range(101)]


def test_a_distance_scores_the_share_of_unrelated_pairs_that_are_further_apart():
    assert match_score(0.50, EVEN) == 50  # the median unrelated pair: a coin toss, not "a match"
    assert match_score(0.42, EVEN) == 90  # closer than 90 % of unrelated pairs
    assert match_score(0.59, EVEN) == 5
    assert match_score(0.401, EVEN) == 100  # rounds: 99.5


def test_beyond_the_baseline_is_100_or_0():
    assert match_score(0.0, EVEN) == 100
    assert match_score(0.40, EVEN) == 100
    assert match_score(0.60, EVEN) == 0
    assert match_score(1.5, EVEN) == 0


def test_the_score_never_rises_with_the_distance():
    distances = [i / 1000 for i in range(300, 700)]
    scores = [match_score(d, EVEN) for d in distances]
    assert scores == sorted(scores, reverse=True)
    assert set(scores) >= {0, 50, 100}


def test_uneven_baselines_interpolate_within_a_percentile():
    # Most unrelated pairs sit close together (high cosine of non-negative CNN features): a raw "% similar"
    # of 1 - distance would call all of them ~75 %; the calibrated score spreads them over 0..100.
    quantiles = [0.20] + [0.25] * 99 + [0.30]
    assert match_score(0.22, quantiles) == 100  # 40 % of the way through the first percentile: 99.6
    assert match_score(0.275, quantiles) == 1  # halfway through the last one: 0.5 rounds up, as search.js does
    assert match_score(0.25, quantiles) == 99  # the first flat step is reached at percentile 1


@pytest.mark.parametrize("quantiles", [[], [0.5]])
def test_without_a_baseline_there_is_no_score(quantiles):
    assert match_score(0.3, quantiles) is None


def test_without_a_distance_there_is_no_score():
    assert match_score(None, EVEN) is None  # a keyword-only match has no distance
