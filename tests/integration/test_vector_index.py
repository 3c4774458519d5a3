"""pgvector: cosine ORDER BY ... LIMIT k is correct and served by the space's HNSW index."""

from __future__ import annotations

import numpy as np
import pytest
from django.conf import settings
from django.db import connection, transaction

from catalog import services
from catalog.models import Garment, Product, ProductImage
from search import selectors

# One worker builds the module-wide HNSW table once (README's test command passes --dist loadgroup).
pytestmark = [pytest.mark.django_db, pytest.mark.xdist_group("vector-index")]

DIM = 64
ROWS = 12000
PRODUCTS = 200


def clustered_vectors(rng, n, dim, clusters=40):
    centres = rng.normal(size=(clusters, dim))
    labels = rng.integers(0, clusters, size=n)
    vectors = centres[labels] + 0.35 * rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def filled_space(django_db_setup, django_db_blocker):
    """A committed table large enough for the planner to prefer HNSW at the production ef_search.

    Built once per module (the HNSW build is the slow part); each test still runs in its own rolled-back
    transaction, and the rows are deleted afterwards so other modules start from an empty catalog.
    """
    rng = np.random.default_rng(7)
    with django_db_blocker.unblock():
        space = services.ensure_embedding_space(model_id="clustered-test", dim=DIM)
        products = Product.objects.bulk_create(
            Product(
                name=f"p{i}",
                external_id=str(i),
                category="Dress" if i % 100 == 0 else "Other",
                price=i,
                currency="EUR",
            )
            for i in range(PRODUCTS)
        )
        images = ProductImage.objects.bulk_create(
            ProductImage(product=product, sha256=f"{product.pk:064d}", file="x.jpg", width=1, height=1)
            for product in products
        )
        vectors = clustered_vectors(rng, ROWS, DIM)
        garments = Garment.objects.bulk_create(
            (
                Garment(
                    image=images[i % PRODUCTS],
                    space=space,
                    label="g",
                    box_x0=0,
                    box_y0=0,
                    box_x1=1,
                    box_y1=1,
                    embedding=vectors[i],
                )
                for i in range(ROWS)
            ),
            batch_size=2000,
        )
        with connection.cursor() as cursor:
            for table in ("catalog_garment", "catalog_product", "catalog_productimage"):
                cursor.execute(f"ANALYZE {table}")
        ids = np.array([g.pk for g in garments])
        product_of = np.array([images[i % PRODUCTS].product_id for i in range(ROWS)])
        yield space, vectors, ids, product_of, rng
        Garment.objects.filter(space=space).delete()
        Product.objects.filter(pk__in=[p.pk for p in products]).delete()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP INDEX IF EXISTS {space.index_name}")
        space.delete()


def explain(queryset) -> str:
    """The plan under the production scan settings (SET LOCAL lasts until the test's transaction ends)."""
    sql, params = queryset.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL hnsw.ef_search = {int(settings.HNSW_EF_SEARCH)}")
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_knn_order_matches_exact_search_and_uses_hnsw(filled_space):
    space, vectors, ids, _, rng = filled_space
    query = vectors[123] + 0.05 * rng.normal(size=DIM).astype(np.float32)
    exact = ids[np.argsort(1 - vectors @ (query / np.linalg.norm(query)), kind="stable")[:10]]

    hits = selectors.nearest_garments(space, query.tolist(), limit=10)
    assert [hit.garment_id for hit in hits] == exact.tolist()
    distances = [hit.distance for hit in hits]
    assert distances == sorted(distances)

    plan = explain(selectors.nearest_garments_queryset(space, query.tolist())[:10])
    assert space.index_name in plan, plan


def test_filtered_query_uses_hnsw(filled_space):
    space, vectors, *_ = filled_space
    half = selectors.ProductFilters(max_price=PRODUCTS // 2)
    plan = explain(selectors.nearest_garments_queryset(space, vectors[0].tolist(), filters=half)[:10])
    assert space.index_name in plan, plan
    hits = selectors.nearest_garments(space, vectors[0].tolist(), limit=10, filters=half)
    cheap = set(Product.objects.filter(price__lte=PRODUCTS // 2).values_list("pk", flat=True))
    assert len(hits) == 10 and {hit.product_id for hit in hits} <= cheap


def test_very_selective_filter_still_returns_k(filled_space):
    """1% of products match: iterative index scans (or the planner's exact plan) must still fill k."""
    space, vectors, *_ = filled_space
    filters = selectors.ProductFilters(category="Dress")
    dress_products = set(Product.objects.filter(category="Dress").values_list("pk", flat=True))
    assert len(dress_products) == PRODUCTS // 100
    hits = selectors.nearest_garments(space, vectors[0].tolist(), limit=10, filters=filters)
    assert len(hits) == 10
    assert {hit.product_id for hit in hits} <= dress_products


def test_nearest_products_are_distinct_and_in_distance_order(filled_space):
    space, vectors, ids, product_of, _ = filled_space
    query = vectors[5]
    results = selectors.nearest_products(space, query.tolist(), k=12)
    assert len({hit.product_id for hit in results}) == 12
    assert [hit.distance for hit in results] == sorted(hit.distance for hit in results)
    # Each product's best garment is its exact closest one.
    distances = 1 - vectors @ query
    for hit in results[:5]:
        own = distances[product_of == hit.product_id]
        assert hit.distance == pytest.approx(float(own.min()), abs=1e-5)


def test_query_vector_of_wrong_dimension_is_refused(filled_space):
    space, *_ = filled_space
    with pytest.raises(ValueError, match="dimensions"):
        selectors.nearest_garments(space, [0.1] * (DIM + 1), limit=5)


def index_definition(space) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [space.index_name])
        row = cursor.fetchone()
    return row[0] if row else ""


def test_index_holds_half_precision_but_reported_distances_are_exact(filled_space):
    """The index orders by halfvec (half the memory); scores and final order come from full precision."""
    space, vectors, ids, _, rng = filled_space
    definition = index_definition(space)
    assert f"::halfvec({DIM})" in definition and "halfvec_cosine_ops" in definition, definition
    query = vectors[77] + 0.2 * rng.normal(size=DIM).astype(np.float32)
    exact = 1 - (vectors @ query) / np.linalg.norm(query)
    position = {garment_id: i for i, garment_id in enumerate(ids)}
    for hit in selectors.nearest_garments(space, query.tolist(), limit=40):
        # Half-precision distances are off by ~1e-5 here; full precision agrees with numpy to ~1e-7.
        assert hit.distance == pytest.approx(float(exact[position[hit.garment_id]]), abs=2e-6)


def test_migration_rebuilds_existing_space_indexes_over_halfvec(filled_space):
    from django.core.management import call_command
    from django.test import override_settings

    from tests.conftest import SMALL_HNSW

    space, *_ = filled_space
    with override_settings(**SMALL_HNSW):  # what is checked is the index's type, not its recall
        call_command("migrate", "catalog", "0001", verbosity=0)
        assert "vector_cosine_ops" in index_definition(space) and "halfvec" not in index_definition(space)
        call_command("migrate", "catalog", verbosity=0)
    assert "halfvec_cosine_ops" in index_definition(space)
    hits = selectors.nearest_garments(space, filled_space[1][3].tolist(), limit=1)
    assert hits[0].garment_id == filled_space[2][3]
