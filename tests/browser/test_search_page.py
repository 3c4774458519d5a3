"""The search page in a real headless Chromium against a catalog indexed with the offline profile.

A shopper uploads a real T-shirt photo that is not in the catalog, sees ranked cards, filters them, opens a
product, switches between two detected garments, and is told why a fake "photo" was refused.
"""

from __future__ import annotations

import base64
import json
import re
from collections import defaultdict

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions import interaction
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.actions.pointer_input import PointerInput
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from catalog.importers import import_file
from catalog.models import ProductImage
from core.photos import megabytes
from search.pipeline.registry import reset_pipeline
from tests.conftest import DEMO_DIR, demo_photo
from tests.fixtures.indexed import index_images

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 60
# A T-shirt photo the catalog does not contain: the catalog has T-shirts 0-3 of the demo set.
QUERY_PHOTO = demo_photo("T-Shirt", 5)
PRODUCTS_PER_CATEGORY = {"T-Shirt": 4, "Shoes": 4}
OTHER_CATEGORIES = (
    "Dress",
    "Pants",
    "Shorts",
    "Skirt",
    "Hat",
    "Blazer",
    "Hoodie",
    "Polo",
    "Shirt",
    "Longsleeve",
    "Top",
)
CATALOG_SIZE = sum(PRODUCTS_PER_CATEGORY.values()) + len(OTHER_CATEGORIES)
TOP_LIKE = {"T-Shirt", "Polo", "Top", "Longsleeve", "Shirt", "Undershirt", "Blouse", "Hoodie"}


def _catalog_subset() -> list[dict]:
    """19 demo products across 13 categories (4 T-shirts, 4 shoes, one of each other category), each with a SKU
    so cards can show one: enough for 12 results and 8 neighbours, small enough to index in seconds."""
    by_category = defaultdict(list)
    for product in json.loads((DEMO_DIR / "products.json").read_text()):
        by_category[product["category"]].append(product)
    counts = {**PRODUCTS_PER_CATEGORY, **dict.fromkeys(OTHER_CATEGORIES, 1)}
    subset = []
    for category, count in counts.items():
        for product in by_category[category][:count]:
            images = [str(DEMO_DIR / image) for image in product["images"]]
            subset.append({**product, "images": images, "sku": f"SKU-{product['id'].upper()}"})
    assert str(QUERY_PHOTO) not in {image for product in subset for image in product["images"]}
    return subset


@pytest.fixture
def offline_profile(settings):
    """The bundled offline profile (no model download; its embedder has no text tower)."""
    settings.LOOKALIKE_PROFILE = "offline"
    for name in ("LOOKALIKE_DETECTOR", "LOOKALIKE_SEGMENTER", "LOOKALIKE_EMBEDDER"):
        setattr(settings, name, "")
    reset_pipeline()
    yield
    reset_pipeline()


@pytest.fixture
def indexed_catalog(offline_profile, settings, tmp_path, transactional_db):
    """The subset imported, then indexed with the offline profile by ``process_images`` (what `manage.py index
    --sync` runs) the first time, and from the remembered garments after that."""
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
    source = tmp_path / "products.json"
    source.write_text(json.dumps(_catalog_subset()))
    report = import_file(source)
    assert not report.errors, report.errors
    images = list(ProductImage.objects.order_by("pk"))
    assert len(images) == CATALOG_SIZE
    index_images(images)


