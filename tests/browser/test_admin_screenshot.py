"""The product page of the admin in a real Chromium: overlays load, and a screenshot is kept for review."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

import search.query
from catalog import services
from tests.integration.admin.conftest import dressed_product

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_background_processing"),
]

ALL_LOADED = "return [...document.querySelectorAll(arguments[0])].every(i => i.complete && i.naturalWidth > 0)"


def test_product_page_shows_overlays_cutouts_and_neighbours(browser, screenshot, live_server, monkeypatch):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    space = services.ensure_embedding_space(model_id="test-embedder", dim=4)
    monkeypatch.setattr(search.query, "current_space", lambda: space)
    product, _ = dressed_product(0, space, embedding=(1.0, 0.0, 0.0, 0.0))
    dressed_product(1, space, embedding=(0.8, 0.2, 0.0, 0.0))
    User.objects.create_superuser("operator", "operator@example.com", "a-long-test-password")

    browser.get(live_server.url + reverse("admin:catalog_product_change", args=[product.pk]))
    assert "/admin/login/" in browser.current_url  # not logged in yet: the login page, not the product
    browser.find_element(By.NAME, "username").send_keys("operator")
    browser.find_element(By.NAME, "password").send_keys("a-long-test-password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "garments"))
    WebDriverWait(browser, 60).until(lambda d: d.execute_script(ALL_LOADED, "img.lk-thumb"))

    overlays = browser.find_elements(By.CSS_SELECTOR, "img.lk-overlay")
    cutouts = browser.find_elements(By.CSS_SELECTOR, "img.lk-cutout")
    assert len(overlays) == 3  # the photo with both garments, then each garment alone
    assert len(cutouts) == 2
    assert all(browser.execute_script("return arguments[0].naturalWidth", img) > 0 for img in overlays + cutouts)
    neighbours = browser.find_elements(By.CSS_SELECTOR, "#more-like-this li")
    assert len(neighbours) == 1
    assert "Demo Dress 1" in neighbours[0].text and "97.0% similar" in neighbours[0].text  # cos((1,0),(.8,.2))

    path = screenshot("admin-product")
    assert path.stat().st_size > 10_000
