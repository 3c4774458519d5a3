"""The evaluation as JSON for machines and as one self-contained HTML page for people.

The page has no external asset: charts are inline SVG whose geometry is computed here (the template only
places it), thumbnails are small JPEG data URIs.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field

from django.template.loader import render_to_string
from PIL import Image

from core.photos import load_image
from search.evaluation.metrics import KS
from search.evaluation.runner import ConfigurationResult

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f")
TABLE_METRICS = (*(f"p@{k}" for k in KS), *(f"r@{k}" for k in KS), "ap", "rr")
METRIC_TITLES = {"ap": "mAP@20", "rr": "MRR", **{f"p@{k}": f"P@{k}" for k in KS}, **{f"r@{k}": f"R@{k}" for k in KS}}
LATENCY_STAGES = ("decode", "detect", "segment", "cutout", "embed", "search", "exact_search", "total")


@dataclass
class EvaluationRun:
    source: str
    relevance: str
    command: str
    photos: int
    categories: list[str]
    configurations: list[ConfigurationResult] = field(default_factory=list)
    pipelines: dict[str, str] = field(default_factory=dict)  # label -> describe()
    skipped: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # configurations that could not run: {"name", "reason"}
    in_sample: dict[str, int] = field(default_factory=dict)  # label -> photos its learned metric was fitted on
    started_at: str = ""
    seconds: float = 0.0


def _clean(value):
    """NaN -> None, so the JSON is strict."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def to_json(run: EvaluationRun) -> dict:
    return _clean(
        {
            "source": run.source,
            "relevance": run.relevance,
            "command": run.command,
            "started_at": run.started_at,
            "seconds": round(run.seconds, 1),
            "photos": run.photos,
            "categories": run.categories,
            "pipelines": run.pipelines,
            "skipped": run.skipped,
            "failed_configurations": run.failed,
            "in_sample_photos": run.in_sample,
            "configurations": [
                {
                    "name": c.name,
                    "pipeline": c.pipeline,
                    "ef_search": c.ef_search,
                    "hnsw": c.summary,
                    "exact": c.exact_summary,
                    "precision_curve": c.curve,
                    "exact_precision_curve": c.exact_curve,
                    "index_recall": c.index_recall,
                    "latency_ms": c.latency_ms,
                    "confusion": c.confusion,
                    "examples": [
                        {
                            "category": e["category"],
                            "query": e["query"].key,
                            "ap": e["ap"],
                            "results": [
                                {"photo": r["photo"].key, "category": r["category"], "correct": r["correct"]}
                                for r in e["results"]
                            ],
                        }
                        for e in c.examples
                    ],
                    **({"kept_schema": c.schema} if c.schema else {}),
                }
                for c in run.configurations
            ],
        }
    )


# --- charts -----------------------------------------------------------------------------------------


def category_bars(configurations: list[ConfigurationResult], metric: str = "p@5") -> dict:
    """Horizontal grouped bars: one row per category, one bar per configuration, with the CI as a whisker."""
    categories = sorted({name for c in configurations for name in c.summary["categories"]})
    label_width, plot_width, bar, gap = 110, 460, 9, 8
    row_height = bar * len(configurations) + gap
    height = 30 + row_height * len(categories) + 10
    rows = []
    for row, category in enumerate(categories):
        top = 30 + row * row_height
        bars = []
        for index, configuration in enumerate(configurations):
            block = configuration.summary["categories"].get(category)
            if not block or metric not in block["metrics"]:
                continue
            value = block["metrics"][metric]
            y = top + index * bar
            bars.append(
                {
                    "x": label_width,
                    "y": y,
                    "width": round(plot_width * value["mean"], 1),
                    "height": bar - 1,
                    "colour": PALETTE[index % len(PALETTE)],
                    "low": round(label_width + plot_width * value["low"], 1),
                    "high": round(label_width + plot_width * value["high"], 1),
                    "mid": y + (bar - 1) / 2,
                    "title": f"{category}, {configuration.name}: {value['mean']:.3f} "
                    f"[{value['low']:.3f}, {value['high']:.3f}]",
                }
            )
        rows.append({"label": category, "label_y": top + row_height / 2, "bars": bars})
    ticks = [{"x": label_width + plot_width * t / 4, "label": f"{t / 4:.2f}"} for t in range(5)]
    return {
        "width": label_width + plot_width + 20,
        "height": height,
        "rows": rows,
        "ticks": ticks,
        "axis_top": 20,
        "axis_bottom": height - 10,
        "label_x": label_width - 6,
        "metric": METRIC_TITLES.get(metric, metric),
    }