def _open_search_page(browser, live_server):
    browser.get(f"{live_server.url}/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Search by photo"


def _upload(browser, path):
    browser.find_element(By.ID, "photo-input").send_keys(str(path))


def _cards(browser, within="#results"):
    """Result cards (skeleton placeholders are not results)."""
    return browser.find_elements(By.CSS_SELECTOR, f"{within} .card:not(.card--skeleton)")


def _wait_for_cards(browser):
    def ready(driver):
        busy = driver.find_element(By.ID, "results").get_attribute("aria-busy") == "true"
        error = driver.find_element(By.ID, "search-error")
        assert not error.is_displayed(), f"search failed: {error.text}"
        placeholders = driver.find_elements(By.CSS_SELECTOR, "#results .card--skeleton")
        return not busy and not placeholders and _cards(driver)

    return WebDriverWait(browser, WAIT_SECONDS).until(ready)


def _wait_for_new_results(browser, old_card):
    """After a re-search: the old cards are replaced by the answer's cards."""
    WebDriverWait(browser, WAIT_SECONDS).until(expected_conditions.staleness_of(old_card))
    return _wait_for_cards(browser)


def _drop_file(browser, path):
    """Drag & drop as the page sees it: a drop event on the zone carrying the file."""
    browser.execute_script(
        """
        const [b64, name] = arguments;
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
        const zone = document.getElementById("dropzone");
        for (const type of ["dragenter", "dragover", "drop"]) {
            zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }
        """,
        base64.b64encode(path.read_bytes()).decode(),
        path.name,
    )


def _card_text(card, css):
    return card.find_element(By.CSS_SELECTOR, css).text.strip()


def _categories(cards):
    return [_card_text(card, ".card__category") for card in cards]


def test_photo_search_ranks_tshirts_first_and_a_category_filter_applies(
    browser, live_server, indexed_catalog, screenshot
):
    _open_search_page(browser, live_server)
    _upload(browser, QUERY_PHOTO)
    cards = _wait_for_cards(browser)
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda d: d.execute_script(
            "const i = arguments[0]; return i.complete && i.naturalWidth > 0;",
            cards[0].find_element(By.CSS_SELECTOR, ".card__image"),
        )
    )
    screenshot("search-1-photo-results")

    assert len(cards) == 12  # the default number of results
    assert browser.find_element(By.ID, "preview-image").is_displayed()
    for card in cards:
        assert _card_text(card, ".card__title")
        assert re.fullmatch(r"ID demo-[a-z-]+-\d+", _card_text(card, ".card__id"))
        assert re.fullmatch(r"SKU SKU-DEMO-[A-Z-]+-\d+", _card_text(card, ".card__sku"))
        assert re.fullmatch(r"\d+\.\d{2} EUR", _card_text(card, ".card__price"))
        assert re.fullmatch(r"Match \d{1,3}/100", _card_text(card, ".card__percent"))
        assert _card_text(card, ".card__matched").startswith("Matched: ")
        assert re.search(r"/products/\d+/$", card.find_element(By.CSS_SELECTOR, ".card__link").get_attribute("href"))
    percents = [int(_card_text(card, ".card__percent").split()[1].split("/")[0]) for card in cards]
    assert percents == sorted(percents, reverse=True)
    top = _categories(cards[:6])
    assert top[0] in TOP_LIKE, top
    assert top.count("T-Shirt") > top.count("Shoes"), top

    # Paging past k: "Show more results" asks for twice as many; the whole catalog then fits.
    browser.find_element(By.ID, "more-button").click()
    cards = _wait_for_new_results(browser, cards[0])
    assert len(cards) == CATALOG_SIZE
    assert not browser.find_element(By.ID, "more-results").is_displayed()

    Select(browser.find_element(By.ID, "category")).select_by_visible_text("Shoes")  # re-searches on change
    cards = _wait_for_new_results(browser, cards[0])
    screenshot("search-2-filter-shoes")

    assert _categories(cards) == ["Shoes"] * 4  # every shoe of the catalog, nothing else

    product_name = _card_text(cards[0], ".card__title")
    cards[0].find_element(By.CSS_SELECTOR, ".card__link").click()
    WebDriverWait(browser, WAIT_SECONDS).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".product__name"))
    screenshot("search-3-product-page")

    assert browser.find_element(By.CSS_SELECTOR, ".product__name").text == product_name
    similar = _cards(browser, within="#similar-results")
    assert len(similar) == 8
    assert product_name not in [_card_text(card, ".card__title") for card in similar]
    assert "Garments found" not in browser.page_source  # no pipeline output for shoppers

    # The breadcrumb leads back to the results the shopper came from (photo and filter), not an empty page.
    back = browser.find_element(By.ID, "back-to-results")
    assert back.text == "Back to results"
    assert "photo=" in back.get_attribute("href") and "category=Shoes" in back.get_attribute("href")
    back.click()
    cards = _wait_for_cards(browser)
    assert _categories(cards) == ["Shoes"] * 4
    assert Select(browser.find_element(By.ID, "category")).first_selected_option.text == "Shoes"


