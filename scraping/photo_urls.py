"""Which of a page's image URLs are product photos, one URL per photo, the largest size of each.

Shops serve one photo under many URLs (srcset widths, ``?w=800``, ``_800x800``, Cloudinary ``w_800``
segments). URLs of one ``<img>``/``<picture>`` are one photo for sure; across elements and structured
data, URLs whose size markers are stripped away to the same "photo key" are taken as one photo as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

# Words in a file name, alt text, class or id that mark an image as site furniture, not a product photo.
NON_PRODUCT_WORDS = {
    "logo",
    "logos",
    "icon",
    "icons",
    "favicon",
    "sprite",
    "sprites",
    "badge",
    "badges",
    "payment",
    "payments",
    "flag",
    "flags",
    "avatar",
    "placeholder",
    "spinner",
    "loader",
    "loading",
    "pixel",
    "tracking",
    "spacer",
    "blank",
    "social",
    "rating",
    "stars",
    "trustpilot",
    "banner",
    "newsletter",
}
# Page regions whose images belong to the site or to other products.
NON_PRODUCT_REGIONS = {"header", "nav", "footer", "aside"}
NON_PRODUCT_REGION_WORDS = {
    "header",
    "footer",
    "nav",
    "navbar",
    "menu",
    "related",
    "recommendations",
    "recommended",
    "recommend",
    "upsell",
    "crosssell",
    "cross",
    "recently",
    "reviews",
    "review",
    "cookie",
    "cookies",
}
LAZY_ATTRIBUTES = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-zoom-image", "data-large-image")
SRCSET_ATTRIBUTES = ("srcset", "data-srcset", "data-lazy-srcset")
MIN_PHOTO_PIXELS = 100
SIZE_QUERY_PARAMS = {
    "w",
    "width",
    "h",
    "height",
    "size",
    "sz",
    "q",
    "quality",
    "fit",
    "crop",
    "dpr",
    "fm",
    "format",
    "auto",
    "resize",
    "scale",
    "imwidth",
    "wid",
    "hei",
    "qlt",
    "fmt",
    "v",
    "ver",
    "version",
}
_SIZE_SUFFIX = re.compile(
    r"(?:[-_@.](?:\d{2,5}x\d{0,5}|x\d{2,5}|\d{2,5}w|\d(?:\.\d)?x|crop_[a-z]+|"
    r"large|medium|small|thumb|thumbnail|grande|compact|master|original|zoom|big|mini|tiny|retina|hd))+$",
    re.IGNORECASE,
)
_SIZE_SEGMENT = re.compile(r"^(?:\d{2,5}x\d{2,5}|[a-z]{1,3}_[^/,]+(?:,[a-z]{1,3}_[^/,]+)*|v\d{6,})$", re.IGNORECASE)
_WORDS = re.compile(r"[a-z]+")
_NUMBER_IN_URL = re.compile(r"(?:^|[^\d])(\d{2,5})(?:x\d{0,5}|w)?(?=[^\d]|$)")


def absolute_url(raw: str | None, base: str) -> str | None:
    """An absolute http(s) URL without fragment, or None for data:, blob:, javascript: and garbage."""
    if not raw:
        return None
    value = raw.strip()
    if not value or value.startswith(("data:", "blob:", "javascript:", "about:")):
        return None
    try:
        joined = urljoin(base, value)
        parts = urlsplit(joined)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


def _srcset_items(value: str) -> Iterable[tuple[str, str]]:
    """(url, descriptor) pairs, tokenized as the HTML spec does, so commas inside URLs survive."""
    position, length = 0, len(value)
    while position < length:
        while position < length and (value[position].isspace() or value[position] == ","):
            position += 1
        start = position
        while position < length and not value[position].isspace():
            position += 1
        url = value[start:position]
        if not url:
            return
        if url.endswith(","):
            yield url.rstrip(","), ""
            continue
        start = position
        while position < length and value[position] != ",":
            position += 1
        yield url, value[start:position].strip()


def parse_srcset(value: str, base: str) -> list[tuple[str, float]]:
    """(absolute URL, size) per srcset candidate; size is the width for ``w``, 1000*density for ``x``."""
    candidates = []
    for raw_url, descriptor in _srcset_items(value):
        url = absolute_url(raw_url, base)
        if url is None:
            continue
        size = 0.0
        token = descriptor.split()[0].lower() if descriptor else ""
        try:
            if token.endswith("w"):
                size = float(token[:-1])
            elif token.endswith("x"):
                size = 1000.0 * float(token[:-1])
        except ValueError:
            size = 0.0
        candidates.append((url, size))
    return candidates


def photo_key(url: str) -> str:
    """The URL with size markers removed: two sizes of one photo share a key."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in SIZE_QUERY_PARAMS]
    segments = [segment for segment in parts.path.split("/") if segment]
    kept = [segment for segment in segments[:-1] if not _SIZE_SEGMENT.match(segment)]
    last = segments[-1] if segments else ""
    stem = last.rsplit(".", 1)[0] if "." in last else last
    stem = _SIZE_SUFFIX.sub("", stem) or stem
    path = "/".join([*kept, stem]).lower()
    return f"{parts.netloc.lower()}/{path}?{urlencode(sorted(query))}"


