"""Shopper pages on a real PostgreSQL: search page, product page with "more like this", text-search messages."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from catalog import services
from search.pipeline.registry import get_pipeline, reset_pipeline
from tests.conftest import demo_photo

pytestmark = pytest.mark.django_db


@pytest.fixture
def offline_pipeline(settings):
    """The bundled offline profile: no model download, and an embedder without a text tower."""
    settings.LOOKALIKE_PROFILE = "offline"
    for name in ("LOOKALIKE_DETECTOR", "LOOKALIKE_SEGMENTER", "LOOKALIKE_EMBEDDER"):
        setattr(settings, name, "")
    reset_pipeline()
    yield get_pipeline()
    reset_pipeline()


def _png(size=(8, 8), colour=(200, 30, 30, 255)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _indexed_product(space, *, name, category, vector, photo, **fields):
    """A product with one photo and one garment whose vector we choose, as the indexer would store it."""
    product, _ = services.upsert_product(
        shop="Test Shop", external_id=name.lower().replace(" ", "-"), name=name, category=category, **fields
    )
    image, _ = services.add_image(product=product, content=photo.read_bytes())
    vector = np.asarray(vector, dtype=np.float32)
    services.replace_garments(
        image=image,
        space=space,
        garments=[
            services.GarmentData(
                label="dress",
                score=0.9,
                box=(0, 0, 10, 10),
                embedding=(vector / np.linalg.norm(vector)).tolist(),
                mask_png=b"",
                cutout_png=_png(),
            )
        ],
    )
    return product


@pytest.fixture
def indexed_catalog(offline_pipeline, no_background_processing):
    pipeline = offline_pipeline
    space = services.ensure_embedding_space(model_id=pipeline.embedder_id, dim=pipeline.embedding_dim)
    dim = pipeline.embedding_dim
    base = np.zeros(dim)
    base[0] = 1.0
    near = base.copy()
    near[1] = 0.3
    far = np.zeros(dim)
    far[2] = 1.0
    far[0] = 0.2
    return {
        "red": _indexed_product(
            space,
            name="Red Satin Dress",
            category="Dress",
            vector=base,
            photo=demo_photo("Dress", 0),
            price="59.90",
            currency="EUR",
            sku="RSD-1",
            brand="Acme",
            source_url="https://shop.example/red-satin-dress",
        ),
        "near": _indexed_product(
            space,
            name="Crimson Dress",
            category="Dress",
            vector=near,
            photo=demo_photo("Dress", 1),
            price="45.00",
            currency="EUR",
        ),
        "far": _indexed_product(
            space,
            name="Leather Boots",
            category="Shoes",
            vector=far,
            photo=demo_photo("Shoes", 0),
            price="120.00",
            currency="EUR",
        ),
    }


def test_search_page_lists_catalog_categories_sorted_without_blanks(client, no_background_processing):
    for external_id, category in [("1", "Shoes"), ("2", "Dress"), ("3", ""), ("4", "Dress")]:
        services.upsert_product(shop="S", external_id=external_id, name=f"Item {external_id}", category=category)

    response = client.get("/")

    assert response.status_code == 200
    html = response.content.decode()
    options = re.findall(r'<option value="([^"]*)"', html.split('id="category"')[1].split("</select>")[0])
    assert options == ["", "Dress", "Shoes"]  # "" is "All categories"
    assert 'id="photo-input"' in html and 'data-api-url="/api/search/"' in html
    assert response.cookies.get("csrftoken") is not None  # the page's JS sends it with the upload


def test_product_page_shows_details_and_more_like_this_in_similarity_order(client, indexed_catalog):
    red = indexed_catalog["red"]

    response = client.get(f"/products/{red.pk}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Red Satin Dress" in html and "59.90 EUR" in html and "RSD-1" in html and "Acme" in html
    assert 'href="https://shop.example/red-satin-dress"' in html
    assert "Garments found" not in html  # the pipeline's own output is not shown to shoppers (issue 16)
    similar = html.split('id="similar-heading"')[1]
    assert "Red Satin Dress" not in similar  # never its own neighbour
    assert similar.index("Crimson Dress") < similar.index("Leather Boots")
    assert re.search(r"Match \d+/100", similar)  # the calibrated score (search.selectors.match_score)
    assert f'href="/products/{indexed_catalog["near"].pk}/"' in similar


def test_product_page_never_links_a_non_web_source_url(client, indexed_catalog):
    product = indexed_catalog["near"]
    product.source_url = "javascript:alert(1)"
    product.save(update_fields=["source_url"])

    html = client.get(f"/products/{product.pk}/").content.decode()

    assert "javascript:alert" not in html


def test_unknown_product_is_404(client):
    assert client.get("/products/987654/").status_code == 404


def test_text_search_without_a_text_tower_is_keyword_search(client, offline_pipeline):
    """Issue 13: the offline profile answers text with keyword search (it used to show a text-tower error)."""
    response = client.get("/", {"q": "red satin dress", "category": "Dress"})

    assert response.status_code == 200
    html = response.content.decode()
    error = re.search(r'<div id="search-error"[^>]*>(.*?)</div>', html, re.S)
    assert error is not None and "hidden" in error.group(0).split(">")[0]
    assert "No products matched" in html  # the catalog is empty here
    assert 'value="red satin dress"' in html  # the form keeps what was typed


def test_text_search_rejects_inverted_price_range_with_a_message(client, offline_pipeline):
    response = client.get("/", {"q": "dress", "min_price": "50", "max_price": "10"})

    assert "Max price: must not be below min price" in response.content.decode()


def test_text_search_renders_result_cards_on_the_server(client, indexed_catalog, monkeypatch):
    """Without JavaScript, /?q= shows the same cards as the photo search (ID, price, % similar, link)."""
    pipeline = get_pipeline()
    target = np.zeros(pipeline.embedding_dim, dtype=np.float32)
    target[2] = 1.0  # the boots' direction
    monkeypatch.setattr(type(pipeline), "embed_text", lambda self, texts: np.stack([target for _ in texts]))

    response = client.get("/", {"q": "brown leather boots", "k": "2", "category": "Shoes"})

    html = response.content.decode()
    results = html.split('id="results"')[1].split("</section>")[0]
    assert results.count('class="card"') == 1  # the category filter leaves the boots only
    boots = indexed_catalog["far"]
    assert "Leather Boots" in results and "120.00 EUR" in results and f"ID {boots.external_id}" in results
    assert f'href="/products/{boots.pk}/"' in results
    assert "1 product matching" in html


# --- the query-photo store and the URLs that restore a search (issue 16) ---------------------------------


def _jpeg(colour=(200, 40, 40), size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def _upload(content: bytes, name="photo.jpg"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type="image/jpeg")


def test_a_searched_photo_is_kept_under_its_content_id_and_served_back_as_an_image(client):
    content = _jpeg()

    first = client.post("/photos/", {"image": _upload(content)})
    again = client.post("/photos/", {"image": _upload(content, name="renamed.jpg")})
    other = client.post("/photos/", {"image": _upload(_jpeg(colour=(10, 10, 200)))})

    assert first.status_code == 200
    photo_id = first.json()["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", photo_id)
    assert again.json()["id"] == photo_id  # the same photo, the same link
    assert other.json()["id"] != photo_id
    served = client.get(f"/photos/{photo_id}/")
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == content
    assert served["Content-Type"] == "image/jpeg" and served["X-Content-Type-Options"] == "nosniff"


def test_the_photo_store_refuses_what_is_not_a_photo_or_too_big_and_keeps_nothing(client, settings):
    from django.core.files.storage import default_storage

    refused = client.post("/photos/", {"image": _upload(b"Dear diary, not a photo.\n" * 10)})
    assert refused.status_code in (400, 415) and refused.json()["error"]["code"]
    assert client.post("/photos/", {}).json()["error"]["code"] == "missing_image"

    settings.MAX_UPLOAD_BYTES = 2 * 2**20
    big = client.post("/photos/", {"image": _upload(_jpeg() + b"\0" * (2 * 2**20))})
    assert big.status_code == 413
    assert "up to 2 MB" in big.json()["error"]["message"]  # the configured limit, in the README's words
    assert not default_storage.exists("query-photos") or default_storage.listdir("query-photos") == ([], [])


def test_the_photo_store_needs_the_pages_csrf_token():
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/photos/", {"image": _upload(_jpeg())}).status_code == 403
    token = strict.get("/").cookies["csrftoken"].value
    response = strict.post("/photos/", {"image": _upload(_jpeg())}, headers={"X-CSRFToken": token})
    assert response.status_code == 200


@pytest.mark.parametrize("photo_id", ["0" * 32, "not-an-id", "../../settings"])
def test_an_unknown_or_malformed_photo_id_is_404(client, photo_id):
    assert client.get(f"/photos/{photo_id}/").status_code == 404


def test_a_photo_search_url_renders_a_page_that_restores_it_not_a_text_search(client, offline_pipeline):
    photo_id = client.post("/photos/", {"image": _upload(_jpeg())}).json()["id"]

    response = client.get("/", {"photo": photo_id, "box": "1,2,30,40", "q": "in red", "category": "Dress", "k": "6"})

    html = response.content.decode()
    assert response.status_code == 200
    summary = re.search(r'id="results-summary"[^>]*>(.*?)</p>', html, re.S).group(1)
    assert summary == "Restoring your photo search…"  # not "0 products matching" from a text search
    assert re.search(r'<div id="empty-state"[^>]*hidden', html)  # not "Upload a photo" while it restores
    assert 'value="in red"' in html  # the words and filters come back into the form for search.js to send
    assert '<option value="6" selected>' in html
    assert client.get(f"/photos/{photo_id}/").status_code == 200  # what search.js fetches to search again


def test_more_like_this_has_a_url_with_filters(client, indexed_catalog):
    red, near, far = indexed_catalog["red"], indexed_catalog["near"], indexed_catalog["far"]

    html = client.get("/", {"like": red.pk}).content.decode()
    results = html.split('id="results"')[1].split("</section>")[0]
    assert "More like “Red Satin Dress”" in html
    assert "Red Satin Dress" not in results  # never its own neighbour
    assert results.index("Crimson Dress") < results.index("Leather Boots")
    assert "2 similar products" in html

    shoes = client.get("/", {"like": red.pk, "category": "Shoes"}).content.decode()
    shoe_results = shoes.split('id="results"')[1].split("</section>")[0]
    assert "Leather Boots" in shoe_results and "Crimson Dress" not in shoe_results
    assert f'href="/?like={near.pk}"' in results and f'href="/?like={far.pk}"' in results  # each card's button


@pytest.mark.parametrize("like", ["987654", "abc"])
def test_more_like_an_unknown_product_says_so(client, indexed_catalog, like):
    html = client.get("/", {"like": like}).content.decode()
    assert "That product is no longer in the catalog." in html


def test_the_score_baseline_is_the_catalogs_distances_between_different_products(offline_pipeline):
    from search.selectors import match_score, unrelated_distance_quantiles

    pipeline = offline_pipeline
    space = services.ensure_embedding_space(model_id=pipeline.embedder_id, dim=pipeline.embedding_dim)
    assert unrelated_distance_quantiles(space) == []  # no catalog, no baseline (and no score)
    dim = pipeline.embedding_dim

    def unit(*pairs):
        vector = np.zeros(dim)
        for index, value in pairs:
            vector[index] = value
        return vector

    a = _indexed_product(space, name="A", category="Dress", vector=unit((0, 1.0)), photo=demo_photo("Dress", 0))
    _indexed_product(space, name="B", category="Dress", vector=unit((0, 1.0), (1, 1.0)), photo=demo_photo("Dress", 1))
    _indexed_product(space, name="C", category="Shoes", vector=unit((2, 1.0)), photo=demo_photo("Shoes", 0))
    # A second photo of A with the same vector: a same-product pair at distance 0 must not enter the baseline.
    image, _ = services.add_image(product=a, content=demo_photo("Dress", 2).read_bytes())
    garment = services.GarmentData(
        label="dress", score=0.9, box=(0, 0, 10, 10), embedding=unit((0, 1.0)).tolist(), mask_png=b"", cutout_png=_png()
    )
    services.replace_garments(image=image, space=space, garments=[garment])

    quantiles = unrelated_distance_quantiles(space)

    # Pairs of different products: A-B twice (1 - cos 45°), A-C twice and B-C (orthogonal, 1.0).
    assert len(quantiles) == 101 and quantiles == sorted(quantiles)
    assert quantiles[0] == pytest.approx(1 - np.sqrt(0.5), abs=1e-4)  # not 0: A's own pair is left out
    assert quantiles[-1] == pytest.approx(1.0, abs=1e-4)
    assert quantiles[50] == pytest.approx(1.0, abs=1e-4)  # 3 of the 5 unrelated pairs are orthogonal
    assert match_score(0.0, quantiles) == 100 and match_score(1.0, quantiles) <= 50


def test_the_page_skips_to_results_and_offers_shops_as_choices_with_counts(client, no_background_processing):
    for external_id, shop in [("1", "North Shop"), ("2", "North Shop"), ("3", "South Shop"), ("4", "")]:
        services.upsert_product(shop=shop, external_id=external_id, name=f"Item {external_id}")

    html = client.get("/", {"q": "item", "shop": "north shop"}).content.decode()

    assert re.search(r'<a class="skip-link" href="#results-panel">Skip to results</a>', html)
    shop_select = html.split('id="shop"')[1].split("</select>")[0]
    options = re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)</option>', shop_select)
    assert [(value, label) for value, _, label in options] == [
        ("", "Any shop"),
        ("North Shop", "North Shop (2)"),
        ("South Shop", "South Shop (1)"),
    ]
    assert [value for value, selected, _ in options if selected] == ["North Shop"]  # chosen regardless of case


def test_an_unknown_page_has_a_designed_404_in_production(client, settings):
    settings.DEBUG = False
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "We couldn’t find that page" in html and 'href="/"' in html