def test_a_file_that_is_not_an_image_shows_the_reason(browser, live_server, tmp_path, screenshot):
    fake = tmp_path / "holiday.jpg"
    fake.write_text("Dear diary, this is not a photo at all.\n")
    _open_search_page(browser, live_server)
    _upload(browser, fake)

    error = WebDriverWait(browser, WAIT_SECONDS).until(
        expected_conditions.visibility_of_element_located((By.ID, "photo-error"))
    )
    screenshot("search-6-bad-file")

    assert "not an image" in error.text
    assert not _cards(browser)


def test_a_photo_dropped_on_an_unindexed_catalog_gets_the_notice(browser, live_server, offline_profile, screenshot):
    _open_search_page(browser, live_server)
    _drop_file(browser, QUERY_PHOTO)

    notice = WebDriverWait(browser, WAIT_SECONDS).until(
        expected_conditions.visibility_of_element_located((By.ID, "search-notice"))
    )
    screenshot("search-7-dropped-photo-not-indexed")

    assert notice.text == "The catalog has not been indexed with the current model yet."
    assert browser.find_element(By.ID, "preview-image").get_attribute("alt") == f"Your photo: {QUERY_PHOTO.name}"
    assert browser.find_element(By.ID, "results-summary").text == "0 similar products"
    assert not _cards(browser)


def test_an_image_link_is_fetched_by_the_browser_and_searched(browser, live_server, offline_profile, screenshot):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    photo_id = "ab" * 16
    default_storage.save(f"query-photos/{photo_id}", ContentFile(QUERY_PHOTO.read_bytes()))
    _open_search_page(browser, live_server)
    field = browser.find_element(By.ID, "image-url")
    error = browser.find_element(By.ID, "photo-error")

    field.send_keys("ftp://shop.example/photo.jpg", Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda d: error.is_displayed())
    assert "not a web link" in error.text
    assert "q=" not in browser.current_url, "Enter in the link field is not the text search"

    field.clear()
    field.send_keys("http://127.0.0.1:9/photo.jpg")  # nothing listens there: as a site that forbids CORS
    browser.find_element(By.ID, "image-url-button").click()
    WebDriverWait(browser, 10).until(lambda d: "couldn’t be loaded" in error.text)
    assert "copy it and paste it here" in error.text

    field.clear()
    field.send_keys(f"{live_server.url}/photos/{photo_id}/", Keys.ENTER)
    notice = WebDriverWait(browser, WAIT_SECONDS).until(
        expected_conditions.visibility_of_element_located((By.ID, "search-notice"))
    )
    screenshot("search-15-image-link")
    assert notice.text == "The catalog has not been indexed with the current model yet."  # it was searched
    assert browser.find_element(By.ID, "preview-image").get_attribute("alt") == f"Your photo: {photo_id}"
    assert not error.is_displayed()


def test_text_search_without_a_photo_is_answered_by_the_server(browser, live_server, offline_profile, screenshot):
    _open_search_page(browser, live_server)
    box = browser.find_element(By.ID, "q")
    box.send_keys("red satin midi dress")
    box.submit()

    # Issue 13: the offline profile answers with keyword search (it used to show a text-tower error).
    notice = WebDriverWait(browser, WAIT_SECONDS).until(
        expected_conditions.visibility_of_element_located((By.ID, "search-notice"))
    )
    screenshot("search-8-text-search-offline")

    assert "No products matched" in notice.text  # this test's catalog is empty
    assert not browser.find_element(By.ID, "search-error").is_displayed()
    assert browser.current_url.startswith(f"{live_server.url}/?q=red+satin+midi+dress")
    assert browser.find_element(By.ID, "q").get_attribute("value") == "red satin midi dress"


def _summary(browser):
    return browser.find_element(By.ID, "results-summary").text


def _paste_file(browser, path):
    """A paste as the page sees it: a paste event whose clipboard carries the photo."""
    browser.execute_script(
        """
        const [b64, name] = arguments;
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
        document.dispatchEvent(new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true, cancelable: true}));
        """,
        base64.b64encode(path.read_bytes()).decode(),
        path.name,
    )


