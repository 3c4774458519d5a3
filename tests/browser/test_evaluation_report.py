"""The evaluation report in a real Chromium: table, charts, confusion matrix and example grid render,
thumbnails decode, correct results are marked; a full-page screenshot is kept for review."""

from __future__ import annotations

import json
import shutil

import pytest
from django.core.management import call_command

from tests.conftest import demo_photo

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

ALL_LOADED = "return [...document.querySelectorAll(arguments[0])].every(i => i.complete && i.naturalWidth > 0)"


def test_report_renders_in_a_browser(browser, screenshot, settings, tmp_path):
    from selenium.webdriver.common.by import By

    settings.LOOKALIKE_PROFILE = "offline"
    settings.LOOKALIKE_DETECTOR, settings.LOOKALIKE_SEGMENTER = "whole-image", "box"  # seconds, not a minute
    for category in ("Dress", "Shoes", "Hat"):
        (tmp_path / "photos" / category).mkdir(parents=True)
        for index in range(3):
            shutil.copy(demo_photo(category, index), tmp_path / "photos" / category / f"{index}.jpg")
    (tmp_path / "photos" / "Hat" / "torn.jpg").write_bytes(b"GIF89a, or so it says")
    report, data = tmp_path / "report.html", tmp_path / "report.json"
    call_command(
        "evaluate", "--folder", str(tmp_path / "photos"), "--ef-search", "40,100", "--bootstrap", "200",
        "--json", str(data), "--html", str(report), "--no-progress",
    )  # fmt: skip
    result = json.loads(data.read_text())

    browser.get(report.as_uri())
    rows = browser.find_elements(By.CSS_SELECTOR, "#summary tbody tr")
    assert [row.find_element(By.TAG_NAME, "td").text for row in rows] == [
        "offline, ef_search 40",
        "offline, ef_search 100",
    ]
    bars = browser.find_elements(By.CSS_SELECTOR, "#category-bars rect.bar")
    assert len(bars) == 3 * 2  # a bar per category and configuration
    assert all(bar.size["height"] > 0 for bar in bars)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#precision-curve polyline.curve")) == 3  # 2 + exact
    cells = browser.find_elements(By.CSS_SELECTOR, "#confusion tbody td")
    assert sum(int(cell.text or 0) for cell in cells) == 9  # one first result per query
    assert browser.execute_script(ALL_LOADED, "#examples img")
    examples = browser.find_elements(By.CSS_SELECTOR, "#examples .example")
    first = result["configurations"][0]["examples"]
    assert len(examples) == len(first) == 6  # worst and best per category
    for shown, expected in zip(examples, first, strict=True):
        marks = [f.get_attribute("class") for f in shown.find_elements(By.CSS_SELECTOR, "figure:not(.query)")]
        assert marks == ["correct" if r["correct"] else "wrong" for r in expected["results"]]
    assert "torn.jpg" in browser.find_element(By.ID, "skipped").text
    assert screenshot("evaluation-report").stat().st_size > 10_000
