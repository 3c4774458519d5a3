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