def test_feedback_url_restore_remove_and_paste(browser, live_server, indexed_catalog, settings, screenshot):
    settings.LOOKALIKE_DETECTOR = "tests.browser.fakes.SlowTwoBoxDetector"
    reset_pipeline()
    _open_search_page(browser, live_server)
    browser.execute_script("document.getElementById('search-form').dataset.slowMs = '300';")
    _upload(browser, QUERY_PHOTO)
    # Cold: skeleton cards at once, then a message that the first search takes longer; never the empty state.
    quick = WebDriverWait(browser, 10, poll_frequency=0.05)
    quick.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .card--skeleton"))
    assert not browser.find_element(By.ID, "empty-state").is_displayed()
    quick.until(lambda d: "first search loads the models" in _summary(d))
    screenshot("search-9-cold-feedback")
    cards = _wait_for_cards(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, "#results .card--skeleton")

    # Warm re-search: the old cards stay (dimmed) while it runs, no skeletons.
    Select(browser.find_element(By.ID, "k")).select_by_visible_text("6")
    quick.until(lambda d: _summary(d).startswith("Searching"))
    assert browser.find_element(By.ID, "results").get_attribute("aria-busy") == "true"
    assert not browser.find_elements(By.CSS_SELECTOR, "#results .card--skeleton")
    cards = _wait_for_new_results(browser, cards[0])
    assert len(cards) == 6

    # The URL restores the photo search: a reload of the shared address shows the same photo and results.
    WebDriverWait(browser, 10).until(lambda d: "photo=" in d.current_url)
    shared = browser.current_url
    browser.get(shared)
    cards = _wait_for_cards(browser)
    assert browser.find_element(By.ID, "preview-image").is_displayed()
    assert "photo=" in browser.current_url

    # Remove photo: results, summary and the photo's URL go.
    browser.find_element(By.ID, "clear-photo").click()
    assert not _cards(browser) and _summary(browser) == ""
    assert browser.find_element(By.ID, "empty-state").is_displayed()
    assert "photo=" not in browser.current_url

    # Paste a photo: it is searched.
    _paste_file(browser, QUERY_PHOTO)
    assert _wait_for_cards(browser)


def _record_searches(browser):
    """From now on, keep what each search sends to the API: ``window.searchedBoxes`` (the ``box`` field) and
    ``window.sentPhotos`` (bytes and longer side of the photo sent)."""
    browser.execute_script(
        """
        window.searchedBoxes = [];
        window.sentPhotos = [];
        const apiUrl = document.getElementById("search-form").dataset.apiUrl;
        const original = window.fetch;
        window.fetch = function (url, options) {
            if (url === apiUrl && options && options.body instanceof FormData) {
                window.searchedBoxes.push(options.body.get("box"));
                const photo = options.body.get("image");
                const sent = {bytes: photo.size, side: null};
                window.sentPhotos.push(sent);
                createImageBitmap(photo).then((bitmap) => { sent.side = Math.max(bitmap.width, bitmap.height); });
            }
            return original.apply(this, arguments);
        };
        """
    )


def _draw_region(browser, element, start, end, kind=interaction.POINTER_MOUSE):
    """Press, drag and release across ``element`` with W3C pointer actions (offsets from its top-left corner):
    the pointerdown/pointermove/pointerup events a real mouse or pen sends."""
    rect = element.rect
    # W3C offsets are from the element's centre.
    to_centre = [(x - rect["width"] / 2, y - rect["height"] / 2) for x, y in (start, end)]
    actions = ActionBuilder(browser, mouse=PointerInput(kind, f"{kind}-drawer"), duration=50)
    actions.pointer_action.move_to(element, *to_centre[0]).pointer_down()
    for step in (0.25, 0.5, 0.75, 1.0):
        x = to_centre[0][0] + step * (to_centre[1][0] - to_centre[0][0])
        y = to_centre[0][1] + step * (to_centre[1][1] - to_centre[0][1])
        actions.pointer_action.move_to(element, x, y)
    actions.pointer_action.pointer_up()
    actions.perform()


