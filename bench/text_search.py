"""Text search benchmark (issue 13): keyword and hybrid query latency on a generated 100k-product catalog.

Run from the repository root (uses the configured database server, in its own throwaway database
`bench_text_search`, migrated with the project's migrations; `--drop` removes it afterwards):

    OMP_NUM_THREADS=1 python bench/text_search.py --products 100000 --queries 300 --drop

The catalog: products whose names, colours, materials, categories and descriptions are drawn from small
multilingual word lists (English, French, German, Spanish, Italian; accents included), 300 brands, 40 shops,
SKUs like ``AB-12345-RED``; one photo and one 512-d garment vector per product, clustered around 1,000 styles
(as in bench/search.py), with the application's half-precision HNSW index. Queries mix whole descriptions,
single words, typos, accent-free spellings, other languages, SKUs and SKU fragments.

It times, warm, each query run through the application's own code:
- keyword: ``catalog.keyword.keyword_ranking`` (k=12) and ``search.query.search_by_text`` in the offline
  profile (keyword ranking + hydrated result rows, what GET /api/search/?q= runs);
- hybrid: ``search.query.search_by_text`` with a text tower: keyword ranking, text-vector HNSW search,
  reciprocal rank fusion and hydration. The text tower is a CLIP ViT-B/32-sized text transformer with
  random weights (no FashionCLIP weights can be downloaded here; the compute is the same size), so its
  encode time is real while its vectors are not: the vector used for the search is a point near a style
  centre of the generated catalog.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

DB_NAME = os.environ.get("BENCH_TEXT_DB", "bench_text_search")
DIM = 512
K = 12

COLOURS = [
    "red", "blue", "black", "white", "green", "beige", "navy", "pink", "grey", "brown", "rouge", "bleu", "noir",
    "blanc", "vert", "écarlate", "rot", "blau", "schwarz", "weiß", "grün", "rojo", "azul", "negro", "blanco",
    "rosso", "nero", "bianco", "crème", "bordeaux",
]  # fmt: skip
MATERIALS = [
    "satin", "silk", "cotton", "linen", "denim", "wool", "leather", "cashmere", "velvet", "suede", "soie", "coton",
    "lin", "laine", "cuir", "Seide", "Baumwolle", "Leinen", "Wolle", "Leder", "seda", "algodón", "lino", "lana",
    "piel", "cotone", "pelle",
]  # fmt: skip
STYLES = [
    "midi", "maxi", "mini", "slim", "oversized", "cropped", "wrap", "pleated", "fitted", "relaxed", "classic",
    "vintage", "longue", "courte", "ajustée", "lang", "kurz", "weit", "largo", "corto", "ampio",
]  # fmt: skip
CATEGORIES = [
    "dress", "shirt", "t-shirt", "jeans", "trousers", "skirt", "jacket", "coat", "sweater", "hoodie", "shorts",
    "boots", "sneakers", "sandals", "hat", "scarf", "robe", "chemise", "jupe", "veste", "manteau", "Kleid",
    "Hemd", "Hose", "Rock", "Jacke", "Mantel", "vestido", "camisa", "falda", "chaqueta", "abito", "gonna",
]  # fmt: skip
FILLER = (  # noqa: SIM905 (a word list reads better as text)
    "soft comfortable everyday elegant lightweight breathable timeless tailored flattering warm durable "
    "handmade sustainable organic premium casual formal summer winter spring autumn evening party office "
    "légère élégante confortable douce chaude idéale pour tous les jours leicht bequem weich elegant für "
    "jeden Tag ligero cómodo suave elegante perfecto para cada día leggero comodo morbido "
).split()


def catalog_rows(rng: np.random.Generator, n: int):
    brands = [
        f"{a}{b}".capitalize() for a, b in zip(rng.choice(list("bcdfghklmnprstvz"), 300), range(300), strict=True)
    ]
    brands = [f"Maison {b}" if i % 7 == 0 else f"{b}ton" if i % 5 == 0 else b for i, b in enumerate(brands)]
    shops = [f"shop-{i}.example" for i in range(40)]
    for i in range(n):
        colour, material, style = rng.choice(COLOURS), rng.choice(MATERIALS), rng.choice(STYLES)
        category = str(rng.choice(CATEGORIES))
        brand = str(rng.choice(brands))
        name = f"{colour} {material} {style} {category}".capitalize()
        description = " ".join(rng.choice(FILLER, rng.integers(12, 30))) + f" {material} {colour}."
        sku = f"{brand[:2].upper()}-{10000 + i}-{colour[:3].upper()}"
        yield i, name, description, brand, str(rng.choice(shops)), sku, colour, category


QUERIES = [
    "red satin midi dress", "robe écarlate", "robe ecarlate", "sattin dres", "schwarz leder jacke",
    "vestido rojo de seda", "linen shirt", "lin chemise blanc", "blue denim jeans", "cashmere sweater",
    "oversized hoodie", "Maison", "wool coat navy", "leather boots", "cuir", "Baumwolle Hemd", "abito nero",
    "jupe plissée", "velvet", "pink", "scarf", "sneakers white", "weiss kleid", "suede", "bordeaux",
]  # fmt: skip


def setup_database(products: int, seed: int) -> None:
    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    connection.ensure_connection()  # the embedded server starts on first connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME])
        exists = cursor.fetchone() is not None
        if not exists:
            cursor.execute(f'CREATE DATABASE "{DB_NAME}"')
    connection.close()
    connection.settings_dict["NAME"] = DB_NAME
    call_command("migrate", verbosity=0)
    from catalog.models import Product

    if Product.objects.count() == products:
        print(f"reusing {products} products in {DB_NAME}")
        return
    load(products, seed)


def load(n: int, seed: int) -> None:
    from django.db import connection
    from pgvector.psycopg import register_vector

    from bench.search import catalog_like
    from catalog import services
    from catalog.models import EmbeddingSpace, Product

    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE catalog_garment, catalog_productimage, catalog_product, catalog_embeddingspace CASCADE"
        )
    space = EmbeddingSpace.objects.create(model_id="bench/clip-vit-b32-text", dim=DIM)
    vectors, _ = catalog_like(rng, n, photos_per_product=1)
    raw = connection.connection
    register_vector(raw)
    with raw.cursor() as cursor:
        columns = "(id, name, description, brand, shop, sku, colour, category, external_id, gtin, mpn, currency, "
        columns += "availability, created_at, updated_at)"
        with cursor.copy(f"COPY catalog_product {columns} FROM STDIN") as copy:
            for i, name, description, brand, shop, sku, colour, category in catalog_rows(rng, n):
                copy.write_row((i + 1, name, description, brand, shop, sku, colour, category, f"p{i}", "", "", "", "",
                                "now", "now"))  # fmt: skip
        with cursor.copy(
            "COPY catalog_productimage (id, product_id, source_url, file, sha256, width, height, position, status, "
            "error, attempts, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in range(n):  # width/height set: hydrating a row must not open a (missing) file
                copy.write_row(
                    (i + 1, i + 1, "", f"bench/{i}.jpg", f"{i:064x}", 10, 10, 0, "done", "", 1, "now", "now")
                )
        with cursor.copy(
            "COPY catalog_garment (image_id, space_id, label, score, box_x0, box_y0, box_x1, box_y1, mask, cutout, "
            "embedding, created_at) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "int8", "text", "float8", "int4", "int4", "int4", "int4", "text", "text", "vector",
                            "timestamptz"])  # fmt: skip
            now = __import__("datetime").datetime.now(__import__("datetime").timezone.utc)
            for i in range(n):
                copy.write_row((i + 1, space.pk, "garment", 0.9, 0, 0, 10, 10, "", "", vectors[i], now))
        for table in ("catalog_product", "catalog_productimage", "catalog_garment"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    services.ensure_embedding_space(model_id=space.model_id, dim=DIM)  # builds the space's HNSW index
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("CHECKPOINT")
    indexed = time.perf_counter() - started
    print(f"loaded {Product.objects.count()} products in {loaded:.0f} s; HNSW index + ANALYZE {indexed:.0f} s")


class BenchPipeline:
    """What search.query needs of a pipeline with a text tower: a real-size CLIP text transformer (random
    weights) encodes the text; the search vector is a point near one of the catalog's style centres."""

    embedder_id = "bench/clip-vit-b32-text"
    embedding_dim = DIM
    supports_text = True

    def __init__(self, rng: np.random.Generator):
        import torch
        from transformers import CLIPTextConfig, CLIPTextModelWithProjection

        torch.set_num_threads(1)
        self.torch = torch
        self.model = CLIPTextModelWithProjection(CLIPTextConfig(projection_dim=DIM)).eval()
        self.rng = rng
        self.styles = rng.standard_normal((1000, DIM)).astype(np.float32)

    def embed_text(self, texts):
        ids = [[49406, *[(hash(word) % 49000) + 1 for word in text.split()][:75], 49407] for text in texts]
        width = max(map(len, ids))
        batch = self.torch.tensor([row + [49407] * (width - len(row)) for row in ids])
        with self.torch.inference_mode():
            self.model(input_ids=batch)
        picked = self.styles[self.rng.integers(0, 1000, len(texts))]
        vectors = picked + 0.5 * self.rng.standard_normal(picked.shape).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def timed(function, queries, rounds: int) -> list[float]:
    for text in queries:  # warm caches and plans
        function(text)
    times = []
    for i in range(rounds):
        text = queries[i % len(queries)]
        started = time.perf_counter()
        function(text)
        times.append((time.perf_counter() - started) * 1000)
    return times


