"""Chart geometry and the JSON shape of the report, from hand-made results (no database, no model)."""

from __future__ import annotations

import json
import math

import pytest

from search.evaluation import metrics, report
from search.evaluation.metrics import QueryOutcome
from search.evaluation.runner import ConfigurationResult


def _configuration(name: str, outcomes: list[QueryOutcome]) -> ConfigurationResult:
    summary = metrics.summarise(outcomes, resamples=50)
    return ConfigurationResult(
        name=name,
        pipeline="test pipeline",
        ef_search=40,
        summary=summary,
        exact_summary=summary,
        curve=metrics.precision_curve(outcomes),
        exact_curve=metrics.precision_curve(outcomes),
        confusion=metrics.confusion(outcomes),
        index_recall={"@10": 1.0},
        latency_ms={"search": metrics.percentiles_ms([])},
    )


GOOD = [QueryOutcome("dress", (True,) * 5, 5, "dress"), QueryOutcome("shoes", (False,) * 5, 5, "dress")]


def test_bars_are_as_long_as_the_metric_and_curves_span_the_plot():
    bars = report.category_bars([_configuration("a", GOOD)], metric="p@5")
    dress, shoes = bars["rows"]
    assert (dress["label"], shoes["label"]) == ("dress", "shoes")
    assert dress["bars"][0]["width"] == pytest.approx(460.0)  # P@5 = 1: the whole plot width
    assert shoes["bars"][0]["width"] == 0.0
    chart = report.precision_chart([_configuration("a", GOOD), _configuration("b", GOOD)])
    assert len(chart["lines"]) == 3  # two configurations and the first one's exact search
    first_point, last_point = chart["lines"][0]["points"].split()[0], chart["lines"][0]["points"].split()[-1]
    assert float(first_point.split(",")[0]) == chart["left"] and float(last_point.split(",")[0]) == chart["right"]


def test_confusion_rows_are_shaded_by_their_share():
    table = report.confusion_table(_configuration("a", GOOD))
    assert table["columns"] == ["dress", "shoes"]
    shoes = next(row for row in table["rows"] if row["label"] == "shoes")
    assert [(c["count"], c["share"], c["diagonal"]) for c in shoes["cells"]] == [(1, 1.0, False), (0, 0.0, True)]


def test_json_is_strict_even_with_empty_latencies():
    run = report.EvaluationRun(source="s", relevance="category", command="c", photos=2, categories=["dress"])
    run.configurations.append(_configuration("a", GOOD))
    text = json.dumps(report.to_json(run), allow_nan=False)
    assert json.loads(text)["configurations"][0]["latency_ms"]["search"]["p50"] is None
    assert not math.isnan(json.loads(text)["configurations"][0]["hnsw"]["overall"]["metrics"]["ap"]["mean"])
