"""Text search benchmark (issue 13): keyword and hybrid query latency on the demo catalog and on a generated
100k-product catalog, through the application's own code.

Run from the repository root (uses the configured database server, in a database of its own, kept for reuse:
``bench_text_100k`` for 100,000 generated products, ``bench_text_demo`` for the demo catalog; ``--drop``
removes it afterwards):

    OMP_NUM_THREADS=1 nice -n 10 python bench/text_search.py --products 100000 --queries 300
    OMP_NUM_THREADS=1 nice -n 10 python bench/text_search.py --catalog demo --queries 300

The generated catalog: products whose names, colours, materials, categories and descriptions are drawn from
small multilingual word lists (English, French, German, Spanish, Italian; accents included), 300 brands, 40
shops, SKUs like ``AB-12345-RED``. The demo catalog: the 102 products of catalog/demo/products.json (their
real names and descriptions). Either way each product has one photo row and one 512-d garment vector, random
and clustered around 1,000 styles (as in bench/search.py): no real embedder made them. The space gets the
application's half-precision HNSW index, built with ``maintenance_work_mem`` 2 GB.

It times, warm, each query run through the application's own code:
- keyword: ``catalog.keyword.keyword_ranking`` (k=12) and ``search.query.search_by_text`` in the offline
  profile (keyword ranking + hydrated result rows, what GET /api/search/?q= runs), all queries and the common
  single words alone;
- the text tower alone: the application's ``ClipEmbedder.embed_texts`` over a CLIPModel built from
  ``CLIPConfig()`` (the real ViT-B/32 dimensions: a 12-layer, 512-wide text transformer, 63M parameters) with
  random weights, in PyTorch and in ONNX Runtime (``OnnxClipText``), one thread. No FashionCLIP weights can be
  downloaded here, so the encode time is real and the vectors are not: queries are tokenised one token per 6
  letters of each word (CLIP's BPE gives common words one token), and the vector searched is a point near a
  style centre of the catalog, fixed per text;
- hybrid: ``search.query.search_by_text`` with that text tower (ONNX): the tower in a thread beside the keyword
  SQL, text-vector HNSW search, reciprocal rank fusion, hydration; "new text" empties the pipeline's text cache
  before each query, "repeated text" does not (the cache answers). Then the same with the text already encoded
  (the database side alone) and the vector side alone.

The machine is shared (2 cores, other people's test runs): each line is timed ``--repeats`` times (3) and the
run with the lowest median printed, with the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

DB_NAME = os.environ.get("BENCH_TEXT_DB", "")  # default: bench_text_<size>, e.g. bench_text_100k
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


DEMO_QUERIES = [
    "dress", "shirt", "blazer", "t-shirt", "hoodie", "black", "shoes", "long sleeve", "skirt", "blouse no. 3",
    "outwear jacket", "polo", "sattin dres", "hodie", "demo item", "photo of a blazer", "shorts", "hat", "top",
    "undershirt", "pants", "red satin midi dress", "clothing dataset", "Lookalike Demo", "body",
]  # fmt: skip
COMMON_WORDS = ["dress", "black", "shirt"]


def demo_rows():
    """The demo catalog's products as catalog rows (no SKU or colour: the file has none)."""
    import json

    products = json.loads((ROOT / "catalog" / "demo" / "products.json").read_text())
    for i, product in enumerate(products):
        yield (i, product["name"], product["description"], product["brand"], product["shop"], "", "",
               product["category"])  # fmt: skip


def database_name(products: int, catalog: str = "generated") -> str:
    """bench_text_100k for 100,000 generated products, bench_text_demo for the demo catalog (BENCH_TEXT_DB
    overrides): kept between runs for reuse."""
    if catalog == "demo":
        return DB_NAME or "bench_text_demo"
    size = f"{products // 1000}k" if products % 1000 == 0 else str(products)
    return DB_NAME or f"bench_text_{size}"


def setup_database(products: int, seed: int, catalog: str = "generated") -> None:
    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    name = database_name(products, catalog)
    if catalog == "demo":
        products = sum(1 for _ in demo_rows())
    connection.ensure_connection()  # the embedded server starts on first connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        exists = cursor.fetchone() is not None
        if not exists:
            cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    connection.settings_dict["NAME"] = name
    call_command("migrate", verbosity=0)
    from catalog.models import Product

    if Product.objects.count() == products:
        print(f"reusing {products} products in {name}")
        return
    load(products, seed, catalog)


