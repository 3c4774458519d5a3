"""Labelled folders and CSVs: what is read, what is skipped and which mistakes stop the run."""

from __future__ import annotations

import pytest

from search.evaluation import dataset
from search.evaluation.dataset import EvaluationError
from tests.conftest import demo_photo


@pytest.fixture
def folder(tmp_path):
    for category in ("Dress", "Shoes"):
        (tmp_path / category).mkdir()
        for index in range(2):
            (tmp_path / category / f"{index}.jpg").write_bytes(demo_photo(category, index).read_bytes())
    (tmp_path / "Shoes" / "notes.txt").write_text("not a photo")
    return tmp_path


def test_folder_reads_one_category_per_sub_folder_and_lists_what_it_skips(folder):
    data = dataset.from_folder(folder)
    assert data.categories == ["Dress", "Shoes"]
    assert sorted(photo.key for photo in data.photos) == ["Dress/0.jpg", "Dress/1.jpg", "Shoes/0.jpg", "Shoes/1.jpg"]
    assert data.photos[0].read()[:2] == b"\xff\xd8"
    assert data.skipped == [{"photo": "Shoes/notes.txt", "reason": "not a photo file (unknown extension)"}]


def test_empty_and_flat_folders_say_what_is_expected(tmp_path):
    with pytest.raises(EvaluationError, match="one sub-folder per category"):
        dataset.from_folder(tmp_path)
    (tmp_path / "a.jpg").write_bytes(demo_photo("Dress").read_bytes())
    with pytest.raises(EvaluationError, match="1 photo\\(s\\) directly"):
        dataset.from_folder(tmp_path)
    with pytest.raises(EvaluationError, match="is not a folder"):
        dataset.from_folder(tmp_path / "missing")


def test_unknown_categories_are_named_with_the_known_ones(folder):
    data = dataset.from_folder(folder)
    with pytest.raises(EvaluationError, match="unknown category: Hats. The data set has: Dress, Shoes"):
        dataset.restrict(data, ["Hats"], relevance="category")
    kept = dataset.restrict(data, ["dress"], relevance="category")
    assert [photo.key for photo in kept.photos] == ["Dress/0.jpg", "Dress/1.jpg"]
    kept = dataset.restrict(data, [], relevance="category", limit_per_category=1)
    assert [photo.key for photo in kept.photos] == ["Dress/0.jpg", "Shoes/0.jpg"]
    with pytest.raises(EvaluationError, match="at least two labelled photos"):
        dataset.restrict(data, ["Dress"], relevance="category", limit_per_category=1)


def test_csv_rows_relative_to_the_file_with_missing_files_skipped(folder):
    (folder / "labels.csv").write_text(
        "file,category,product\nDress/0.jpg,Dress,p1\nDress/1.jpg,Dress,p1\nShoes/0.jpg,Shoes,\nnope.jpg,Shoes,\n"
    )
    data = dataset.from_csv(folder / "labels.csv")
    assert [(p.key, p.category, p.product) for p in data.photos] == [
        ("Dress/0.jpg", "Dress", "p1"),
        ("Dress/1.jpg", "Dress", "p1"),
        ("Shoes/0.jpg", "Shoes", "Shoes/0.jpg"),
    ]
    assert data.skipped[0]["photo"] == "nope.jpg" and "no such file" in data.skipped[0]["reason"]
    assert dataset.restrict(data, [], relevance="product").photos == data.photos


def test_photos_without_a_category_are_skipped_when_categories_decide(folder):
    (folder / "labels.csv").write_text(
        "file,category,product\nDress/0.jpg,Dress,\nDress/1.jpg,Dress,\nShoes/0.jpg,,s1\n"
    )
    data = dataset.restrict(dataset.from_csv(folder / "labels.csv"), [], relevance="category")
    assert [p.key for p in data.photos] == ["Dress/0.jpg", "Dress/1.jpg"]
    assert data.skipped == [{"photo": "Shoes/0.jpg", "reason": "it has no category"}]


def test_malformed_csvs_are_refused_with_the_columns_expected(tmp_path):
    (tmp_path / "bad.csv").write_text("name,price\nx,1\n")
    with pytest.raises(EvaluationError, match="needs a file column .* its header is: name, price"):
        dataset.from_csv(tmp_path / "bad.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(EvaluationError, match="has no rows"):
        dataset.from_csv(tmp_path / "empty.csv")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(EvaluationError, match="not a readable UTF-8 CSV"):
        dataset.from_csv(tmp_path / "binary.csv")


def test_product_relevance_needs_a_product_with_two_photos(folder):
    with pytest.raises(EvaluationError, match="at least two photos"):
        dataset.restrict(dataset.from_folder(folder), [], relevance="product")
