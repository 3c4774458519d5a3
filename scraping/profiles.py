"""Per-site CSS selector profiles (``CRAWL_PROFILES_FILE``) for what structured data and OpenGraph miss.

A profile matches pages by host (shell-style patterns, with or without port) and optionally by a
regular expression on the URL. Its ``fields`` map product fields to a CSS selector (text of the first
match), ``{"selector": ..., "attr": ...}`` (an attribute instead) or ``{"value": ...}`` (a constant).
``product_links`` and ``next_page`` steer ``--follow`` on the site's listing pages.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import urlsplit

from cssselect import GenericTranslator, SelectorError

from catalog.vocabulary import PAGE_FIELDS

PROFILE_FIELDS = {*PAGE_FIELDS, "images"}
PROFILE_KEYS = {"name", "hosts", "url_pattern", "fields", "product_links", "next_page"}


class ProfileError(ValueError):
    """The profiles file is unusable; the message names the file, the profile and the key."""


@dataclass(frozen=True)
class FieldRule:
    selector: str | None = None
    xpath: str | None = None
    attr: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class SiteProfile:
    name: str
    hosts: tuple[str, ...]
    url_pattern: re.Pattern | None = None
    fields: dict[str, FieldRule] = field(default_factory=dict)
    product_links: str | None = None
    next_page: str | None = None

    def matches(self, url: str) -> bool:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        netloc = parts.netloc.lower()
        if not any(fnmatchcase(host, pattern) or fnmatchcase(netloc, pattern) for pattern in self.hosts):
            return False
        return self.url_pattern is None or bool(self.url_pattern.search(url))


def _compile_css(selector: str, where: str) -> str:
    try:
        return GenericTranslator().css_to_xpath(selector)
    except SelectorError as exc:
        raise ProfileError(f"{where}: invalid CSS selector {selector!r} ({exc})") from exc


def _field_rule(spec, where: str) -> FieldRule:
    if isinstance(spec, str):
        return FieldRule(selector=spec, xpath=_compile_css(spec, where))
    if isinstance(spec, dict):
        unknown = set(spec) - {"selector", "attr", "value"}
        if unknown:
            raise ProfileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        if "value" in spec:
            return FieldRule(value=str(spec["value"]))
        if not isinstance(spec.get("selector"), str):
            raise ProfileError(f"{where}: needs a 'selector' string or a 'value'")
        attr = spec.get("attr")
        if attr is not None and not isinstance(attr, str):
            raise ProfileError(f"{where}: 'attr' must be a string")
        return FieldRule(selector=spec["selector"], xpath=_compile_css(spec["selector"], where), attr=attr)
    raise ProfileError(f"{where}: must be a CSS selector string or an object")


def parse_profiles(data, *, source: str = "profiles") -> list[SiteProfile]:
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), list):
        raise ProfileError(f"{source}: expected an object with a 'profiles' list")
    profiles = []
    for index, raw in enumerate(data["profiles"]):
        where = f"{source}: profile #{index + 1}"
        if not isinstance(raw, dict):
            raise ProfileError(f"{where}: must be an object")
        where = f"{source}: profile {raw.get('name', index + 1)!r}"
        unknown = set(raw) - PROFILE_KEYS
        if unknown:
            raise ProfileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        hosts = raw.get("hosts")
        if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) for h in hosts):
            raise ProfileError(f"{where}: 'hosts' must be a non-empty list of host patterns")
        pattern = None
        if raw.get("url_pattern") is not None:
            try:
                pattern = re.compile(raw["url_pattern"])
            except (re.error, TypeError) as exc:
                raise ProfileError(f"{where}: invalid url_pattern ({exc})") from exc
        fields_spec = raw.get("fields", {})
        if not isinstance(fields_spec, dict):
            raise ProfileError(f"{where}: 'fields' must be an object")
        unknown_fields = set(fields_spec) - PROFILE_FIELDS
        if unknown_fields:
            raise ProfileError(
                f"{where}: unknown field(s) {', '.join(sorted(unknown_fields))} "
                f"(known: {', '.join(sorted(PROFILE_FIELDS))})"
            )
        rules = {name: _field_rule(spec, f"{where} field {name!r}") for name, spec in fields_spec.items()}
        for key in ("product_links", "next_page"):
            if raw.get(key) is not None:
                if not isinstance(raw[key], str):
                    raise ProfileError(f"{where}: {key!r} must be a CSS selector string")
                _compile_css(raw[key], f"{where} {key!r}")
        profiles.append(
            SiteProfile(
                name=str(raw.get("name") or f"profile-{index + 1}"),
                hosts=tuple(h.lower() for h in hosts),
                url_pattern=pattern,
                fields=rules,
                product_links=raw.get("product_links"),
                next_page=raw.get("next_page"),
            )
        )
    return profiles


def load_profiles(path: str | Path | None) -> list[SiteProfile]:
    """Profiles from a JSON file; a missing setting means no profiles, a missing file is an error."""
    if not path:
        return []
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ProfileError(f"profiles file {file} does not exist (CRAWL_PROFILES_FILE)") from exc
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{file}: not valid JSON ({exc})") from exc
    return parse_profiles(data, source=str(file))


def profile_for(url: str, profiles: list[SiteProfile]) -> SiteProfile | None:
    return next((profile for profile in profiles if profile.matches(url)), None)
