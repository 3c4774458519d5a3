"""manage.py evaluate on a few real CC0 photos: the product's query path in an index apart from the live one.

The offline profile with its model-free detector and segmenter (whole photo) keeps each run to seconds;
the stages are the registry's, so a U2-Net detector or any other would be timed and queried the same way.
"""

from __future__ import annotations

import json
import shutil

import pytest
from django.core.management import CommandError, call_command

from catalog.models import EmbeddingSpace, Garment, Product
from search.evaluation.index import leftover_schemas
from tests.conftest import demo_photo

pytestmark = pytest.mark.django_db

CATEGORIES = ("Dress", "Shoes", "Hat")


@pytest.fixture
def fast_offline(settings):
    settings.LOOKALIKE_PROFILE = "offline"
    settings.LOOKALIKE_DETECTOR = "whole-image"
    settings.LOOKALIKE_SEGMENTER = "box"


@pytest.fixture
def labelled_folder(tmp_path):
    root = tmp_path / "labelled"
    for category in CATEGORIES:
        (root / category).mkdir(parents=True)
        for index in range(3):
            shutil.copy(demo_photo(category, index), root / category / f"{index}.jpg")
    (root / "Hat" / "broken.jpg").write_bytes(b"\xff\xd8 this is not really a JPEG")
    return root


def _run(tmp_path, *args) -> dict:
    out = tmp_path / "out"
    call_command(
        "evaluate", *args, "--json", str(out / "e.json"), "--html", str(out / "e.html"), "--no-progress", "--bootstrap",
        "200",
    )  # fmt: skip
    return json.loads((out / "e.json").read_text())


def test_folder_evaluation_compares_ef_search_values_and_leaves_the_live_catalog_alone(
    fast_offline, labelled_folder, tmp_path
):
    live_space = EmbeddingSpace.objects.create(model_id="live-model", dim=3)
    result = _run(tmp_path, "--folder", str(labelled_folder), "--ef-search", "40,200", "--examples", "9")

    assert [c["ef_search"] for c in result["configurations"]] == [40, 200]
    assert result["photos"] == 10 and result["categories"] == list(sorted(CATEGORIES))
    assert [s["photo"] for s in result["skipped"]] == ["Hat/broken.jpg"]
    assert "not" in result["skipped"][0]["reason"].lower()
    for configuration in result["configurations"]:
        overall = configuration["hnsw"]["overall"]
        assert overall["queries"] == 9
        assert set(configuration["hnsw"]["categories"]) == set(CATEGORIES)
        for name in ("p@1", "p@5", "p@10", "p@20", "r@1", "r@5", "r@10", "r@20", "ap", "rr"):
            value = overall["metrics"][name]
            assert 0.0 <= value["low"] <= value["mean"] <= value["high"] <= 1.0
        # Each category holds two other products: recall@20 finds them all, so precision@20 is 2/20.
        assert overall["metrics"]["r@20"]["mean"] == 1.0
        assert overall["metrics"]["p@20"]["mean"] == pytest.approx(0.1)
        for stage in ("decode", "detect", "segment", "cutout", "embed", "search", "exact_search", "total"):
            assert configuration["latency_ms"][stage]["n"] > 0 and configuration["latency_ms"][stage]["p50"] >= 0
        # Leave-one-out: a query never finds its own photo; every query is shown (--examples 9 > 3 per category).
        assert len(configuration["examples"]) == 9
        for example in configuration["examples"]:
            assert example["query"] not in [r["photo"] for r in example["results"]]
            assert len(example["results"]) == 5
            for r in example["results"]:
                assert r["correct"] == (r["category"] == example["category"])
        assert sum(sum(row.values()) for row in configuration["confusion"].values()) == 9

    # Nothing of the evaluation reached the live tables, and its schema is gone.
    assert list(EmbeddingSpace.objects.values_list("model_id", flat=True)) == [live_space.model_id]
    assert not Product.objects.exists() and not Garment.objects.exists()
    assert leftover_schemas() == []
    html = (tmp_path / "out" / "e.html").read_text()
    assert 'id="category-bars"' in html and 'id="precision-curve"' in html and "data:image/jpeg;base64," in html
    assert "http://" not in html and "https://" not in html  # self-contained: no CDN, no remote asset


def test_exact_search_and_hnsw_agree_on_a_small_set(fast_offline, labelled_folder, tmp_path):
    result = _run(tmp_path, "--folder", str(labelled_folder), "--ef-search", "100")
    (configuration,) = result["configurations"]
    assert configuration["index_recall"] == {"@1": 1.0, "@5": 1.0, "@10": 1.0, "@20": 1.0}
    assert configuration["hnsw"] == configuration["exact"]
    assert configuration["precision_curve"] == configuration["exact_precision_curve"]


def test_product_relevance_leaves_out_only_the_query_photo(fast_offline, labelled_folder, tmp_path):
    """Dress/0 and Dress/1 are one product; Shoes/copy.jpg is Dress/0's very bytes under another product.

    Querying Dress/0 must find the copy first (distance 0) and its own product next, through Dress/1:
    its own photo is out of the gallery but its product's other photo is in."""
    shutil.copy(labelled_folder / "Dress" / "0.jpg", labelled_folder / "Shoes" / "copy.jpg")
    rows = ["file,category,product", "Dress/0.jpg,Dress,dress-a", "Dress/1.jpg,Dress,dress-a", "Shoes/copy.jpg,Shoes,"]
    rows += [f"{c}/{i}.jpg,{c}," for c in ("Shoes", "Hat") for i in range(3)]
    (labelled_folder / "labels.csv").write_text("\n".join(rows) + "\n")

    result = _run(tmp_path, "--csv", str(labelled_folder / "labels.csv"), "--relevance", "product", "--examples", "5")
    (configuration,) = result["configurations"]
    assert configuration["hnsw"]["overall"]["queries"] == 2
    examples = {e["query"]: e for e in configuration["examples"]}
    first = examples["Dress/0.jpg"]["results"]
    assert (first[0]["photo"], first[0]["correct"]) == ("Shoes/copy.jpg", False)
    # Where the embedder puts the product's other photo is its own business; only that one counts as correct.
    rank = 1 + [result["photo"] for result in first].index("Dress/1.jpg")
    assert [result["correct"] for result in first] == [result["photo"] == "Dress/1.jpg" for result in first]
    assert rank > 1 and examples["Dress/0.jpg"]["ap"] == pytest.approx(1 / rank)
    assert configuration["hnsw"]["overall"]["metrics"]["r@20"]["mean"] == 1.0


