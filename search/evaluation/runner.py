"""Run an evaluation: per pipeline configuration, embed every photo through the query path, index the
vectors in an evaluation schema, query each photo against the others with HNSW (each ef_search) and by
exact brute force on the same vectors, and reduce the rankings to metrics.

The query path is the product's: ``core.photos.load_image`` -> ``Pipeline.process_image`` -> the
largest garment (as ``search.query.search_by_image`` chooses) -> ``search.selectors.nearest_products``
(HNSW over halfvec, grouped by product). Only the pipeline and the space are passed explicitly, so
several configurations can be compared in one process without touching the process-wide pipeline.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from django.db import connection, transaction

from catalog import services
from catalog.models import EmbeddingSpace, Garment, Product, ProductImage
from catalog.vocabulary import ProductFilters
from core.errors import DomainError
from core.photos import load_image
from search import selectors
from search.evaluation import metrics
from search.evaluation.dataset import Dataset, EvaluationError, LabelledPhoto
from search.evaluation.index import EvaluationIndex, evaluation_index
from search.pipeline.base import PipelineError
from search.pipeline.config import PipelineConfig
from search.pipeline.registry import build_pipeline
from search.query import default_garment

STAGES = ("decode", "detect", "segment", "cutout", "embed", "other")
SPACE_SUFFIX = "@evaluation"


@dataclass(frozen=True)
class PipelineChoice:
    """A pipeline to evaluate: a profile, optionally with stages overridden (names as in LOOKALIKE_<STAGE>)."""

    profile: str
    embedder: str = ""
    detector: str = ""
    segmenter: str = ""

    @property
    def label(self) -> str:
        overrides = [f"{stage} {name}" for stage, name in self.overrides().items()]
        return self.profile + "".join(f" + {override}" for override in overrides)

    def overrides(self) -> dict[str, str]:
        return {s: getattr(self, s) for s in ("detector", "segmenter", "embedder") if getattr(self, s)}


class _StageClock:
    """Seconds spent in each pipeline stage during the current photo."""

    def __init__(self):
        self.current: dict[str, float] = defaultdict(float)

    def reset(self) -> None:
        self.current = defaultdict(float)


class _Timed:
    """A stage with its one method timed; every other attribute is the stage's own."""

    def __init__(self, stage, method: str, name: str, clock: _StageClock):
        self._stage, self._method, self._name, self._clock = stage, method, name, clock

    def __getattr__(self, attribute):
        value = getattr(self._stage, attribute)
        if attribute != self._method:
            return value

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return value(*args, **kwargs)
            finally:
                self._clock.current[self._name] += time.perf_counter() - started

        return timed


def _instrument(pipeline, clock: _StageClock) -> None:
    """Time the stages of a pipeline built for this evaluation only (never the process-wide one)."""
    for attribute, method, name in (
        ("detector", "detect", "detect"),
        ("segmenter", "segment", "segment"),
        ("cutter", "cut", "cutout"),
        ("embedder", "embed_images", "embed"),
    ):
        stage = getattr(pipeline, attribute, None)
        if stage is not None and hasattr(stage, method):
            setattr(pipeline, attribute, _Timed(stage, method, name, clock))


@dataclass
class EmbeddedPhoto:
    photo: LabelledPhoto
    garments: list  # GarmentResult of the pipeline
    query_vector: np.ndarray
    stage_seconds: dict[str, float]
    size: tuple[int, int] = (1, 1)  # of the decoded photo: rows need it, and it spares the field a file read
    image_id: int = 0
    product_id: int = 0


@dataclass
class RunOptions:
    relevance: str = "category"  # or "product"
    ef_search: Sequence[int] = (100,)
    resamples: int = 1000
    seed: int = 0
    keep: bool = False
    progress: Callable | None = None  # tqdm-like factory: progress(iterable, total=, desc=)
    examples_per_category: int = 2


@dataclass
class ConfigurationResult:
    name: str
    pipeline: str
    ef_search: int
    summary: dict
    exact_summary: dict
    curve: list[float]
    exact_curve: list[float]
    confusion: dict
    index_recall: dict
    latency_ms: dict
    examples: list[dict] = field(default_factory=list)
    schema: str = ""


