"""Browser-test fixtures: one headless Chromium per test module, and full-page screenshots kept as artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from scraping.browser import CHROMIUM_FLAGS as CRAWLER_FLAGS
from tests.conftest import ARTIFACTS_DIR

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# The crawler's flags (no background networking on this closed network), with a test window size.
CHROMIUM_FLAGS = (*(flag for flag in CRAWLER_FLAGS if not flag.startswith("--window-size")), "--window-size=1280,1000")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Each browser module runs on one xdist worker (README's test command passes ``--dist loadgroup``):
    its Chromium and its module-wide state (test_search_page's indexed catalog) are set up once, not per worker."""
    here = Path(__file__).parent
    for item in items:
        path = Path(str(item.path))
        if path.parent == here:
            item.add_marker(pytest.mark.xdist_group(f"browser-{path.stem}"))


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium with a fresh profile, shared by a module's tests (starting one costs seconds)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(f"browser tests need {' and '.join(missing)}: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshot(browser):
    """``screenshot("search-1-results")`` saves the whole page (not just the viewport) as a PNG artifact."""

    def save(name: str) -> Path:
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS_DIR / f"{name}.png"
        # Grow the window to the page's height for the shot, then restore it: CDP's captureBeyondViewport
        # leaves the viewport emulated afterwards, which makes later clicks land off-screen.
        original = browser.get_window_size()
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(original["width"], max(original["height"], min(int(height) + 140, 8000)))
        try:
            browser.save_screenshot(str(path))
        finally:
            browser.set_window_size(original["width"], original["height"])
        return path

    return save
