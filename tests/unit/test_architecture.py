"""The rooms' import rules (docs/architecture.md), checked on the source: lower rooms never import higher ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Each room and the rooms it may import (besides itself and third-party code).
MAY_IMPORT = {
    "core": set(),
    "catalog": {"core"},
    "search": {"core", "catalog"},
    "scraping": {"core", "catalog"},
    "backoffice": {"core", "catalog", "search", "scraping"},
    "config": {"core", "catalog", "search", "scraping", "backoffice"},
}


def imported_rooms(path: Path) -> set[str]:
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        rooms.update(name.split(".")[0] for name in names if name.split(".")[0] in MAY_IMPORT)
    return rooms


@pytest.mark.parametrize("room", sorted(MAY_IMPORT))
def test_a_room_imports_only_the_rooms_below_it(room):
    offences = {
        str(path.relative_to(ROOT)): sorted(imported_rooms(path) - MAY_IMPORT[room] - {room})
        for path in (ROOT / room).rglob("*.py")
    }
    assert {path: rooms for path, rooms in offences.items() if rooms} == {}


def test_the_check_sees_an_upward_import(tmp_path):
    upward = tmp_path / "upward.py"
    upward.write_text("from search.query import search_by_text\nimport scraping.crawler\nfrom . import local\n")
    assert imported_rooms(upward) == {"search", "scraping"}