def test_garment_boxes_by_mouse_and_keyboard_a_drawn_region_and_errors_beside_their_controls(
    browser, live_server, indexed_catalog, settings, tmp_path, screenshot
):
    """One two-garment photo search, then everything a shopper does with it: switch garments by mouse and by
    keyboard (focus stays on the chosen box), draw a region, mistype prices, choose a file over the limit."""
    settings.LOOKALIKE_DETECTOR = "tests.browser.fakes.TwoBoxDetector"
    reset_pipeline()
    _open_search_page(browser, live_server)
    _upload(browser, QUERY_PHOTO)
    cards = _wait_for_cards(browser)

    boxes = browser.find_elements(By.CSS_SELECTOR, "#garment-boxes .garment-box")
    assert [box.text.lower() for box in boxes] == ["top", "pants"]
    assert [box.get_attribute("aria-pressed") for box in boxes] == ["true", "false"]  # the larger one first
    left, right = (box.rect for box in boxes)
    preview = browser.find_element(By.ID, "preview-image").rect
    assert abs(left["x"] - preview["x"]) < 4 and abs(right["x"] + right["width"] - preview["x"] - preview["width"]) < 4
    assert left["width"] > right["width"] > 0.4 * preview["width"]  # scaled to the preview's displayed size
    assert "for the top" in _summary(browser)
    screenshot("search-4-garment-top")

    # Mouse: the other box searches the pants.
    boxes[1].click()
    cards = _wait_for_new_results(browser, cards[0])
    screenshot("search-5-garment-pants")
    boxes = browser.find_elements(By.CSS_SELECTOR, "#garment-boxes .garment-box")
    assert [box.get_attribute("aria-pressed") for box in boxes] == ["false", "true"]
    assert "for the pants" in _summary(browser)

    # Keyboard: Enter on the top's box searches it, and focus stays on that box (the boxes are rebuilt).
    browser.execute_script("arguments[0].focus();", boxes[0])
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    cards = _wait_for_new_results(browser, cards[0])
    focused = browser.switch_to.active_element
    assert focused.get_attribute("class") == "garment-box" and focused.get_attribute("data-index") == "0"
    assert focused.get_attribute("aria-pressed") == "true"
    assert "for the top" in _summary(browser)
    screenshot("search-11-keyboard-focus")

    # Draw a region: a drag across the lower middle of the photo searches that box of the photo's pixels.
    _record_searches(browser)
    stage = browser.find_element(By.ID, "preview-stage")
    width, height = stage.rect["width"], stage.rect["height"]
    before = [_card_text(card, ".card__title") for card in cards]
    _draw_region(browser, stage, (0.3 * width, 0.5 * height), (0.7 * width, 0.9 * height))
    cards = _wait_for_new_results(browser, cards[0])
    screenshot("search-14-drawn-region")

    sent = browser.execute_script("return window.searchedBoxes")
    assert len(sent) == 1 and sent[0], sent
    x0, y0, x1, y1 = map(int, sent[0].split(","))
    natural = browser.execute_script(
        "const i = document.getElementById('preview-image'); return [i.naturalWidth, i.naturalHeight];"
    )
    # The box is in the photo's own pixels, where the drag was (within a few pixels of rounding).
    sides = (natural[0], natural[1], natural[0], natural[1])
    for value, expected, side in zip((x0, y0, x1, y1), (0.3, 0.5, 0.7, 0.9), sides, strict=True):
        assert abs(value - expected * side) <= 0.03 * side, (sent, natural)
    region = browser.find_element(By.ID, "region-box")
    assert region.is_displayed()
    assert abs(region.rect["width"] - 0.4 * width) < 6 and abs(region.rect["height"] - 0.4 * height) < 6
    assert "for the region you drew" in _summary(browser)
    assert browser.find_element(By.ID, "preview-caption").text == "Searching the region you drew."
    assert [box.get_attribute("aria-pressed") for box in browser.find_elements(By.CSS_SELECTOR, ".garment-box")] == [
        "false",
        "false",
    ]
    assert [_card_text(card, ".card__title") for card in cards] != before
    assert f"box={x0}%2C{y0}%2C{x1}%2C{y1}" in browser.current_url  # a drawn region has a URL too

    region_url = browser.current_url

    # Contradicting prices: the message sits under the price fields, in the page's words; the boxes stay.
    browser.find_element(By.ID, "min_price").send_keys("50")
    browser.find_element(By.ID, "max_price").send_keys("10", Keys.TAB)
    error = WebDriverWait(browser, WAIT_SECONDS).until(
        expected_conditions.visibility_of_element_located((By.ID, "price-error"))
    )
    assert "min price" in error.text.lower() and "_" not in error.text
    assert not browser.find_element(By.ID, "search-error").is_displayed()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#garment-boxes .garment-box")) == 2
    screenshot("search-12-price-error")

    # Offline: a filter change says so in words, beside the search button (not "Failed to fetch").
    browser.execute_cdp_cmd("Network.enable", {})
    offline = {"latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {**offline, "offline": True})
    try:
        Select(browser.find_element(By.ID, "category")).select_by_visible_text("Shoes")
        error = WebDriverWait(browser, 10).until(
            expected_conditions.visibility_of_element_located((By.ID, "form-error"))
        )
        assert "offline" in error.text and "Failed to fetch" not in error.text
        assert not browser.find_element(By.ID, "price-error").is_displayed()
    finally:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {**offline, "offline": False})

    # A file over the limit is refused before any upload, beside the photo control, with the configured limit.
    big = tmp_path / "huge.jpg"
    big.write_bytes(b"\0" * (settings.MAX_UPLOAD_BYTES + 1))
    _upload(browser, big)
    error = WebDriverWait(browser, 10).until(expected_conditions.visibility_of_element_located((By.ID, "photo-error")))
    assert f"up to {megabytes(settings.MAX_UPLOAD_BYTES)}" in error.text
    assert not _cards(browser)

    # The drawn region's URL restores that search: the photo, the region drawn on it, its results.
    browser.get(region_url)
    _wait_for_cards(browser)
    region = browser.find_element(By.ID, "region-box")
    assert region.is_displayed()
    assert abs(region.rect["width"] - 0.4 * width) < 6 and abs(region.rect["height"] - 0.4 * height) < 6
    assert "for the region you drew" in _summary(browser)


