"""manage.py evaluate: measure search quality on labelled photos, several configurations side by side."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from search.evaluation import dataset as datasets
from search.evaluation.dataset import EvaluationError
from search.evaluation.report import METRIC_TITLES, render_html, to_json
from search.evaluation.runner import PipelineChoice, RunOptions
from search.evaluation.session import evaluate
from search.pipeline.config import PROFILES


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise CommandError(
            f"--ef-search takes whole numbers separated by commas, e.g. 40,100,200 (got {text!r})"
        ) from exc
    if not values or any(value < 1 or value > 1000 for value in values):
        raise CommandError("--ef-search values must be between 1 and 1000 (pgvector's range)")
    return values


class Command(BaseCommand):
    help = (
        "Evaluate search quality on labelled photos through the product's own query path, in an evaluation "
        "index kept apart from the live one. Writes a JSON file and an HTML report."
    )

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--folder", type=Path, help="one sub-folder of photos per category")
        source.add_argument("--csv", type=Path, help="CSV with file (relative to it), category and/or product columns")
        source.add_argument("--catalog", action="store_true", help="the catalog's own photos and categories")
        parser.add_argument(
            "--relevance",
            choices=("category", "product"),
            default="category",
            help="a result is relevant when it has the query's category (default) or is the query's own product",
        )
        parser.add_argument("--profile", action="append", choices=PROFILES, help="repeat to compare profiles")
        for stage in ("detector", "segmenter", "embedder"):
            parser.add_argument(
                f"--{stage}",
                action="append",
                help=f"{stage} override(s) as in LOOKALIKE_{stage.upper()}; every combination is evaluated",
            )
        parser.add_argument("--ef-search", default="", help="HNSW ef_search values, e.g. 40,100,200")
        parser.add_argument("--categories", default="", help="only these categories (comma-separated)")
        parser.add_argument("--per-category", type=int, default=0, help="at most N photos per category (0: all)")
        parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--examples", type=int, default=2, help="example queries per category in the report")
        parser.add_argument("--json", type=Path, default=Path("evaluation.json"), help="where to write the JSON")
        parser.add_argument("--html", type=Path, default=Path("evaluation.html"), help="where to write the report")
        parser.add_argument("--keep", action="store_true", help="keep the evaluation schema(s) afterwards")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def handle(self, *args, **options):
        try:
            self._run(options)
        except EvaluationError as exc:
            raise CommandError(exc.message) from exc

    def _run(self, options):
        if options["folder"]:
            data = datasets.from_folder(options["folder"])
        elif options["csv"]:
            data = datasets.from_csv(options["csv"])
        else:
            data = datasets.from_catalog()
        categories = [name.strip() for name in options["categories"].split(",") if name.strip()]
        data = datasets.restrict(
            data, categories, relevance=options["relevance"], limit_per_category=options["per_category"]
        )
        profiles = options["profile"] or [settings.LOOKALIKE_PROFILE]
        choices = list(
            dict.fromkeys(
                PipelineChoice(profile, embedder=e, detector=d, segmenter=g)
                for profile in profiles
                for d in options["detector"] or [""]
                for g in options["segmenter"] or [""]
                for e in options["embedder"] or [""]
            )
        )
        ef_values = _int_list(options["ef_search"]) if options["ef_search"] else [settings.HNSW_EF_SEARCH]
        self.stdout.write(
            f"{len(data.photos)} photos, {len(data.categories)} categories from {data.source}; "
            f"{len(data.skipped)} skipped; {len(choices)} pipeline(s) x ef_search {ef_values}"
        )

        def progress(iterable, total, desc):
            return tqdm(iterable, total=total, desc=desc, unit="photo", file=self.stderr, leave=False)

        run_options = RunOptions(
            relevance=options["relevance"],
            ef_search=ef_values,
            resamples=options["bootstrap"],
            seed=options["seed"],
            keep=options["keep"],
            progress=None if options["no_progress"] else progress,
            examples_per_category=options["examples"],
        )
        command = "python manage.py evaluate " + shlex.join(sys.argv[2:] if "evaluate" in sys.argv[1:2] else [])
        run = evaluate(data, choices, run_options, command=command, log=lambda m: self.stderr.write(m))
        options["json"].parent.mkdir(parents=True, exist_ok=True)
        options["json"].write_text(json.dumps(to_json(run), indent=2))
        options["html"].parent.mkdir(parents=True, exist_ok=True)
        options["html"].write_text(render_html(run))
        self._print_table(run)
        for entry in run.skipped:
            self.stdout.write(self.style.WARNING(f"skipped {entry['photo']}: {entry['reason']}"))
        for failed in run.failed:
            self.stdout.write(self.style.WARNING(f"not evaluated: {failed['name']}: {failed['reason']}"))
        for label, count in run.in_sample.items():
            self.stdout.write(
                self.style.WARNING(
                    f"in-sample: {label}'s category metric was fitted on {count} of these {run.photos} photos"
                )
            )
        for configuration in run.configurations:
            if configuration.schema:
                self.stdout.write(f"kept evaluation schema {configuration.schema} ({configuration.name})")
        self.stdout.write(self.style.SUCCESS(f"Wrote {options['json']} and {options['html']}"))

    def _print_table(self, run):
        names = ["p@1", "p@5", "p@10", "p@20", "r@10", "ap", "rr"]
        width = max(len("configuration"), *(len(c.name) for c in run.configurations)) + 2
        header = f"{'configuration':<{width}}" + "".join(f"{METRIC_TITLES[n]:>9}" for n in names)
        self.stdout.write(header + f"{'exact mAP':>10}{'recall@10':>10}{'search p50/p95 ms':>19}")
        for c in run.configurations:
            overall = c.summary["overall"]["metrics"]
            search = c.latency_ms["search"]
            self.stdout.write(
                f"{c.name:<{width}}"
                + "".join(f"{overall[n]['mean']:>9.3f}" for n in names)
                + f"{c.exact_summary['overall']['metrics']['ap']['mean']:>10.3f}"
                + f"{c.index_recall['@10']:>10.3f}"
                + f"{search['p50']:>10.1f}/{search['p95']:<8.1f}"
            )