def precision_chart(configurations: list[ConfigurationResult]) -> dict:
    """P@k for k = 1..20 per configuration, and the exact search of the first one, dashed."""
    left, top, width, height = 44, 12, 480, 220
    depth = max((len(c.curve) for c in configurations), default=0)

    def points(curve: list[float]) -> str:
        step = width / max(depth - 1, 1)
        return " ".join(f"{left + i * step:.1f},{top + height * (1 - value):.1f}" for i, value in enumerate(curve))

    lines = [
        {"points": points(c.curve), "colour": PALETTE[i % len(PALETTE)], "label": c.name, "dashed": False}
        for i, c in enumerate(configurations)
    ]
    if configurations:
        first = configurations[0]
        lines.append(
            {"points": points(first.exact_curve), "colour": "#111827", "label": "exact search", "dashed": True}
        )
    x_ticks = [
        {"x": round(left + (k - 1) * width / max(depth - 1, 1), 1), "label": k}
        for k in (1, 5, 10, 15, 20)
        if k <= depth
    ]
    y_ticks = [{"y": round(top + height * (1 - t / 4), 1), "label": f"{t / 4:.2f}"} for t in range(5)]
    return {
        "width": left + width + 16,
        "height": top + height + 34,
        "left": left,
        "right": left + width,
        "top": top,
        "bottom": top + height,
        "lines": lines,
        "x_ticks": x_ticks,
        "y_ticks": y_ticks,
    }


def confusion_table(configuration: ConfigurationResult) -> dict:
    """Rows: query category; columns: category of the first result; cells shaded by row share."""
    rows = configuration.confusion
    columns = sorted({name for counts in rows.values() for name in counts} | set(rows))
    table = []
    for name, counts in rows.items():
        total = sum(counts.values()) or 1
        table.append(
            {
                "label": name,
                "cells": [
                    {
                        "count": counts.get(column, 0),
                        "share": round(counts.get(column, 0) / total, 3),
                        "diagonal": column == name,
                    }
                    for column in columns
                ],
            }
        )
    return {"columns": columns, "rows": table}


# --- thumbnails -------------------------------------------------------------------------------------


class Thumbnails:
    """Small JPEG data URIs, made once per photo."""

    def __init__(self, height: int = 96):
        self.height = height
        self.cache: dict[str, str] = {}

    def __call__(self, photo) -> str:
        if photo.key not in self.cache:
            try:
                image = load_image(photo.read(), max_side=self.height * 3)
                image.thumbnail((self.height * 2, self.height), Image.Resampling.LANCZOS)
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=72)
                self.cache[photo.key] = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
            except Exception:  # a photo gone since it was embedded: the grid shows its name instead
                self.cache[photo.key] = ""
        return self.cache[photo.key]


def render_html(run: EvaluationRun) -> str:
    thumbnail = Thumbnails()
    configurations = run.configurations
    table = []
    for index, c in enumerate(configurations):
        overall = c.summary["overall"]["metrics"]
        exact = c.exact_summary["overall"]["metrics"]
        table.append(
            {
                "name": c.name,
                "colour": PALETTE[index % len(PALETTE)],
                "queries": c.summary["overall"]["queries"],
                "cells": [
                    {
                        "mean": overall[m]["mean"],
                        "low": overall[m]["low"],
                        "high": overall[m]["high"],
                        "exact": exact[m]["mean"],
                    }
                    for m in TABLE_METRICS
                ],
                "recall": c.index_recall.get("@10"),
                "latency": [c.latency_ms.get(stage, {}) for stage in LATENCY_STAGES],
            }
        )
    first = configurations[0] if configurations else None
    examples = []
    if first is not None:
        for example in first.examples:
            examples.append(
                {
                    "category": example["category"],
                    "query": {"key": example["query"].key, "src": thumbnail(example["query"])},
                    "ap": example["ap"],
                    "results": [
                        {
                            "key": r["photo"].key,
                            "src": thumbnail(r["photo"]),
                            "category": r["category"],
                            "correct": r["correct"],
                        }
                        for r in example["results"]
                    ],
                }
            )
    context = {
        "run": run,
        "metric_titles": [METRIC_TITLES[m] for m in TABLE_METRICS],
        "latency_stages": LATENCY_STAGES,
        "table": table,
        "bars": category_bars(configurations) if configurations else None,
        "curve": precision_chart(configurations) if configurations else None,
        "confusion": confusion_table(first) if first else None,
        "first": first,
        "examples": examples,
    }
    return render_to_string("search/evaluation_report.html", context)