def report(label: str, times: list[float]) -> None:
    ordered = sorted(times)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    print(f"{label:<58} p50 {statistics.median(times):6.1f} ms   p95 {p95:6.1f} ms   ({len(times)} queries)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database at the end")
    args = parser.parse_args()
    setup_database(args.products, args.seed)

    from catalog import keyword
    from search import query, selectors

    counts = {text: len(keyword.keyword_ranking(text, limit=100_000)) for text in QUERIES}
    print("matching products per query:", ", ".join(f"{t!r} {c}" for t, c in counts.items()))

    class NoTextTower:
        embedder_id = BenchPipeline.embedder_id

        def embed_text(self, texts):
            raise query.UnsupportedOperation("no text tower")

    query.get_pipeline = NoTextTower
    runs = [
        ("keyword: catalog.keyword.keyword_ranking, k=12", lambda t: keyword.keyword_ranking(t, limit=K)),
        ("keyword: search_by_text, offline profile (hydrated)", lambda t: query.search_by_text(t, k=K)),
    ]
    for label, function in runs:
        report(label, timed(function, QUERIES, args.queries))
    pipeline = BenchPipeline(np.random.default_rng(args.seed))
    report(
        "text tower alone: CLIP ViT-B/32-size text encode",
        timed(lambda t: pipeline.embed_text([t]), QUERIES, args.queries),
    )
    query.get_pipeline = lambda: pipeline
    hybrid = "hybrid: search_by_text with a text tower (RRF, hydrated)"
    report(hybrid, timed(lambda t: query.search_by_text(t, k=K), QUERIES, args.queries))

    class PrecomputedVectors(BenchPipeline):
        """The same search with the text already encoded: the database side of a hybrid query."""

        def __init__(self, rng):
            self.rng, self.styles = (
                rng,
                np.random.default_rng(args.seed).standard_normal((1000, DIM)).astype(np.float32),
            )

        def embed_text(self, texts):
            picked = self.styles[self.rng.integers(0, 1000, len(texts))]
            vectors = picked + 0.5 * self.rng.standard_normal(picked.shape).astype(np.float32)
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    encoded = PrecomputedVectors(np.random.default_rng(args.seed + 1))
    query.get_pipeline = lambda: encoded
    report(
        "hybrid, text already encoded (keyword + HNSW + RRF + hydration)",
        timed(lambda t: query.search_by_text(t, k=K), QUERIES, args.queries),
    )
    space = query.current_space()
    vectors = encoded.embed_text(QUERIES)
    vector_side = iter(list(vectors) * (args.queries // len(QUERIES) + 2))
    report(
        f"  of which the vector side: nearest_products k={query.FUSION_CANDIDATES}",
        timed(
            lambda t: selectors.nearest_products(space, next(vector_side).tolist(), k=query.FUSION_CANDIDATES),
            QUERIES,
            args.queries,
        ),
    )

    if args.drop:
        from django.db import connection

        connection.close()
        connection.settings_dict["NAME"] = os.environ.get("EMBEDDED_PG_DBNAME", "lookalike")
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE "{DB_NAME}"')
        print(f"dropped {DB_NAME}")


if __name__ == "__main__":
    main()