def test_phone_layout_scrolls_to_two_cards_per_row(
    browser, live_server, indexed_catalog, settings, tmp_path, screenshot
):
    """A phone's big photo (over the upload limit here) is shrunk in the browser and searched, and the page
    scrolls to results two per row."""
    from PIL import Image

    big = tmp_path / "phone-photo.jpg"
    with Image.open(QUERY_PHOTO) as photo:
        scale = 3600 / max(photo.size)
        photo.convert("RGB").resize((round(photo.width * scale), round(photo.height * scale))).save(big, quality=97)
    settings.MAX_UPLOAD_BYTES = big.stat().st_size // 2  # as a 17 MB phone photo against 15 MB
    browser.set_window_size(390, 844)
    browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    try:
        _open_search_page(browser, live_server)
        assert browser.find_element(By.CSS_SELECTOR, ".dropzone__title").text == "Choose a photo"
        assert browser.find_element(By.CSS_SELECTOR, ".camera-button").is_displayed()
        assert browser.find_element(By.ID, "camera-input").get_attribute("capture") == "environment"
        assert browser.find_element(By.ID, "filters").get_attribute("open") is None  # collapsed on a phone
        screenshot("search-13-phone-start")
        _record_searches(browser)
        _upload(browser, big)
        cards = _wait_for_cards(browser)
        sent = WebDriverWait(browser, 10).until(
            lambda d: d.execute_script("const s = window.sentPhotos; return s.length && s[0].side && s;")
        )
        assert sent[0]["bytes"] <= settings.MAX_UPLOAD_BYTES and sent[0]["side"] == 1600  # LOOKALIKE_MAX_IMAGE_SIDE
        WebDriverWait(browser, 10).until(lambda d: d.execute_script("return window.scrollY") > 300)
        top = browser.execute_script("return document.getElementById('results-panel').getBoundingClientRect().top")
        assert abs(top) < 40, top
        rows = [card.rect["y"] for card in cards[:3]]
        assert rows[0] == rows[1] < rows[2]  # two cards per row
        assert round(cards[0].rect["height"]) == round(cards[1].rect["height"])  # even heights in a row
        screenshot("search-16-phone-results")
    finally:
        browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})
        browser.set_window_size(1280, 1000)
