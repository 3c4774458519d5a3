"""Text search in every profile (issue 13): keyword search in PostgreSQL, hybrid fusion with a text tower, and a
photo refined by words. Products are stored with vectors the test chooses, as the indexer would store them."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from django.core.cache import cache
from django.db import connection
from PIL import Image
from rest_framework.test import APIClient

from catalog import keyword, services
from catalog.models import Product
from catalog.vocabulary import ProductFilters
from search import query
from search.pipeline.registry import get_pipeline, reset_pipeline
from tests.conftest import demo_photo

pytestmark = pytest.mark.django_db

PHOTO = demo_photo("Dress", 0)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (8, 8), (200, 30, 30, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


def _unit(vector) -> list[float]:
    vector = np.asarray(vector, dtype=np.float32)
    return (vector / np.linalg.norm(vector)).tolist()


def _product(space, vector, *, name, photo=PHOTO, **fields):
    """A product with one photo and one garment whose vector we choose."""
    product, _ = services.upsert_product(
        shop=fields.pop("shop", "Test Shop"), external_id=name.lower().replace(" ", "-"), name=name, **fields
    )
    image, _ = services.add_image(product=product, content=photo.read_bytes())
    services.replace_garments(
        image=image,
        space=space,
        garments=[
            services.GarmentData(
                label="garment", score=0.9, box=(0, 0, 10, 10), embedding=_unit(vector), mask_png=b"", cutout_png=_png()
            )
        ],
    )
    return product


@pytest.fixture
def client():
    cache.clear()  # throttle counters
    return APIClient()


@pytest.fixture
def offline_pipeline(settings, no_background_processing):
    """The bundled offline profile: EfficientNet-Lite0, no text tower."""
    settings.LOOKALIKE_PROFILE = "offline"
    for name in ("LOOKALIKE_DETECTOR", "LOOKALIKE_SEGMENTER", "LOOKALIKE_EMBEDDER"):
        setattr(settings, name, "")
    reset_pipeline()
    yield get_pipeline()
    reset_pipeline()


@pytest.fixture
def clip_pipeline(settings, tiny_model_dirs, no_background_processing):
    """Whole-image detector and box segmenter with the tiny CLIP embedder: a text tower, fast."""
    settings.LOOKALIKE_PROFILE = "offline"
    settings.LOOKALIKE_DETECTOR = settings.LOOKALIKE_SEGMENTER = ""
    settings.LOOKALIKE_EMBEDDER = "clip"
    settings.LOOKALIKE_EMBEDDER_MODEL = str(tiny_model_dirs["embedder"])
    reset_pipeline()
    yield get_pipeline()
    reset_pipeline()


@pytest.fixture
def tiny_full_pipeline(settings, tiny_model_dirs, no_background_processing):
    """The full profile (Florence-2 + SAM 2 + CLIP classes) on tiny random-weight models."""
    settings.LOOKALIKE_PROFILE = "full"
    for name in ("LOOKALIKE_DETECTOR", "LOOKALIKE_SEGMENTER", "LOOKALIKE_EMBEDDER"):
        setattr(settings, name, "")
    settings.LOOKALIKE_DETECTOR_MODEL = str(tiny_model_dirs["detector"])
    settings.LOOKALIKE_SEGMENTER_MODEL = str(tiny_model_dirs["segmenter"])
    settings.LOOKALIKE_EMBEDDER_MODEL = str(tiny_model_dirs["embedder"])
    reset_pipeline()
    yield get_pipeline()
    reset_pipeline()


def _space(pipeline):
    return services.ensure_embedding_space(model_id=pipeline.embedder_id, dim=pipeline.embedding_dim)


def _axis(dim, index, tilt=0.0):
    vector = np.zeros(dim)
    vector[index] = 1.0
    vector[(index + 1) % dim] = tilt
    return vector


@pytest.fixture
def keyword_catalog(offline_pipeline):
    space = _space(offline_pipeline)
    dim = offline_pipeline.embedding_dim
    return {
        "satin": _product(
            space, _axis(dim, 0), name="Red Satin Midi Dress", category="Dress", colour="red", sku="RSD-1042-RED"
        ),
        "robe": _product(
            space,
            _axis(dim, 1),
            name="Robe écarlate en crêpe",
            category="Dress",
            colour="écarlate",
            sku="FR-77",
            brand="Maison Été",
            description="Une robe longue, légère et fluide.",
        ),
        "kleid": _product(
            space, _axis(dim, 2), name="Sommerkleid aus Leinen", category="Dress", sku="DE-5", colour="weiß"
        ),
        "jeans": _product(
            space, _axis(dim, 3), name="Blue Denim Jeans", category="Pants", colour="blue", sku="JN-2001", shop="Other"
        ),
        "boots": _product(space, _axis(dim, 4), name="Leather Boots", category="Shoes", colour="brown", sku="LB-9"),
    }


def _names(body_or_matches) -> list[str]:
    if isinstance(body_or_matches, dict):
        return [row["product"]["name"] for row in body_or_matches["results"]]
    return [match.product.name for match in body_or_matches]


class TestKeywordIndex:
    def test_the_database_keeps_the_search_columns_current(self, keyword_catalog):
        """Generated columns and the lexicon trigger: an ORM update is searchable at once, typos included,
        with no Python re-indexing step."""
        boots = keyword_catalog["boots"]
        assert keyword.keyword_ranking("wellington") == []
        Product.objects.filter(pk=boots.pk).update(name="Wellington Rain Boots")
        assert [hit.product_id for hit in keyword.keyword_ranking("wellington")] == [boots.pk]
        assert [hit.product_id for hit in keyword.keyword_ranking("welington rain")] == [boots.pk]

    @pytest.mark.parametrize(
        ("text", "indexes", "bitmap_only"),
        [
            ("dress", ["catalog_product_name_document", "catalog_product_search_document",
                       "catalog_product_name_folded", "catalog_product_sku_folded"], True),
            ("RSD-104", ["catalog_product_search_text_trgm"], True),
            ("sattin", ["catalog_searchword_pkey", "catalog_searchword_trgm"], False),  # the typo's correction
        ],
    )  # fmt: skip
    def test_the_queries_use_the_indexes_of_their_expressions(self, keyword_catalog, text, indexes, bitmap_only):
        """EXPLAIN each statement keyword_ranking runs, sequential scans off: an index whose expression differs
        from the query's by a character would not be used, and the plan would say so. ``bitmap_only`` also turns
        plain index scans off: on a table this small the planner may otherwise walk the primary key in id order
        and filter every row (a full scan in disguise) instead of asking the GIN index; the typo lookup needs
        an ordered (KNN) index scan, so it keeps them."""
        statements = []

        def record(execute, sql, params, many, context):
            statements.append((sql, params))
            return execute(sql, params, many, context)

        with connection.execute_wrapper(record):
            keyword.keyword_ranking(text)
        plans = []
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            if bitmap_only:
                cursor.execute("SET LOCAL enable_indexscan = off")
            for sql, params in statements:
                cursor.execute("EXPLAIN " + sql, params)
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
        plan = "\n".join(plans)
        for index in indexes:
            assert index in plan, plan
        assert "Seq Scan on catalog_product " not in plan, plan

    def test_filters_apply(self, keyword_catalog):
        hits = keyword.keyword_ranking("dress", filters=ProductFilters(category="Shoes"))
        assert hits == []
        hits = keyword.keyword_ranking("denim", filters=ProductFilters(shop="other"))
        assert [hit.product_id for hit in hits] == [keyword_catalog["jeans"].pk]


class TestKeywordSearchOffline:
    """The default profile's embedder has no text tower: text search is keyword search."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("red satin midi dress", "satin"),
            ("sattin dres", "satin"),  # typos
            ("a dress in red satin", "satin"),  # short function words are not required
            ("robe ecarlate", "robe"),  # accents folded
            ("ÉCARLATE CRÊPE", "robe"),  # accents and case in the query
            ("maison ete", "robe"),  # brand
            ("légère fluide", "robe"),  # description
            ("sommerkleid", "kleid"),  # a German name
            ("weiss", "kleid"),  # unaccent folds ß to ss
            ("1042", "satin"),  # SKU part
            ("RSD-104", "satin"),  # SKU fragment
            ("jn-2001", "jeans"),  # SKU, other case
        ],
    )
    def test_finds_by_words(self, client, keyword_catalog, text, expected):
        response = client.get("/api/search/", {"q": text})
        assert response.status_code == 200, response.content
        body = response.json()
        if expected is None:
            assert keyword_catalog["kleid"].name not in _names(body)
            return
        assert _names(body)[0] == keyword_catalog[expected].name, _names(body)
        first = body["results"][0]
        assert first["matched_by"] == ["keyword"] and first["distance"] is None
        assert first["similarity"] == pytest.approx(100 * first["keyword_score"], abs=0.1)
        assert first["image_url"].startswith("http://testserver/media/") and first["garment"]["box"] == [0, 0, 10, 10]

    def test_a_sku_number_outranks_longer_numbers_containing_it(self, keyword_catalog):
        """ "1042" is a part of RSD-1042-RED (a word match) but only a substring of XY-10420 (made first, so a
        tie would put it first)."""
        older = keyword_catalog["boots"]
        Product.objects.filter(pk=older.pk).update(sku="XY-10420")
        hits = keyword.keyword_ranking("1042")
        assert [hit.product_id for hit in hits] == [keyword_catalog["satin"].pk, older.pk]
        assert hits[0].score > hits[1].score

    def test_exact_sku_scores_highest(self, keyword_catalog):
        hits = keyword.keyword_ranking("RSD-1042-RED")
        assert hits[0].product_id == keyword_catalog["satin"].pk and hits[0].score == 1.0

    def test_excluded_word(self, client, keyword_catalog):
        names = _names(client.get("/api/search/", {"q": "dress -satin"}).json())
        assert keyword_catalog["satin"].name not in names
        names = _names(client.get("/api/search/", {"q": "blue not denim"}).json())
        assert keyword_catalog["jeans"].name not in names

    def test_filters_and_grouping(self, client, keyword_catalog):
        satin = keyword_catalog["satin"]
        image, _ = services.add_image(product=satin, content=demo_photo("Dress", 1).read_bytes())
        services.replace_garments(
            image=image,
            space=_space(get_pipeline()),
            garments=[
                services.GarmentData(
                    label="dress",
                    score=0.9,
                    box=(0, 0, 5, 5),
                    embedding=_unit(np.ones(get_pipeline().embedding_dim)),
                    mask_png=b"",
                    cutout_png=_png(),
                )
            ],
        )
        body = client.get("/api/search/", {"q": "dress", "k": 10}).json()
        ids = [row["product"]["id"] for row in body["results"]]
        assert len(ids) == len(set(ids)) and satin.pk in ids, "each product once"
        body = client.get("/api/search/", {"q": "dress", "category": "Shoes"}).json()
        assert body["results"] == []
        assert body["query"] == {"type": "text", "text": "dress"}

    @pytest.mark.parametrize(
        "text",
        [
            "!!!",
            "?*&^%$#@",
            "' OR 1=1; DROP TABLE catalog_product; --",
            '"unclosed',
            "a & | ! ( ) : * <-> b",
            "\\",
            "100%_",
            "nul\x00byte",
            "x" * 300,
            "zzzzzzzz qqqqqqq",
        ],
        ids=[
            "bangs",
            "punctuation",
            "sql",
            "quote",
            "tsquery-ops",
            "backslash",
            "like-wildcards",
            "nul",
            "300",
            "none",
        ],
    )
    def test_hostile_queries_give_a_sensible_empty_result(self, client, keyword_catalog, text):
        response = client.get("/api/search/", {"q": text})
        assert response.status_code in (200, 400), response.content
        if response.status_code == 200:
            names = _names(response.json())
            assert keyword_catalog["jeans"].name not in names
        else:
            assert response.json()["error"]["message"]
        assert Product.objects.count() == 5

    def test_sql_like_text_is_only_words(self, client, keyword_catalog):
        body = client.get("/api/search/", {"q": "boots' OR '1'='1"}).json()
        assert _names(body) == ["Leather Boots"]

    @pytest.mark.parametrize(("text", "status"), [("", 400), ("   ", 400), ("x" * 301, 400)])
    def test_empty_and_too_long_are_a_clear_400(self, client, keyword_catalog, text, status):
        response = client.get("/api/search/", {"q": text})
        assert response.status_code == status
        assert response.json()["error"]["code"]

    def test_page_answers_a_text_search_with_keyword_cards(self, client, keyword_catalog):
        html = client.get("/", {"q": "robe ecarlate"}).content.decode()
        results = html.split('id="results"')[1].split("</section>")[0]
        assert "Robe écarlate en crêpe" in results and results.count('class="card"') == 1
        assert 'id="search-error" class="alert alert--error" role="alert" hidden' in html

    def test_page_says_what_the_box_searches(self, client, keyword_catalog):
        html = client.get("/").content.decode()
        assert "Searches product names, descriptions, colours, brands and SKUs" in html
        assert "what the photos show" not in html, "no promise of photo matching without a text tower"
        assert 'data-text-scope="keyword"' in html


