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
    # promotion and advertising blocks
    "promo",
    "promotion",
    "promotions",
    "campaign",
    "announcement",
    "advert",
    "advertisement",
    "banner",
    "marketing",
    "sponsored",
    "similar",
}
LAZY_ATTRIBUTES = (
    "data-src",
    "data-lazy-src",
    "data-original",
    "data-lazy",
    "data-zoom-image",
    "data-large-image",
    "data-zoom",
    "data-zoom-src",
    "data-full-src",
    "data-hires",
)
IMAGE_FILE = re.compile(r"\.(?:jpe?g|png|webp|avif|gif)$", re.IGNORECASE)
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
    # Salesforce Commerce (sw/sh/sm/sfrm), Akamai (imwidth/imheight/impolicy), ImageKit (tr), Adobe (op_sharpen)
    "sw",
    "sh",
    "sm",
    "sfrm",
    "imheight",
    "impolicy",
    "tr",
    "bgcolor",
    "op_sharpen",
    "odnwidth",
    "odnheight",
    "odnbg",
}
_SIZE_SUFFIX = re.compile(
    r"(?:[-_@.](?:\d{2,5}x\d{0,5}|x\d{2,5}|\d{2,5}w|\d(?:\.\d)?x|crop_[a-z]+|"
    r"large|medium|small|thumb|thumbnail|grande|compact|master|original|zoom|big|mini|tiny|retina|hd))+$",
    re.IGNORECASE,
)
_SIZE_SEGMENT = re.compile(
    r"^(?:\d{2,5}x\d{0,5}|x\d{2,5}|[a-z]{1,3}_[^/,]+(?:,[a-z]{1,3}_[^/,]+)*|v\d{6,}|"
    r"(?:(?:width|height|w|h|quality|q|fit|format|f|dpr|sharpen|onerror)=[^/,]+,?)+)$",
    re.IGNORECASE,
)
# A path segment that names a dimension and the next segment that gives it: /w/1920/, /resize/800/.
_SIZE_SEGMENT_NAMES = {"w", "h", "width", "height", "resize", "size", "fit", "q"}
# A file whose whole name is a size: marketplace photos such as .../g/ABC/s-l1600.jpg.
_SIZE_ONLY_STEM = re.compile(r"^(?:s-l\d{2,5}|\d{2,5}x\d{0,5}|l\d{2,5}|large|medium|small|thumb|original|zoom)$", re.I)
# A size at the start of the file name: marketplace photos such as il_794xN.5521093341_k3x9.jpg.
_SIZE_PREFIX = re.compile(r"^(?P<kind>[a-z]{1,3}_)?(?:\d{2,5}x(?:\d{1,5}|n)?|fullxfull)(?=[._-])", re.IGNORECASE)
# A cache folder named by a hash of the resize options: Magento's /cache/<32 hex>/.
_HASH_SEGMENT = re.compile(r"^[0-9a-f]{16,64}$", re.IGNORECASE)
# Image presets of Adobe Scene7 and the like: ?$pdp_large$.
_PRESET = re.compile(r"^\$[^$]*\$$")
# Image optimizers that carry the original URL in a parameter (Next.js /_next/image?url=...).
OPTIMIZER_URL_PARAMS = ("url", "src", "image")
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


def _unwrapped(url: str) -> str:
    """The original photo URL behind an image optimizer URL (``/_next/image?url=...``), else ``url``."""
    parts = urlsplit(url)
    if "/_next/image" in parts.path or parts.path.rstrip("/").endswith(("/_ipx", "/image", "/_image")):
        for key, value in parse_qsl(parts.query):
            if key.lower() in OPTIMIZER_URL_PARAMS and value:
                inner = absolute_url(value, url)
                if inner:
                    return inner
    return url


