"""One evaluation run over several configurations: pipelines (profile, stage overrides) x ef_search values."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from search.evaluation.dataset import Dataset, EvaluationError
from search.evaluation.report import EvaluationRun
from search.evaluation.runner import PipelineChoice, RunOptions, evaluate_pipeline
from search.pipeline.config import PipelineConfig


def evaluate(
    dataset: Dataset,
    choices: Sequence[PipelineChoice],
    options: RunOptions,
    *,
    base: PipelineConfig | None = None,
    command: str = "",
    log=None,
) -> EvaluationRun:
    """Evaluate each pipeline in turn; one that cannot be built is reported, the others still run."""
    base = base or PipelineConfig.from_settings()
    started = time.perf_counter()
    run = EvaluationRun(
        source=dataset.source,
        relevance=options.relevance,
        command=command,
        photos=len(dataset.photos),
        categories=dataset.categories,
        skipped=list(dataset.skipped),
        started_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    seen_skips = {entry["photo"] for entry in run.skipped}
    for choice in choices:
        try:
            results, skipped, description, in_sample = evaluate_pipeline(choice, dataset, options, base)
        except EvaluationError as exc:
            if len(choices) == 1:
                raise
            run.failed.append({"name": choice.label, "reason": exc.message})
            if log:
                log(f"skipped {choice.label}: {exc.message}")
            continue
        run.pipelines[choice.label] = description
        if in_sample:
            run.in_sample[choice.label] = in_sample
            if log:
                log(
                    f"warning: {in_sample} of the {len(dataset.photos)} photos were used to fit {choice.label}'s "
                    "category metric (LOOKALIKE_EMBEDDING_METRIC): its figures on them are in-sample."
                )
        run.configurations.extend(results)
        for entry in skipped:
            if entry["photo"] not in seen_skips:
                seen_skips.add(entry["photo"])
                run.skipped.append(entry)
    if not run.configurations:
        reasons = "; ".join(f"{f['name']}: {f['reason']}" for f in run.failed)
        raise EvaluationError(f"no configuration could be evaluated ({reasons}).")
    run.seconds = time.perf_counter() - started
    return run