class TestHybrid:
    def test_fusion_keeps_keyword_and_vector_hits_exact_sku_first(self, client, clip_pipeline):
        space = _space(clip_pipeline)
        dim = clip_pipeline.embedding_dim
        text_vector = clip_pipeline.embed_text(["red satin midi dress"])[0]
        rng = np.random.default_rng(7)
        # Its photo matches the words, its name does not: only the vector ranking can find it.
        photo_match = _product(space, text_vector, name="Evening Gown", category="Gowns", sku="EG-1")
        # Its name matches, its photo points elsewhere: only the keyword ranking can find it.
        name_match = _product(space, -text_vector, name="Red Satin Midi Dress", category="Dress", sku="RS-2")
        for index in range(6):
            _product(space, rng.normal(size=dim), name=f"Item {index}", category="Misc", sku=f"IT-{index}")

        body = client.get("/api/search/", {"q": "red satin midi dress", "k": 4}).json()
        rows = {row["product"]["id"]: row for row in body["results"]}
        assert body["results"][0]["product"]["id"] == name_match.pk, "an exact name hit comes first"
        assert rows[name_match.pk]["matched_by"] == ["keyword", "vector"]
        assert rows[photo_match.pk]["matched_by"] == ["vector"] and rows[photo_match.pk]["similarity"] > 99
        assert rows[name_match.pk]["distance"] is not None, "keyword hits show their real photo similarity"
        keyword_only = query.keyword.keyword_ranking("red satin midi dress")
        assert [hit.product_id for hit in keyword_only] == [name_match.pk], "keyword alone misses the gown"

        body = client.get("/api/search/", {"q": "RS-2", "k": 3}).json()
        assert body["results"][0]["product"]["id"] == name_match.pk, "an exact SKU outranks the vector side"

    def test_the_text_tower_runs_beside_the_keyword_sql(self, monkeypatch, no_background_processing):
        """Each side waits (at most 5 s) for the other to have started: both see it only when they overlap, as a
        hybrid query must (it then waits for the slower of the two, not their sum)."""
        space = services.ensure_embedding_space(model_id="test/concurrent-text-tower", dim=4)
        encoding, ranking = threading.Event(), threading.Event()
        seen = {}

        class Tower:
            embedder_id = space.model_id
            supports_text = True

            def embed_text(self, texts):
                encoding.set()
                seen["tower saw the keyword query"] = ranking.wait(5)
                seen["tower thread"] = threading.get_ident()
                return np.tile(np.asarray(_unit([1, 0, 0, 0]), dtype=np.float32), (len(texts), 1))

        keyword_ranking = keyword.keyword_ranking

        def ranking_beside_the_tower(*args, **kwargs):
            ranking.set()
            seen["keyword query saw the tower"] = encoding.wait(5)
            return keyword_ranking(*args, **kwargs)

        tower = Tower()
        monkeypatch.setattr(query, "get_pipeline", lambda: tower)
        monkeypatch.setattr(query.keyword, "keyword_ranking", ranking_beside_the_tower)
        _product(space, [1, 0, 0, 0], name="Red Dress")
        results = query.search_by_text("red dress", k=3)
        assert [match.product.name for match in results] == ["Red Dress"]
        assert results[0].matched_by == ("keyword", "vector")
        assert seen["tower saw the keyword query"] and seen["keyword query saw the tower"]
        assert seen["tower thread"] != threading.get_ident()

    def test_page_says_the_box_also_searches_photos(self, client, clip_pipeline):
        html = client.get("/").content.decode()
        assert "and what the photos show" in html and 'data-text-scope="hybrid"' in html

    def test_fusion_order(self):
        fused = query.reciprocal_rank_fusion({"keyword": [1, 2, 3], "vector": [3, 4, 1]})
        assert [pid for pid, _ in fused] == [1, 3, 2, 4]
        weighted = query.reciprocal_rank_fusion({"keyword": [1, 2], "vector": [2, 1]}, weights={"vector": 2.0})
        assert weighted[0][0] == 2

    def test_full_profile_on_tiny_models(self, client, tiny_full_pipeline):
        space = _space(tiny_full_pipeline)
        text_vector = tiny_full_pipeline.embed_text(["linen summer dress"])[0]
        gown = _product(space, text_vector, name="Plain Gown", category="Gowns")
        _product(space, -text_vector, name="Linen Summer Dress", category="Dress")
        body = client.get("/api/search/", {"q": "linen summer dress", "k": 2}).json()
        assert {tuple(row["matched_by"]) for row in body["results"]} == {("vector",), ("keyword", "vector")}
        assert gown.pk in [row["product"]["id"] for row in body["results"]]


