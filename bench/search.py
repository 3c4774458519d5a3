"""Vector search benchmark: pgvector HNSW vs exact scan vs numpy, on clustered synthetic 512-d vectors.

Run from the repository root (uses the configured database server, in its own database `bench_search`):

    OMP_NUM_THREADS=1 python bench/search.py --sizes 100000 --queries 200
    OMP_NUM_THREADS=1 python bench/search.py --sizes 100000,1000000 --queries 200   # ~1 h on 2 cores

Prints, per size: HNSW build time, p50/p95 latency and recall@10 of the HNSW query (same SQL shape as
search.selectors: ORDER BY embedding::halfvec(512) <=> q LIMIT 10, returning the exact distance), of the
exact query (index off), and of
numpy's dot + argsort over the same vectors in memory; a filtered query keeping 1% of rows; then the
end-to-end API query latency (POST /api/search/ with a real photo, warm offline pipeline).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from django.conf import settings  # the application's HNSW parameters (HNSW_M, HNSW_EF_CONSTRUCTION)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

DIM = 512
K = 10


def clustered(rng: np.random.Generator, n: int, clusters: int = 1000, spread: float = 0.6) -> np.ndarray:
    """Unit vectors around `clusters` centres: closer to real embeddings than uniform noise."""
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        stop = min(n, start + step)
        labels = rng.integers(0, clusters, stop - start)
        block = centres[labels] + spread * rng.standard_normal((stop - start, DIM)).astype(np.float32)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def catalog_like(rng: np.random.Generator, n: int, photos_per_product: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """A catalog's shape: 1,000 styles, products around a style, several photos around each product.

    Returns the vectors and each vector's product index; queries are new photos of existing products.
    """
    styles = rng.standard_normal((1000, DIM)).astype(np.float32)
    n_products = max(1, n // photos_per_product)
    products = styles[rng.integers(0, 1000, n_products)] + 0.5 * rng.standard_normal((n_products, DIM)).astype(
        np.float32
    )
    owner = np.repeat(np.arange(n_products), photos_per_product)[:n]
    out = np.empty((n, DIM), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        stop = min(n, start + step)
        block = products[owner[start:stop]] + 0.15 * rng.standard_normal((stop - start, DIM)).astype(np.float32)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out, products


def connect(dbname: str):
    import django
    import psycopg
    from django.conf import settings
    from pgvector.psycopg import register_vector

    django.setup()
    from django.db import connection

    connection.ensure_connection()  # the embedded server starts (and fills in HOST/PORT) on first connection
    db = settings.DATABASES["default"]
    params = {"host": db["HOST"], "port": db["PORT"] or 5432, "user": db["USER"], "password": db["PASSWORD"] or None}
    with psycopg.connect(dbname=db["NAME"], autocommit=True, **params) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone():
            admin.execute(f'CREATE DATABASE "{dbname}"')
    conn = psycopg.connect(dbname=dbname, autocommit=True, **params)
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    register_vector(conn)
    return conn


def load(conn, vectors: np.ndarray, rng: np.random.Generator) -> tuple[float, np.ndarray]:
    n = len(vectors)
    conn.execute("DROP TABLE IF EXISTS bench_garment")
    # Same column shape as catalog_garment: untyped vector, partial index on a cast, filter column.
    conn.execute("CREATE TABLE bench_garment (id bigint PRIMARY KEY, space_id int, category int, embedding vector)")
    category = rng.integers(0, 100, n)  # category 0 keeps ~1% of the rows
    with conn.cursor().copy(
        "COPY bench_garment (id, space_id, category, embedding) FROM STDIN WITH (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["int8", "int4", "int4", "vector"])
        for i in range(n):
            copy.write_row((i, 1, int(category[i]), vectors[i]))
    conn.execute("SET maintenance_work_mem = '6GB'")
    conn.execute(f"SET max_parallel_maintenance_workers = {max(1, (os.cpu_count() or 2) - 1)}")
    started = time.perf_counter()
    from catalog.services import hnsw_index_sql  # the application's own index definition

    conn.execute(
        hnsw_index_sql(
            index_name="bench_hnsw",
            space_id=1,
            dim=DIM,
            m=settings.HNSW_M,
            ef_construction=settings.HNSW_EF_CONSTRUCTION,
            table="bench_garment",
        )
    )
    build = time.perf_counter() - started
    conn.execute("CREATE INDEX bench_category ON bench_garment (category)")
    conn.execute("ANALYZE bench_garment")
    # Flush the load's dirty pages now: otherwise the checkpointer writes gigabytes back while queries
    # are timed, which measures the bulk load's tail rather than a serving database.
    conn.execute("CHECKPOINT")
    return build, category


# search.selectors' shape: order by the indexed half-precision distance, report the exact one.
SQL = (
    f"SELECT id, embedding <=> %(q)s::vector AS distance FROM bench_garment WHERE space_id = 1 {{where}} "
    f"ORDER BY embedding::halfvec({DIM}) <=> %(q)s::halfvec({DIM}) LIMIT {K}"
)
# Without the cast the ORDER BY cannot match the index expression: a guaranteed exact scan.
EXACT_SQL = (
    f"SELECT id, embedding <=> %(q)s::vector FROM bench_garment WHERE space_id = 1 {{where}} "
    f"ORDER BY embedding <=> %(q)s::vector LIMIT {K}"
)


def run_queries(conn, queries, *, where="", exact=False, ef_search=None):
    latencies, results = [], []
    with conn.transaction():
        conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef_search or settings.HNSW_EF_SEARCH)}")
        conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        sql = (EXACT_SQL if exact else SQL).format(where=where)
        for query in queries:
            started = time.perf_counter()
            rows = conn.execute(sql, {"q": query}).fetchall()
            latencies.append((time.perf_counter() - started) * 1000)
            results.append([row[0] for row in rows])
    return np.array(latencies), results


def plan_uses_index(conn, query, where="") -> bool:
    with conn.transaction():
        conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + SQL.format(where=where), {"q": query}).fetchall())
    return "bench_hnsw" in plan


def recall(found, truth) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def bench_size(n: int, n_queries: int, seed: int, spread: float, data: str) -> None:
    rng = np.random.default_rng(seed)
    if data == "catalog":
        vectors, products = catalog_like(rng, n)
        picked = products[rng.integers(0, len(products), n_queries)]
        queries = picked + 0.15 * rng.standard_normal((n_queries, DIM)).astype(np.float32)
        label = "catalog-like: 10 photos per product, products around 1,000 styles"
    else:
        vectors = clustered(rng, n, spread=spread)
        picked = vectors[rng.integers(0, n, n_queries)]
        queries = picked + 0.05 * rng.standard_normal((n_queries, DIM)).astype(np.float32)
        label = f"isotropic clusters, spread {spread}"
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    conn = connect("bench_search")
    build, category = load(conn, vectors, rng)

    numpy_ms, truth = [], []
    for query in queries:
        started = time.perf_counter()
        scores = vectors @ query
        top = np.argsort(-scores)[:K]  # the talk's way: full sort of every score
        numpy_ms.append((time.perf_counter() - started) * 1000)
        truth.append(top.tolist())
    numpy_ms = np.array(numpy_ms)

    run_queries(conn, queries)  # warm-up pass, untimed: a serving database has its index in memory
    hnsw_ms, hnsw_found = run_queries(conn, queries)
    sweep = []
    for ef in (40, 100, 200, 300, 400):
        ms, found = run_queries(conn, queries, ef_search=ef)
        sweep.append(f"ef_search {ef}: p50 {np.percentile(ms, 50):.2f} ms, recall@10 {recall(found, truth):.3f}")
    exact_ms, exact_found = run_queries(conn, queries[: max(10, n_queries // 10)], exact=True)
    where = "AND category = 0"
    filtered_ms, filtered_found = run_queries(conn, queries, where=where)
    mask = category == 0
    filtered_truth = []
    ids = np.flatnonzero(mask)
    for query in queries:
        scores = vectors[mask] @ query
        filtered_truth.append(ids[np.argsort(-scores)[:K]].tolist())
    full_k = float(np.mean([len(f) == K for f in filtered_found]))

    print(f"\n## {n:,} vectors x {DIM}-d ({label}), {n_queries} queries, k={K}")
    size, buffers = conn.execute(
        "SELECT pg_size_pretty(pg_relation_size('bench_hnsw')), current_setting('shared_buffers')"
    ).fetchone()
    print(
        f"HNSW build (halfvec, m={settings.HNSW_M}, ef_construction={settings.HNSW_EF_CONSTRUCTION}): {build:.1f} s, "
        f"index {size}, shared_buffers {buffers}"
    )
    print(
        f"HNSW (ef_search {settings.HNSW_EF_SEARCH}) p50 {np.percentile(hnsw_ms, 50):7.2f} ms  "
        f"p95 {np.percentile(hnsw_ms, 95):7.2f} ms  "
        f"recall@10 {recall(hnsw_found, truth):.3f}  (index used: {plan_uses_index(conn, queries[0])})"
    )
    print("HNSW by hnsw.ef_search: " + "; ".join(sweep))
    print(
        f"exact SQL p50 {np.percentile(exact_ms, 50):7.2f} ms  p95 {np.percentile(exact_ms, 95):7.2f} ms  "
        f"recall@10 {recall(exact_found, truth[: len(exact_found)]):.3f}"
    )
    print(
        f"numpy    p50 {np.percentile(numpy_ms, 50):7.2f} ms  p95 {np.percentile(numpy_ms, 95):7.2f} ms  "
        "(dot + argsort)"
    )
    print(
        f"filtered 1% p50 {np.percentile(filtered_ms, 50):7.2f} ms  p95 {np.percentile(filtered_ms, 95):7.2f} ms  "
        f"recall@10 {recall(filtered_found, filtered_truth):.3f}  queries with k results: {full_k:.0%}  "
        f"(index used: {plan_uses_index(conn, queries[0], where)})"
    )
    print(
        f"ratio: HNSW p50 is {np.percentile(numpy_ms, 50) / np.percentile(hnsw_ms, 50):.0f}x faster than numpy, "
        f"{np.percentile(exact_ms, 50) / np.percentile(hnsw_ms, 50):.0f}x faster than exact SQL"
    )
    conn.execute("DROP TABLE bench_garment")
    conn.close()


def bench_api(repeats: int) -> None:
    """POST /api/search/ with a real photo against the indexed demo catalog, warm offline pipeline."""
    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import cache
    from django.test import Client
    from django.test.utils import setup_test_environment

    from catalog.models import EmbeddingSpace
    from search.pipeline.registry import get_pipeline

    setup_test_environment()
    settings.ALLOWED_HOSTS = ["*"]
    settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["search"] = "100000/min"
    pipeline = get_pipeline()
    if not EmbeddingSpace.objects.filter(model_id=pipeline.embedder_id, garments__isnull=False).exists():
        print("\n## API: skipped (index the demo catalog first: README command (a))")
        return
    photo = next((ROOT / "catalog" / "demo" / "images").glob("*.jpg")).read_bytes()
    client = Client()
    timings = []
    for i in range(repeats + 3):
        cache.clear()
        from django.core.files.uploadedfile import SimpleUploadedFile

        started = time.perf_counter()
        response = client.post("/api/search/", {"image": SimpleUploadedFile("q.jpg", photo), "k": 12})
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.content
        if i >= 3:
            timings.append(elapsed)
    timings = np.array(timings)
    print(f"\n## API end-to-end, {pipeline.describe()}")
    print(
        f"POST /api/search/ (decode + embed + HNSW + hydrate), {repeats} runs: "
        f"p50 {np.percentile(timings, 50):.0f} ms, "
        f"p95 {np.percentile(timings, 95):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000", help="comma-separated table sizes")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--api-repeats", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data",
        choices=["isotropic", "catalog"],
        default="isotropic",
        help="isotropic Gaussian clusters (hard: neighbours barely nearer than the rest of their cluster) "
        "or a catalog's shape (several photos per product)",
    )
    parser.add_argument(
        "--spread", type=float, default=0.6, help="per-dimension noise around the 1,000 centres (larger is harder)"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    for size in (int(s) for s in args.sizes.split(",")):
        bench_size(size, args.queries, args.seed, args.spread, args.data)
    bench_api(args.api_repeats)


if __name__ == "__main__":
    main()
