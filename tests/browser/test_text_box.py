"""The search page's text box in a real headless Chromium, offline profile (no text tower): it says it searches
words, answers typos and accents with keyword matches, and refines a chosen photo with words."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from catalog import services
from core.photos import load_image
from search.pipeline.registry import get_pipeline, reset_pipeline
from tests.conftest import demo_photo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 60
QUERY_PHOTO = demo_photo("Dress", 0)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (8, 8), (200, 30, 30, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def offline_catalog(settings):
    """Three products stored with chosen vectors: two near the query photo, one far from it."""
    settings.LOOKALIKE_PROFILE = "offline"
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
    for name in ("LOOKALIKE_DETECTOR", "LOOKALIKE_SEGMENTER", "LOOKALIKE_EMBEDDER"):
        setattr(settings, name, "")
    reset_pipeline()
    pipeline = get_pipeline()
    space = services.ensure_embedding_space(model_id=pipeline.embedder_id, dim=pipeline.embedding_dim)
    photo = pipeline.process_image(load_image(QUERY_PHOTO.read_bytes(), max_side=pipeline.max_side))[0].embedding
    rng = np.random.default_rng(5)
    products = {}
    for key, name, colour, vector in [
        ("black", "Black Slip Dress", "black", photo),
        ("red", "Robe écarlate", "red", photo + 0.2 * rng.normal(size=photo.shape) / np.sqrt(photo.size)),
        ("boots", "Leather Boots", "brown", -photo),
    ]:
        product, _ = services.upsert_product(shop="Shop", external_id=key, name=name, colour=colour, sku=f"SKU-{key}")
        image, _ = services.add_image(product=product, content=demo_photo("Dress", 1).read_bytes())
        services.replace_garments(
            image=image,
            space=space,
            garments=[
                services.GarmentData(
                    label="dress",
                    score=0.9,
                    box=(0, 0, 10, 10),
                    embedding=(np.asarray(vector) / np.linalg.norm(vector)).tolist(),
                    mask_png=b"",
                    cutout_png=_png(),
                )
            ],
        )
        products[key] = product
    yield products
    reset_pipeline()


def _card_names(browser) -> list[str]:
    """Read in one script: cards replaced between two WebDriver calls would be stale elements."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#results .card .card__link'), (a) => a.textContent.trim());"
    )


def test_the_text_box_searches_words_in_the_offline_profile(browser, live_server, offline_catalog, screenshot):
    browser.get(f"{live_server.url}/")
    hint = browser.find_element(By.ID, "q-hint").text
    assert "names, descriptions, colours, brands and SKUs" in hint and "photos show" not in hint

    box = browser.find_element(By.ID, "q")
    box.send_keys("robe ecarlatte")  # no accent, one typo
    box.submit()
    WebDriverWait(browser, WAIT_SECONDS).until(lambda driver: "q=" in driver.current_url and _card_names(driver))
    screenshot("text-1-keyword-offline")

    assert _card_names(browser)[0] == "Robe écarlate"
    assert not browser.find_element(By.ID, "search-error").is_displayed()
    assert "matching" in browser.find_element(By.ID, "results-summary").text


def test_words_refine_a_chosen_photo_without_a_text_tower(browser, live_server, offline_catalog, screenshot):
    browser.get(f"{live_server.url}/")
    browser.find_element(By.ID, "photo-input").send_keys(str(QUERY_PHOTO))
    WebDriverWait(browser, WAIT_SECONDS).until(lambda driver: len(_card_names(driver)) == 3)
    assert _card_names(browser)[0] == "Black Slip Dress"

    browser.find_element(By.ID, "q").send_keys("red")
    browser.find_element(By.ID, "search-button").click()
    summary = browser.find_element(By.ID, "results-summary")
    WebDriverWait(browser, WAIT_SECONDS).until(lambda driver: "refined by" in summary.text)
    screenshot("text-2-photo-refined-offline")

    assert _card_names(browser)[0] == "Robe écarlate", "the red one comes first, the photo's order otherwise"
    assert "/?q=" not in browser.current_url, "with a photo, the words go with it to the API"
    assert summary.text == "3 similar products, refined by “red”"