def _post_photo(client, **fields):
    upload = io.BytesIO(PHOTO.read_bytes())
    upload.name = "query.jpg"
    return client.post("/api/search/", {"image": upload, **fields}, format="multipart")


def _photo_vector(pipeline) -> np.ndarray:
    from core.photos import load_image

    return pipeline.process_image(load_image(PHOTO.read_bytes(), max_side=pipeline.max_side))[0].embedding


class TestPhotoAndWords:
    def test_with_a_text_tower_words_move_the_vector(self, client, clip_pipeline):
        """Pairs of products as far from the photo, one towards a word's vector and one away from it: the
        words decide which of the pair comes first."""
        space = _space(clip_pipeline)
        photo = np.asarray(_unit(_photo_vector(clip_pipeline)))
        red, denim = (np.asarray(_unit(v)) for v in clip_pipeline.embed_text(["red", "denim"]))

        def across(direction):  # the part of a word's vector at right angles to the photo
            side = direction - (direction @ photo) * photo
            return side / np.linalg.norm(side)

        redder = _product(space, photo + 0.3 * across(red), name="Item Redder")
        less_red = _product(space, photo - 0.3 * across(red), name="Item Less Red")
        more_denim = _product(space, photo + 0.3 * across(denim), name="Item More Denim")
        less_denim = _product(space, photo - 0.3 * across(denim), name="Item Less Denim")

        def order(**fields):
            body = _post_photo(client, k=4, **fields).json()
            return [row["product"]["id"] for row in body["results"]], body["query"]

        plain, info = order()
        assert len(plain) == 4 and "refine" not in info
        refined, info = order(q="red", q_weight="1.0")
        assert refined.index(redder.pk) < refined.index(less_red.pk)
        assert info["refine"] == {"text": "red", "not_text": "", "mode": "vector"}
        refined, _ = order(q="red", q_weight="-1.0")
        assert refined.index(less_red.pk) < refined.index(redder.pk), "a negative weight pushes away"
        refined, info = order(q="like this, not denim", not_weight="1.0")
        assert refined.index(less_denim.pk) < refined.index(more_denim.pk)
        assert info["refine"] == {"text": "like this", "not_text": "denim", "mode": "vector"}
        refined, _ = order(not_q="denim", q="denim", q_weight="1.0", not_weight="2.0")
        assert refined.index(less_denim.pk) < refined.index(more_denim.pk), "not_q outweighs q here"

    def test_without_a_text_tower_words_boost_and_filter_the_photo_results(self, client, offline_pipeline):
        space = _space(offline_pipeline)
        photo = np.asarray(_photo_vector(offline_pipeline))
        rng = np.random.default_rng(3)
        dim = offline_pipeline.embedding_dim
        nearest = _product(space, photo, name="Black Dress", colour="black")
        red = _product(space, photo + 0.3 * rng.normal(size=dim) / np.sqrt(dim), name="Dress", colour="red")
        denim = _product(space, photo + 0.2 * rng.normal(size=dim) / np.sqrt(dim), name="Denim Dress")
        far = _product(space, -photo, name="Red Boots", colour="red")

        plain = _post_photo(client, k=4).json()
        plain_ids = [row["product"]["id"] for row in plain["results"]]
        assert plain_ids[0] == nearest.pk and plain_ids[-1] == far.pk

        body = _post_photo(client, k=4, q="in red, not denim").json()
        ids = [row["product"]["id"] for row in body["results"]]
        assert body["query"]["refine"] == {"text": "in red", "not_text": "denim", "mode": "keyword"}
        assert ids[:2] == [red.pk, far.pk], "words boost; photo order within the boosted"
        assert denim.pk not in ids and nearest.pk in ids
        assert body["results"][0]["distance"] is not None and body["results"][0]["matched_by"] == ["vector", "keyword"]

    def test_refinement_validation(self, client, offline_pipeline):
        assert _post_photo(client, q="x" * 301).status_code == 400
        assert _post_photo(client, q_weight="9").status_code == 400
        assert _post_photo(client, q="!!!").status_code == 200