def _kept_segments(segments: list[str]) -> list[str]:
    kept: list[str] = []
    skip_next = False
    for index, segment in enumerate(segments):
        lowered = segment.lower()
        if skip_next:
            skip_next = False
            continue
        if lowered in _SIZE_SEGMENT_NAMES and index + 1 < len(segments) and segments[index + 1].isdigit():
            skip_next = True
            continue
        if _SIZE_SEGMENT.match(segment) or _PRESET.match(segment):
            continue
        if _HASH_SEGMENT.match(segment) and index > 0 and segments[index - 1].lower() == "cache":
            continue
        if lowered == "cdn-cgi" and index + 1 < len(segments) and segments[index + 1].lower() == "image":
            skip_next = True  # Cloudflare's /cdn-cgi/image/<options>/<path>: the options segment follows
            continue
        kept.append(segment)
    return kept


def photo_key(url: str) -> str:
    """The URL with size markers removed: two sizes of one photo share a key."""
    parts = urlsplit(_unwrapped(url))
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in SIZE_QUERY_PARAMS and not _PRESET.match(k)
    ]
    segments = [segment for segment in parts.path.split("/") if segment]
    kept = _kept_segments(segments[:-1])
    last = segments[-1] if segments else ""
    stem = last.rsplit(".", 1)[0] if "." in last else last
    stem = stem.split("$", 1)[0] or stem  # Scene7 presets written into the path: name$zoom$
    if _SIZE_ONLY_STEM.match(stem):
        stem = "*"
    else:
        stem = _SIZE_PREFIX.sub(r"\g<kind>", stem) or stem
        stem = _SIZE_SUFFIX.sub("", stem) or stem
    path = "/".join([*kept, stem]).lower()
    return f"{parts.netloc.lower()}/{path}?{urlencode(sorted(query))}"


def loose_photo_key(url: str) -> str | None:
    """The photo's key without its host and leading folders (the last folder and the file name, sizes removed).

    Shops serve one photo from several hosts (``cdn.shopify.com/s/files/1/0456/files/coat.jpg`` and
    ``shop.example/cdn/shop/files/coat.jpg``); None when what is left is too short to tell photos apart.
    """
    host_and_path, _, query = photo_key(url).partition("?")
    tail = "/".join(host_and_path.split("/")[1:][-2:])
    return f"{tail}?{query}" if len(re.sub(r"[^a-z0-9]", "", tail)) >= 8 else None


def size_hint(url: str) -> float:
    """A width guessed from the URL (``?w=800``, ``_800x800``, ``-800w``), 0 when it says nothing."""
    parts = urlsplit(url)
    for key, value in parse_qsl(parts.query):
        if key.lower() in {"w", "width", "wid", "imwidth", "size", "sz", "sw"} and value.isdigit():
            return float(value)
    segments = parts.path.split("/")
    for name, value in zip(segments, segments[1:], strict=False):
        if name.lower() in {"w", "width", "resize", "size"} and value.isdigit():
            return float(value)
    last = segments[-1]
    stem = last.rsplit(".", 1)[0]
    marketplace = re.match(r"^s-l(\d{2,5})$", stem, re.IGNORECASE)
    if marketplace:
        return float(marketplace.group(1))
    prefix = re.match(r"^(?:[a-z]{1,3}_)?(?:(\d{2,5})x|(fullxfull))", stem, re.IGNORECASE)
    if prefix:
        return float(prefix.group(1)) if prefix.group(1) else 10000.0
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


def page_wrappers(tree) -> set:
    """Elements that wrap the main product (``<html>``, ``<body>``, the ancestors of the main title).

    Their class words (``nav-open``, ``cookies-accepted``, ``header-sticky``) describe the page's state or
    layout, not a region of site furniture: judged by them, a whole gallery would be dropped.
    """
    wrappers = set(tree.xpath("/html | /html/body"))
    title = next(iter(tree.xpath("//h1[normalize-space()]")), None)
    if title is not None:
        wrappers.update(title.iterancestors())
    return wrappers


def _in_non_product_region(element, wrappers=frozenset()) -> bool:
    node = element
    while node is not None and isinstance(node.tag, str):
        if node in wrappers:
            node = node.getparent()
            continue
        if node.tag in NON_PRODUCT_REGIONS:
            return True
        if node.tag != "img" and _words(node.get("class"), node.get("id"), node.get("role")) & NON_PRODUCT_REGION_WORDS:
            return True
        node = node.getparent()
    return False