def embed_photos(pipeline, photos: Sequence[LabelledPhoto], *, progress=None, description="Embedding"):
    """Each photo through the query path once, timed per stage; unreadable photos come back as skipped."""
    clock = _StageClock()
    _instrument(pipeline, clock)
    embedded, skipped = [], []
    iterator = progress(photos, total=len(photos), desc=description) if progress else photos
    for photo in iterator:
        clock.reset()
        try:
            started = time.perf_counter()
            content = photo.read()
            image = load_image(content, max_side=pipeline.max_side)
            decoded = time.perf_counter()
            results = pipeline.process_image(image)
            finished = time.perf_counter()
        except Exception as exc:  # an unreadable photo, or one the models choke on, is listed, never fatal
            reason = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
            skipped.append({"photo": photo.key, "reason": reason})
            continue
        if not results:
            skipped.append({"photo": photo.key, "reason": "the pipeline found nothing to embed"})
            continue
        seconds = dict(clock.current)
        seconds["decode"] = decoded - started
        seconds["other"] = max(0.0, (finished - decoded) - sum(seconds.get(s, 0.0) for s in STAGES[1:5]))
        chosen = results[default_garment([result.box.area for result in results])]
        embedded.append(
            EmbeddedPhoto(
                photo=photo, garments=results, query_vector=chosen.embedding, stage_seconds=seconds, size=image.size
            )
        )
    return embedded, skipped


def _store(embedded: list[EmbeddedPhoto], space: EmbeddingSpace) -> None:
    """Products, photos and garments into the evaluation schema (routed there by the search_path).

    Photos of one product share a product row (a labelled folder's photo is a product of its own).
    Photo rows point at no stored file (the bytes stay where they are) and announce nothing, so no
    worker processes them: they are created directly rather than through ``catalog.services.add_image``.
    """
    products: dict[str, Product] = {}
    for item in embedded:
        group = item.photo.product
        if group not in products:
            products[group] = Product(
                external_id=f"eval-{len(products)}", shop="evaluation", name=group[:500], category=item.photo.category
            )
    Product.objects.bulk_create(list(products.values()))
    images = []
    for position, item in enumerate(embedded):
        product = products[item.photo.product]
        item.product_id = product.pk
        images.append(
            ProductImage(
                product=product,
                file=f"evaluation/{position}.jpg",
                width=item.size[0],
                height=item.size[1],
                sha256=f"{position:064x}",
                position=position,
            )
        )
    ProductImage.objects.bulk_create(images)
    for item, image in zip(embedded, images, strict=True):
        item.image_id = image.pk
        services.replace_garments(
            image=image,
            space=space,
            garments=[
                services.GarmentData(
                    label=g.box.label, score=g.box.score, box=_int_box(g.box), embedding=g.embedding.tolist()
                )
                for g in item.garments
            ],
        )


def _int_box(box) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box.pixel_bounds()
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def _hnsw_search(space, item: EmbeddedPhoto, *, k: int, ef_search: int, relevance: str):
    """``nearest_products`` with the query photo left out, returning hits and seconds.

    Category mode leaves out the query's own product (a filter, as the product's "more like this" does);
    product mode removes the query photo's own garments in a transaction that is rolled back, so its
    product is still found through its other photos. Sequential scans are disabled so that a small
    evaluation set measures the HNSW index rather than a scan the planner would prefer at that size.
    """
    filters = ProductFilters(exclude_product_ids=(item.product_id,)) if relevance == "category" else None
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
        if relevance == "product":
            Garment.objects.filter(image_id=item.image_id).delete()
        started = time.perf_counter()
        hits = selectors.nearest_products(space, item.query_vector.tolist(), k=k, filters=filters, ef_search=ef_search)
        seconds = time.perf_counter() - started
        transaction.set_rollback(True)
    return hits, seconds


