"""Ranking metrics over ranked result lists, per category and overall, with bootstrap intervals.

Pure arithmetic on lists of booleans (is result i relevant?), so it can be checked by hand. Definitions:
- precision@K = relevant among the first K / K (a list shorter than K still divides by K);
- recall@K = relevant among the first K / all relevant items of the query;
- AP@D (mAP is its mean) = sum over relevant ranks r <= D of precision@r, / min(relevant, D), D = max K;
- reciprocal rank = 1 / rank of the first relevant result within D, 0 when none.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

KS = (1, 5, 10, 20)
DEPTH = max(KS)


@dataclass(frozen=True)
class QueryOutcome:
    """One query's ranked results reduced to what metrics need."""

    category: str
    relevant: tuple[bool, ...]  # per returned result, in rank order
    total_relevant: int  # relevant items in the gallery for this query (the recall denominator)
    top_category: str | None = None  # category of the first result (for the confusion matrix)


def precision_at(relevant: Sequence[bool], k: int) -> float:
    return sum(relevant[:k]) / k


def recall_at(relevant: Sequence[bool], k: int, total_relevant: int) -> float:
    return sum(relevant[:k]) / total_relevant if total_relevant else 0.0


def average_precision(relevant: Sequence[bool], total_relevant: int, depth: int = DEPTH) -> float:
    hits, summed = 0, 0.0
    for rank, is_relevant in enumerate(relevant[:depth], start=1):
        if is_relevant:
            hits += 1
            summed += hits / rank
    denominator = min(total_relevant, depth)
    return summed / denominator if denominator else 0.0


def reciprocal_rank(relevant: Sequence[bool], depth: int = DEPTH) -> float:
    for rank, is_relevant in enumerate(relevant[:depth], start=1):
        if is_relevant:
            return 1.0 / rank
    return 0.0


def query_scores(outcome: QueryOutcome, ks: Sequence[int] = KS) -> dict[str, float]:
    """Every metric of one query, keyed by name (``p@5``, ``r@5``, ``ap``, ``rr``)."""
    scores = {}
    for k in ks:
        scores[f"p@{k}"] = precision_at(outcome.relevant, k)
        scores[f"r@{k}"] = recall_at(outcome.relevant, k, outcome.total_relevant)
    scores["ap"] = average_precision(outcome.relevant, outcome.total_relevant, max(ks))
    scores["rr"] = reciprocal_rank(outcome.relevant, max(ks))
    return scores


def bootstrap_interval(
    values: Sequence[float], *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over queries (resampled with replacement).

    scipy.stats.bootstrap does the same, but scipy is not a requirement of this project; the percentile
    method is a few lines of numpy.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (float("nan"), float("nan"))
    if data.size == 1 or resamples <= 0:
        return (float(data.mean()), float(data.mean()))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return (float(low), float(high))


def summarise(
    outcomes: Sequence[QueryOutcome], *, ks: Sequence[int] = KS, resamples: int = 1000, seed: int = 0
) -> dict[str, dict]:
    """Mean and bootstrap interval of every metric: ``{"overall": {...}, "categories": {name: {...}}}``."""

    def block(group: Sequence[QueryOutcome]) -> dict:
        per_query = [query_scores(outcome, ks) for outcome in group]
        metrics = {}
        for name in per_query[0] if per_query else []:
            values = [scores[name] for scores in per_query]
            low, high = bootstrap_interval(values, resamples=resamples, seed=seed)
            metrics[name] = {"mean": float(np.mean(values)), "low": low, "high": high}
        return {"queries": len(group), "metrics": metrics}

    by_category: dict[str, list[QueryOutcome]] = defaultdict(list)
    for outcome in outcomes:
        by_category[outcome.category].append(outcome)
    return {
        "overall": block(outcomes),
        "categories": {name: block(group) for name, group in sorted(by_category.items())},
    }


def precision_curve(outcomes: Sequence[QueryOutcome], depth: int = DEPTH) -> list[float]:
    """Mean precision@k for k = 1..depth (the report's P@K curve)."""
    if not outcomes:
        return []
    return [float(np.mean([precision_at(o.relevant, k) for o in outcomes])) for k in range(1, depth + 1)]


def confusion(outcomes: Sequence[QueryOutcome]) -> dict[str, dict[str, int]]:
    """Query category -> category of its first result -> count."""
    table: dict[str, Counter] = defaultdict(Counter)
    for outcome in outcomes:
        table[outcome.category][outcome.top_category or "(no result)"] += 1
    return {row: dict(counts) for row, counts in sorted(table.items())}


def overlap_at(first: Sequence[int], second: Sequence[int], k: int) -> float:
    """Share of the exact top-k (``second``) that the index also returned in its top k: the index's recall."""
    reference = set(second[:k])
    return len(set(first[:k]) & reference) / len(reference) if reference else 1.0


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50 and p95 of durations, in milliseconds."""
    if not seconds:
        return {"p50": float("nan"), "p95": float("nan"), "n": 0}
    p50, p95 = np.percentile(np.asarray(seconds, dtype=float) * 1000.0, [50, 95])
    return {"p50": float(p50), "p95": float(p95), "n": len(seconds)}