def test_negations_are_split():
    assert query.split_negations("like this in red, not denim") == ("like this in red", "denim")
    assert query.split_negations("dress -denim -wool") == ("dress", "denim wool")
    assert query.split_negations("t-shirt without print and blue") == ("t-shirt and blue", "print")
    assert query.split_negations("nothing to see") == ("nothing to see", "")


def test_the_openapi_schema_documents_the_text_parameters():
    """GET /api/search/ documents ``q`` and the filters; POST documents the photo's refinement: ``q``,
    ``q_weight`` (negative allowed), ``not_q`` and ``not_weight``, with their bounds."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    search = schema["paths"]["/api/search/"]
    text_parameters = {parameter["name"]: parameter for parameter in search["get"]["parameters"]}
    assert {"q", "k", "category", "shop", "brand", "min_price", "max_price"} <= set(text_parameters)
    assert text_parameters["q"]["required"] and "red satin midi dress" in text_parameters["q"]["description"]
    form = search["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
    fields = schema["components"]["schemas"][form]["properties"]
    assert {"image", "q", "q_weight", "not_q", "not_weight"} <= set(fields)
    assert fields["q_weight"]["type"] == "number" and fields["q_weight"]["minimum"] < 0 < fields["q_weight"]["maximum"]
    assert fields["not_weight"]["minimum"] == 0 and fields["q"]["description"] and fields["not_q"]["description"]