def size_hint(url: str) -> float:
    """A width guessed from the URL (``?w=800``, ``_800x800``, ``-800w``), 0 when it says nothing."""
    parts = urlsplit(url)
    for key, value in parse_qsl(parts.query):
        if key.lower() in {"w", "width", "wid", "imwidth", "size", "sz"} and value.isdigit():
            return float(value)
    last = parts.path.rsplit("/", 1)[-1]
    stem = last.rsplit(".", 1)[0]
    suffix = _SIZE_SUFFIX.search(stem)
    if suffix:
        numbers = _NUMBER_IN_URL.findall(suffix.group(0))
        if numbers:
            return float(max(int(n) for n in numbers))
    return 0.0


def _words(*texts: str | None) -> set[str]:
    found: set[str] = set()
    for text in texts:
        if text:
            found.update(_WORDS.findall(text.lower()))
    return found


def looks_like_furniture(url: str) -> bool:
    """True for logos, icons, badges, favicons and the like, judged by the URL alone."""
    path = urlsplit(url).path.lower()
    if path.endswith((".svg", ".ico")):
        return True
    return bool(_words(path.rsplit("/", 1)[-1]) & NON_PRODUCT_WORDS)


def _in_non_product_region(element) -> bool:
    node = element
    while node is not None and isinstance(node.tag, str):
        if node.tag in NON_PRODUCT_REGIONS:
            return True
        if node.tag != "img" and _words(node.get("class"), node.get("id"), node.get("role")) & NON_PRODUCT_REGION_WORDS:
            return True
        node = node.getparent()
    return False


def _declared_too_small(element) -> bool:
    for attribute in ("width", "height"):
        value = (element.get(attribute) or "").strip().lower().removesuffix("px")
        if value.isdigit() and int(value) < MIN_PHOTO_PIXELS:
            return True
    return False


@dataclass
class ImageCandidate:
    url: str
    size: float
    group: int  # candidates of one element share a group id
    order: int


def dom_image_candidates(
    tree, base: str, *, selector_elements=None, rendered_sizes=None
) -> list[list[tuple[str, float]]]:
    """Per product-looking ``<img>``/``<picture>``: its URLs with sizes. ``selector_elements`` limits the search."""
    rendered_sizes = rendered_sizes or {}
    elements = selector_elements if selector_elements is not None else tree.iter("img")
    photos = []
    for element in elements:
        if not isinstance(element.tag, str):
            continue
        images = [element] if element.tag == "img" else list(element.iter("img"))
        for img in images:
            if selector_elements is None and (_in_non_product_region(img) or _declared_too_small(img)):
                continue
            if _words(img.get("alt"), img.get("class"), img.get("id")) & NON_PRODUCT_WORDS:
                continue
            urls: list[tuple[str, float]] = []
            sources = [img]
            picture = next(img.iterancestors("picture"), None)
            if picture is not None:
                # libxml2 does not know <source> is void and nests the <img> inside it: search the picture.
                sources = [*picture.iter("source"), img]
            for source in sources:
                for attribute in SRCSET_ATTRIBUTES:
                    if source.get(attribute):
                        urls.extend(parse_srcset(source.get(attribute), base))
            for attribute in ("src", *LAZY_ATTRIBUTES):
                url = absolute_url(img.get(attribute), base)
                if url:
                    urls.append((url, size_hint(url)))
            urls = [(url, size) for url, size in urls if not looks_like_furniture(url)]
            too_small = [url for url, _ in urls if 0 < max(rendered_sizes.get(url, (0, 0))) < MIN_PHOTO_PIXELS]
            if too_small:
                continue
            if urls:
                photos.append(urls)
    return photos


def select_photos(groups: Iterable[list[tuple[str, float]]]) -> list[str]:
    """One URL per photo, in first-seen order: the largest candidate of each group of same-photo URLs.

    Each input group holds URLs known to be one photo (one element); groups that share a photo key merge.
    """
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    candidates: list[ImageCandidate] = []
    by_key: dict[str, int] = {}
    for group_id, group in enumerate(groups):
        parent[group_id] = group_id
        for url, size in group:
            candidates.append(
                ImageCandidate(url=url, size=size or size_hint(url), group=group_id, order=len(candidates))
            )
            key = photo_key(url)
            if key in by_key:
                parent[find(group_id)] = find(by_key[key])
            else:
                by_key[key] = group_id
    best: dict[int, ImageCandidate] = {}
    first_seen: dict[int, int] = {}
    for candidate in candidates:
        root = find(candidate.group)
        first_seen.setdefault(root, candidate.order)
        current = best.get(root)
        if current is None or candidate.size > current.size:
            best[root] = candidate
    chosen = sorted(best.items(), key=lambda item: first_seen[item[0]])
    seen_urls: set[str] = set()
    result = []
    for _root, candidate in chosen:
        if candidate.url not in seen_urls:
            seen_urls.add(candidate.url)
            result.append(candidate.url)
    return result