class ExactSearch:
    """Brute force over the very vectors in the evaluation index, grouped by product like the selector:
    each product's best garment, nearest first, ties by garment id."""

    def __init__(self, space: EmbeddingSpace):
        rows = list(
            Garment.objects.filter(space=space)
            .order_by("pk")
            .values_list("pk", "image_id", "image__product_id", "embedding")
        )
        self.garment_ids = np.array([r[0] for r in rows])
        self.image_ids = np.array([r[1] for r in rows])
        self.product_ids = np.array([r[2] for r in rows])
        vectors = np.array([np.asarray(r[3], dtype=np.float64) for r in rows])
        self.vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def search(self, item: EmbeddedPhoto, *, k: int, relevance: str) -> tuple[list[int], float]:
        started = time.perf_counter()
        query = np.asarray(item.query_vector, dtype=np.float64)
        query = query / max(np.linalg.norm(query), 1e-12)
        distances = 1.0 - self.vectors @ query
        # Category mode leaves out the query's product, product mode only the query photo (as _hnsw_search).
        allowed = (
            (self.product_ids != item.product_id) if relevance == "category" else (self.image_ids != item.image_id)
        )
        order = np.lexsort((self.garment_ids[allowed], distances[allowed]))
        ranked: list[int] = []
        seen = set()
        for product_id in self.product_ids[allowed][order]:
            if product_id not in seen:
                seen.add(int(product_id))
                ranked.append(int(product_id))
                if len(ranked) == k:
                    break
        return ranked, time.perf_counter() - started


def _outcome(item: EmbeddedPhoto, ranked_products: list[int], truth: dict) -> metrics.QueryOutcome:
    """Relevance of each result: same category (category mode) or the query's own product (product mode)."""
    if truth["relevance"] == "category":
        relevant = tuple(truth["category"][p] == item.photo.category for p in ranked_products)
        total = truth["category_size"][item.photo.category] - 1
    else:
        relevant = tuple(p == item.product_id for p in ranked_products)
        total = 1
    top = truth["category"][ranked_products[0]] if ranked_products else None
    return metrics.QueryOutcome(category=item.photo.category, relevant=relevant, total_relevant=total, top_category=top)


def _queries(embedded: list[EmbeddedPhoto], relevance: str) -> list[EmbeddedPhoto]:
    """Photos that can have a relevant answer: a category with another product, or a product with another photo."""
    if relevance == "category":
        per_category = defaultdict(set)
        for item in embedded:
            per_category[item.photo.category].add(item.product_id)
        return [item for item in embedded if len(per_category[item.photo.category]) >= 2]
    per_product = defaultdict(int)
    for item in embedded:
        per_product[item.product_id] += 1
    return [item for item in embedded if per_product[item.product_id] >= 2]


def evaluate_pipeline(choice: PipelineChoice, dataset: Dataset, options: RunOptions, base: PipelineConfig):
    """All ef_search configurations of one pipeline; returns (results, skipped photos, description, photos of
    the dataset the embedder's learned metric was fitted on: figures on those are in-sample)."""
    # Models must already be on this machine (manage.py download_models): an evaluation never waits on a hub.
    config = replace(base, profile=choice.profile, local_files_only=True, **choice.overrides())
    try:
        pipeline = build_pipeline(config)
    except (PipelineError, ImportError, OSError) as exc:
        raise EvaluationError(f"pipeline {choice.label!r} cannot be built: {exc}") from exc
    embedded, skipped = embed_photos(
        pipeline, dataset.photos, progress=options.progress, description=f"Embedding ({choice.label})"
    )
    if len(embedded) < 2:
        first = f" First reason: {skipped[0]['photo']}: {skipped[0]['reason']}" if skipped else ""
        raise EvaluationError(
            f"only {len(embedded)} photo(s) could be embedded with {choice.label}; nothing to rank.{first}"
        )
    results: list[ConfigurationResult] = []
    with evaluation_index(keep=options.keep) as index:
        space = EmbeddingSpace.objects.create(
            model_id=pipeline.embedder_id + SPACE_SUFFIX, dim=int(pipeline.embedding_dim)
        )
        _store(embedded, space)
        index.build_hnsw(space)
        results = _rank_all(choice, pipeline, embedded, space, index, options)
    return results, skipped, pipeline.describe(), fitted_photos(pipeline, dataset)


def fitted_photos(pipeline, dataset: Dataset) -> int:
    """How many of the dataset's photos the embedder's category metric (embedders.CategoryMetric) was fitted on."""
    from search.pipeline.embedders import fitting_digest

    fitted = getattr(getattr(pipeline.embedder, "metric", None), "fitted_on", frozenset())
    if not fitted:
        return 0
    return sum(fitting_digest(photo.read()) in fitted for photo in dataset.photos)