def load(n: int, seed: int, catalog: str = "generated") -> None:
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
            rows = demo_rows() if catalog == "demo" else catalog_rows(rng, n)
            for i, name, description, brand, shop, sku, colour, category in rows:
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
    with connection.cursor() as cursor:
        # The graph of 100k 512-d vectors fits in 2 GB: with the default 64 MB the build spills and took 23 min.
        cursor.execute("SET maintenance_work_mem = '2GB'")
        cursor.execute("SET max_parallel_maintenance_workers = 1")
    services.ensure_embedding_space(model_id=space.model_id, dim=DIM)  # builds the space's HNSW index
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("CHECKPOINT")
    indexed = time.perf_counter() - started
    print(f"loaded {Product.objects.count()} products in {loaded:.0f} s; HNSW index + ANALYZE {indexed:.0f} s")


class WordTokens:
    """What ClipEmbedder needs of a CLIPProcessor for text: ids (one per 6 letters of each word, as CLIP's BPE
    gives common words one token), start and end tokens, padding, truncation, attention mask."""

    def __call__(self, *, text, return_tensors="pt", padding=True, truncation=True, max_length=77):
        import torch

        rows = []
        for line in text:
            ids = [zlib.crc32(f"{word}:{part}".encode()) % 49000 + 1 for word in line.split()
                   for part in range(max(1, -(-len(word) // 6)))]  # fmt: skip
            rows.append([49406, *ids[: max_length - 2], 49407])
        width = max(map(len, rows))
        ids = torch.tensor([row + [49407] * (width - len(row)) for row in rows])
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
        return {"input_ids": ids, "attention_mask": mask}


def real_size_text_tower(runtime: str, cache_dir: Path):
    """The application's ClipEmbedder over a random-weight CLIPModel of ViT-B/32's dimensions (``CLIPConfig()``):
    the text tower in PyTorch or, exported once into ``cache_dir``, in ONNX Runtime. One thread."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    from search.pipeline.embedders import ClipEmbedder
    from search.pipeline.onnx_runtime import OnnxClipText

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig()).eval()
    session = OnnxClipText.load(model, cache_dir, threads=1) if runtime == "onnx" else None
    return ClipEmbedder(model, WordTokens(), model_id="bench/clip-vit-b32-text", text_session=session)


class BenchPipeline:
    """What search.query needs of a pipeline with a text tower, with the pipeline's own text cache: the real-size
    tower encodes each new text (its time is real); the vector returned is a point near one of the catalog's
    style centres, fixed per text (random vectors would be no nearer to any product than to another)."""

    embedder_id = "bench/clip-vit-b32-text"
    embedding_dim = DIM
    supports_text = True

    def __init__(self, embedder, seed: int):
        from search.pipeline.runner import TextVectorCache

        self.embedder = embedder
        self.text_cache = TextVectorCache()
        self.styles = np.random.default_rng(seed).standard_normal((1000, DIM)).astype(np.float32)

    def near_a_style(self, text: str) -> np.ndarray:
        rng = np.random.default_rng(zlib.crc32(text.encode()))
        vector = self.styles[rng.integers(0, 1000)] + 0.5 * rng.standard_normal(DIM).astype(np.float32)
        return vector / np.linalg.norm(vector)

    def encode(self, texts):
        if self.embedder is not None:
            self.embedder.embed_texts(texts)
        return np.stack([self.near_a_style(text) for text in texts])

    def embed_text(self, texts):
        return self.text_cache.vectors(texts, self.encode)


REPEATS = 3  # each line is timed this many times and the run with the lowest median kept (--repeats)


def timed(function, queries, rounds: int, before=None) -> list[float]:
    """Per-query milliseconds, warm: a pass over the queries first, then ``rounds`` timed queries; repeated
    ``REPEATS`` times, the run with the lowest median returned (the machine is shared: the other runs are the
    ones someone else's job slowed down)."""
    for text in queries:  # warm caches and plans
        function(text)
    runs = []
    for _ in range(REPEATS):
        times = []
        for i in range(rounds):
            text = queries[i % len(queries)]
            if before is not None:
                before()
            started = time.perf_counter()
            function(text)
            times.append((time.perf_counter() - started) * 1000)
        runs.append(times)
    return min(runs, key=statistics.median)


def report(label: str, times: list[float]) -> None:
    ordered = sorted(times)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    print(f"{label:<64} p50 {statistics.median(times):6.1f} ms   p95 {p95:6.1f} ms   ({len(times)} queries)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", choices=["generated", "demo"], default="generated")
    parser.add_argument("--products", type=int, default=100_000, help="generated catalog size")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database at the end")
    parser.add_argument("--setup-only", action="store_true", help="create and load the database, then stop")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per line, the best median kept")
    args = parser.parse_args()
    global REPEATS
    REPEATS = max(1, args.repeats)
    setup_database(args.products, args.seed, args.catalog)
    if args.setup_only:
        return

    from django.db import connection

    from catalog import keyword
    from search import query, selectors

    queries = DEMO_QUERIES if args.catalog == "demo" else QUERIES
    counts = {text: len(keyword.keyword_ranking(text, limit=100_000)) for text in queries}
    print("matching products per query:", ", ".join(f"{t!r} {c}" for t, c in counts.items()))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM catalog_product")
        print(f"catalog: {cursor.fetchone()[0]} products ({args.catalog}); load average {os.getloadavg()}")

    offline = BenchPipeline(None, args.seed)
    offline.supports_text = False
    query.get_pipeline = lambda: offline
    report("keyword: catalog.keyword.keyword_ranking, k=12", timed(lambda t: keyword.keyword_ranking(t, limit=K),
                                                                   queries, args.queries))  # fmt: skip
    report("keyword: search_by_text, offline profile (hydrated)", timed(lambda t: query.search_by_text(t, k=K),
                                                                        queries, args.queries))  # fmt: skip
    report(f"keyword: search_by_text, common words {'/'.join(COMMON_WORDS)}",
           timed(lambda t: query.search_by_text(t, k=K), COMMON_WORDS, args.queries))  # fmt: skip

    cache_dir = Path(os.environ.get("BENCH_MODEL_CACHE", ROOT / ".models" / "cache"))
    towers = {runtime: real_size_text_tower(runtime, cache_dir) for runtime in ("torch", "onnx")}
    for runtime, tower in towers.items():
        report(f"text tower alone: ViT-B/32-size CLIP text, {runtime}, 1 thread",
               timed(lambda t, tower=tower: tower.embed_texts([t]), queries, args.queries))  # fmt: skip

    for runtime in ("onnx", "torch"):
        hybrid = BenchPipeline(towers[runtime], args.seed)
        query.get_pipeline = lambda hybrid=hybrid: hybrid
        report(f"hybrid: search_by_text, {runtime} tower, new text (cache emptied)",
               timed(lambda t: query.search_by_text(t, k=K), queries, args.queries,
                     before=hybrid.text_cache.clear))  # fmt: skip
    hybrid = BenchPipeline(towers["onnx"], args.seed)
    query.get_pipeline = lambda: hybrid
    report("hybrid: search_by_text, repeated text (cache hit)",
           timed(lambda t: query.search_by_text(t, k=K), queries, args.queries))  # fmt: skip
    encoded = BenchPipeline(None, args.seed)
    query.get_pipeline = lambda: encoded
    report("hybrid, text already encoded (keyword + HNSW + RRF + hydration)",
           timed(lambda t: query.search_by_text(t, k=K), queries, args.queries,
                 before=encoded.text_cache.clear))  # fmt: skip
    space = query.current_space()
    report(f"  of which the vector side: nearest_products k={query.FUSION_CANDIDATES}",
           timed(lambda t: selectors.nearest_products(space, encoded.near_a_style(t).tolist(),
                                                      k=query.FUSION_CANDIDATES), queries, args.queries))  # fmt: skip
    print(f"load average after: {os.getloadavg()}")

    if args.drop:
        connection.close()
        connection.settings_dict["NAME"] = os.environ.get("EMBEDDED_PG_DBNAME", "lookalike")
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE "{database_name(args.products, args.catalog)}"')
        print(f"dropped {database_name(args.products, args.catalog)}")


if __name__ == "__main__":
    main()