def test_clear_errors_for_bad_input(fast_offline, labelled_folder, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match="no labelled photos found"):
        _run(tmp_path, "--folder", str(tmp_path / "empty"))
    with pytest.raises(CommandError, match="unknown category: Coats"):
        _run(tmp_path, "--folder", str(labelled_folder), "--categories", "Dress,Coats")
    with pytest.raises(CommandError, match="--ef-search takes whole numbers"):
        _run(tmp_path, "--folder", str(labelled_folder), "--ef-search", "forty")
    with pytest.raises(CommandError, match="the catalog has no photos"):
        _run(tmp_path, "--catalog")


def test_a_configuration_that_cannot_be_built_is_reported_and_the_others_still_run(
    fast_offline, labelled_folder, tmp_path
):
    result = _run(
        tmp_path, "--folder", str(labelled_folder), "--categories", "Dress,Shoes", "--profile", "offline",
        "--embedder", "efficientnet-lite0", "--embedder", "no_such_module.Embedder", "--ef-search", "100",
    )  # fmt: skip
    assert [c["name"] for c in result["configurations"]] == ["offline + embedder efficientnet-lite0, ef_search 100"]
    assert [f["name"] for f in result["failed_configurations"]] == ["offline + embedder no_such_module.Embedder"]
    assert "cannot be built" in result["failed_configurations"][0]["reason"]
    assert result["configurations"][0]["hnsw"]["overall"]["queries"] == 6


@pytest.mark.usefixtures("no_background_processing")
def test_catalog_evaluation_groups_photos_by_product(fast_offline, tmp_path):
    from catalog import services

    photos = {"dress-a": [("Dress", 0), ("Dress", 1)], "dress-b": [("Dress", 2)], "shoes-a": [("Shoes", 0)]}
    photos["shoes-b"] = [("Shoes", 1)]
    for external_id, shots in photos.items():
        product, _ = services.upsert_product(shop="s", external_id=external_id, name=external_id, category=shots[0][0])
        for category, index in shots:
            services.add_image(product=product, content=demo_photo(category, index).read_bytes())

    by_category = _run(tmp_path, "--catalog", "--ef-search", "100")["configurations"][0]["hnsw"]
    # Five photos query; each finds the one other product of its category (never its own product's photos).
    assert by_category["overall"]["queries"] == 5
    assert by_category["overall"]["metrics"]["r@20"]["mean"] == 1.0
    assert by_category["overall"]["metrics"]["p@5"]["mean"] == pytest.approx(1 / 5)
    by_product = _run(tmp_path, "--catalog", "--relevance", "product")["configurations"][0]["hnsw"]
    assert by_product["overall"]["queries"] == 2  # the two photos of dress-a
    assert Product.objects.count() == 4 and not Garment.objects.exists()
    assert leftover_schemas() == []


def test_keep_leaves_the_evaluation_schema_and_progress_is_shown(fast_offline, labelled_folder, tmp_path):
    from io import StringIO

    from django.db import connection

    stdout, stderr = StringIO(), StringIO()
    out = tmp_path / "out"
    call_command(
        "evaluate", "--folder", str(labelled_folder), "--categories", "Dress,Shoes", "--keep", "--bootstrap", "0",
        "--json", str(out / "e.json"), "--html", str(out / "e.html"), stdout=stdout, stderr=stderr,
    )  # fmt: skip
    (schema,) = leftover_schemas()
    assert json.loads((out / "e.json").read_text())["configurations"][0]["kept_schema"] == schema
    assert f"kept evaluation schema {schema}" in stdout.getvalue()
    assert "Embedding (offline)" in stderr.getvalue() and "/6 " in stderr.getvalue()  # a bar over the 6 photos
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{schema}".catalog_garment')
        assert cursor.fetchone()[0] == 6  # one whole-photo garment per photo
    assert not Garment.objects.exists()  # the connection is back on the live tables


def test_photos_the_learned_metric_was_fitted_on_are_reported_in_sample(
    fast_offline, labelled_folder, tmp_path, settings, capsys
):
    """The demo photos are among the CC0 photos the bundled category metric was fitted on: an evaluation on
    them says its figures are in-sample; with the metric off there is nothing to warn about."""
    result = _run(tmp_path, "--folder", str(labelled_folder), "--ef-search", "100")
    assert result["in_sample_photos"] == {"offline": 9}  # the 9 demo photos; broken.jpg is no fitted photo
    assert "in-sample: offline's category metric was fitted on 9 of these 10 photos" in capsys.readouterr().out
    html = (tmp_path / "out" / "e.html").read_text()
    assert 'id="in-sample"' in html and "fitted on 9 of these 10 photos" in html
    settings.LOOKALIKE_EMBEDDING_METRIC = "off"
    assert _run(tmp_path, "--folder", str(labelled_folder), "--ef-search", "100")["in_sample_photos"] == {}
    assert 'id="in-sample"' not in (tmp_path / "out" / "e.html").read_text()