def _rank_all(choice, pipeline, embedded, space, index: EvaluationIndex, options: RunOptions):
    relevance = options.relevance
    products = {item.product_id: item for item in embedded}
    truth = {
        "relevance": relevance,
        "category": {pid: item.photo.category for pid, item in products.items()},
        "category_size": defaultdict(int),
    }
    for item in products.values():
        truth["category_size"][item.photo.category] += 1
    queries = _queries(embedded, relevance)
    if not queries:
        raise EvaluationError("no photo has a relevant answer in the gallery (every category has one product).")
    exact = ExactSearch(space)
    exact_rankings, exact_seconds = [], []
    for item in queries:
        ranked, seconds = exact.search(item, k=metrics.DEPTH, relevance=relevance)
        exact_rankings.append(ranked)
        exact_seconds.append(seconds)
    exact_outcomes = [_outcome(item, ranked, truth) for item, ranked in zip(queries, exact_rankings, strict=True)]
    exact_summary = metrics.summarise(exact_outcomes, resamples=options.resamples, seed=options.seed)
    stage_latency = {
        stage: metrics.percentiles_ms([item.stage_seconds.get(stage, 0.0) for item in embedded]) for stage in STAGES
    }
    results = []
    for ef_search in options.ef_search:
        rankings, matched_images, seconds = [], [], []
        iterator = queries
        if options.progress:
            iterator = options.progress(queries, total=len(queries), desc=f"Searching ({choice.label}, ef {ef_search})")
        for item in iterator:
            hits, spent = _hnsw_search(space, item, k=metrics.DEPTH, ef_search=ef_search, relevance=relevance)
            rankings.append([hit.product_id for hit in hits])
            matched_images.append([hit.image_id for hit in hits])
            seconds.append(spent)
        outcomes = [_outcome(item, ranked, truth) for item, ranked in zip(queries, rankings, strict=True)]
        recall = {
            f"@{k}": float(
                np.mean([metrics.overlap_at(h, e, k) for h, e in zip(rankings, exact_rankings, strict=True)])
            )
            for k in metrics.KS
        }
        latency = dict(stage_latency)
        latency["search"] = metrics.percentiles_ms(seconds)
        latency["exact_search"] = metrics.percentiles_ms(exact_seconds)
        latency["total"] = metrics.percentiles_ms(
            [sum(item.stage_seconds.values()) + spent for item, spent in zip(queries, seconds, strict=True)]
        )
        results.append(
            ConfigurationResult(
                name=f"{choice.label}, ef_search {ef_search}",
                pipeline=pipeline.describe(),
                ef_search=int(ef_search),
                summary=metrics.summarise(outcomes, resamples=options.resamples, seed=options.seed),
                exact_summary=exact_summary,
                curve=metrics.precision_curve(outcomes),
                exact_curve=metrics.precision_curve(exact_outcomes),
                confusion=metrics.confusion(outcomes),
                index_recall=recall,
                latency_ms=latency,
                examples=_examples(queries, matched_images, outcomes, embedded, options.examples_per_category),
                schema=index.schema if options.keep else "",
            )
        )
    return results


def _examples(queries, matched_images, outcomes, embedded, per_category: int, shown: int = 5) -> list[dict]:
    """Per category the worst and the best query by AP (worst first), each with the photos it matched."""
    by_image = {item.image_id: item for item in embedded}
    by_category = defaultdict(list)
    for item, images, outcome in zip(queries, matched_images, outcomes, strict=True):
        ap = metrics.average_precision(outcome.relevant, outcome.total_relevant)
        by_category[item.photo.category].append((ap, item.photo.key, item, images, outcome))
    chosen = []
    for category in sorted(by_category):
        rows = sorted(by_category[category], key=lambda row: (row[0], row[1]))
        picks = [rows[0]] + ([rows[-1]] if len(rows) > 1 else []) + rows[1:-1]
        for ap, _, item, images, outcome in picks[:per_category]:
            chosen.append(
                {
                    "category": category,
                    "query": item.photo,
                    "ap": ap,
                    "results": [
                        {
                            "photo": by_image[image_id].photo,
                            "category": by_image[image_id].photo.category,
                            "correct": ok,
                        }
                        for image_id, ok in zip(images[:shown], outcome.relevant[:shown], strict=False)
                    ],
                }
            )
    return chosen