def links_elsewhere(element, base: str, page_url: str | None) -> bool:
    """True for an image inside a link to another page of the shop: a tile of another product or colourway.

    Links to an image file (a zoom link) or to this very page (the current colour's swatch) do not count.
    """
    if not page_url:
        return False
    link = next(element.iterancestors("a"), None)
    href = link.get("href") if link is not None else None
    if not href or href.strip().startswith(("#", "javascript:")):
        return False
    target = absolute_url(href, base)
    if target is None:
        return False
    if IMAGE_FILE.search(urlsplit(target).path):
        return False
    same = urlsplit(target)._replace(fragment="").geturl().rstrip("/")
    return same != urlsplit(page_url)._replace(fragment="").geturl().rstrip("/")


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


def _zoom_link(img, base: str) -> str | None:
    link = next(img.iterancestors("a"), None)
    url = absolute_url(link.get("href"), base) if link is not None else None
    return url if url and IMAGE_FILE.search(urlsplit(url).path) else None


def dom_image_elements(
    tree, base: str, *, selector_elements=None, rendered_sizes=None, page_url: str | None = None
) -> list[tuple[object, list[tuple[str, float]]]]:
    """(``<img>`` element, its URLs with sizes) per product-looking image; ``selector_elements`` limits the search.

    With ``page_url``, images inside links to other pages (other products, other colourways) are left out.
    """
    rendered_sizes = rendered_sizes or {}
    elements = selector_elements if selector_elements is not None else tree.iter("img")
    wrappers = page_wrappers(tree) if selector_elements is None else frozenset()
    photos = []
    for element in elements:
        if not isinstance(element.tag, str):
            continue
        images = [element] if element.tag == "img" else list(element.iter("img"))
        for img in images:
            if selector_elements is None and (_in_non_product_region(img, wrappers) or _declared_too_small(img)):
                continue
            if selector_elements is None and links_elsewhere(img, base, page_url):
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
            zoom = _zoom_link(img, base)
            if zoom and urls:
                # A link from the photo to an image file is its full-size version.
                urls.append((zoom, size_hint(zoom) or max(size for _, size in urls) + 1))
            urls = [(url, size) for url, size in urls if not looks_like_furniture(url)]
            too_small = [url for url, _ in urls if 0 < max(rendered_sizes.get(url, (0, 0))) < MIN_PHOTO_PIXELS]
            if too_small:
                continue
            if urls:
                photos.append((img, urls))
    return photos


def dom_image_candidates(
    tree, base: str, *, selector_elements=None, rendered_sizes=None, page_url: str | None = None
) -> list[list[tuple[str, float]]]:
    """Per product-looking ``<img>``/``<picture>``: its URLs with sizes. ``selector_elements`` limits the search."""
    return [
        urls
        for _img, urls in dom_image_elements(
            tree, base, selector_elements=selector_elements, rendered_sizes=rendered_sizes, page_url=page_url
        )
    ]


def gallery_region(photos: list[tuple[object, list[tuple[str, float]]]], known_keys: set[str], title=None):
    """The element holding the product's gallery: around the page images that show structured-data photos.

    Several matches: their nearest common ancestor. One match: its nearest ancestor holding another photo,
    but never one that also holds the main title (that would be the whole product section). None: no match.
    """
    matched = [
        img
        for img, urls in photos
        if any(photo_key(url) in known_keys or loose_photo_key(url) in known_keys for url, _ in urls)
    ]
    if not matched:
        return None
    if len(matched) > 1:
        common = list(matched[0].iterancestors())
        for img in matched[1:]:
            ancestors = set(img.iterancestors())
            common = [node for node in common if node in ancestors]
        return common[0] if common else None
    others = [img for img, _ in photos if img is not matched[0]]
    region = matched[0].getparent()
    while region is not None:
        parent = region.getparent()
        if any(region in img.iterancestors() for img in others):
            return region
        if parent is None or (title is not None and title in parent.iterdescendants()):
            return region
        region = parent
    return matched[0].getparent()


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
            for key in (photo_key(url), loose_photo_key(url)):
                if key is None:
                    continue
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
