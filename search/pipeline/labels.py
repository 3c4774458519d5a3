"""Detector labels -> our garment categories, shared by every detector and the pipeline settings.

Kept apart from the detectors so that settings (``PipelineConfig``) and any detector can use the map
without importing each other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Florence-2 (COCO/Objects365/OpenImages-style) labels -> our garment categories. Anything not listed
# (person, man, chair, ...) is not a garment and is dropped. LOOKALIKE_LABEL_MAP (JSON) adds to or
# overrides this; mapping a label to null or "" drops it.
_LABELS_PER_CATEGORY: dict[str, tuple[str, ...]] = {
    "dress": ("dress", "gown", "sundress", "wedding dress"),
    "shirt": ("shirt", "blouse", "dress shirt", "polo shirt", "polo"),
    "t-shirt": ("t-shirt", "t shirt", "tshirt", "tee", "jersey"),
    "top": ("top", "tank top", "crop top", "vest", "camisole", "bodysuit"),
    "sweater": ("sweater", "jumper", "cardigan", "hoodie", "sweatshirt", "pullover"),
    "pants": ("pants", "trousers", "jeans", "leggings", "slacks", "sweatpants", "joggers", "tights"),
    "jacket": ("jacket", "coat", "blazer", "suit", "parka", "raincoat", "fur coat", "outerwear", "windbreaker"),
    "skirt": ("skirt", "miniskirt"),
    "shorts": ("shorts",),
    "swimwear": ("swimwear", "swimsuit", "bikini"),
    "shoes": ("shoe", "footwear", "sneaker", "boot", "high heels", "sandal", "slipper", "loafer"),
    "bag": ("bag", "handbag", "purse", "backpack", "tote bag", "clutch", "briefcase", "luggage and bags", "wallet"),
    "hat": ("hat", "cap", "baseball cap", "sun hat", "cowboy hat", "fedora", "beanie"),
    "accessory": ("fashion accessory",),
    "scarf": ("scarf",),
    "tie": ("tie",),
    "belt": ("belt",),
    "gloves": ("glove",),
    "eyewear": ("sunglasses", "glasses", "goggles"),
}
DEFAULT_LABEL_MAP: dict[str, str] = {
    label: category for category, labels in _LABELS_PER_CATEGORY.items() for label in labels
}


def normalize_label(label: str, label_map: Mapping[str, str | None]) -> str | None:
    """Our category for a free-text detector label, or None when it is not a garment.

    Tries the phrase, then its singular, then its last word ("red dress" -> dress, "boots" -> boot).
    """
    phrase = " ".join(re.sub(r"[^a-z0-9\- ]+", " ", label.lower()).split())
    if not phrase:
        return None
    words = phrase.split()
    candidates = [phrase, words[-1]] if len(words) > 1 else [phrase]
    for candidate in candidates:
        for form in (candidate, candidate.removesuffix("es"), candidate.removesuffix("s")):
            if form in label_map:
                return label_map[form] or None
    return None


def merge_label_map(overrides: Mapping[str, str | None] | None) -> dict[str, str | None]:
    merged: dict[str, str | None] = dict(DEFAULT_LABEL_MAP)
    for key, value in (overrides or {}).items():
        merged[" ".join(key.lower().split())] = value or None
    return merged
