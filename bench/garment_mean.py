"""Fits the offline embedder's garment mean (search/pipeline/data/efficientnet_lite0_garment_mean.npy) and
measures what centring and square cutouts do to category precision@10 on the CC0 garment photos.

Why: EfficientNet-Lite0's pooled features are non-negative, so all garments share a large common direction
and every cosine is high; subtracting the mean garment vector (then normalising again) spreads them.

Protocol (the same as bench/offline_quality.py): every photo of ../shared/datasets/clothing-cc0 (340,
17 categories) goes through the offline stages (U2-Net-p detector and segmenter, MaskCutter on white,
EfficientNet-Lite0); its largest garment is the query, photos ranked by their best garment, itself left out.
The mean is fitted ONLY on the 102 demo photos (catalog/demo/images, a subset of the 340), so the figures
on the other 238 photos are held out; the 340-photo figures include the fitting photos.

    python bench/garment_mean.py --cache /tmp/sal.npz           # ~5 min on 1 thread; writes the .npy
    python bench/garment_mean.py --cache /tmp/sal.npz --no-write  # figures only
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # after ROOT: bench/search.py must not shadow the search app

from offline_quality import detect_garments, embedder_inputs, load_dataset, precision_at  # noqa: E402


def subset(vectors, owners, queries, labels, photos):
    """The rows of ``photos`` only, renumbered: (vectors, owners, query rows, labels)."""
    keep = {photo: new for new, photo in enumerate(photos)}
    rows = [row for row, owner in enumerate(owners) if owner in keep]
    position = {row: new for new, row in enumerate(rows)}
    return (
        vectors[rows],
        [keep[owners[row]] for row in rows],
        [position[row] for row in queries if owners[row] in keep],
        [labels[photo] for photo in photos],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", default="", help="an .npz to keep U2-Net-p's maps in (written once, then read)")
    parser.add_argument("--no-write", action="store_true", help="print the figures, leave the bundled file alone")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import torch
    from PIL import Image

    from search.pipeline.base import Box, l2_normalize
    from search.pipeline.cutout import MaskCutter
    from search.pipeline.embedders import GARMENT_MEAN_FILE, EfficientNetLiteEmbedder
    from search.pipeline.offline import SalientSegmenter

    torch.set_num_threads(args.threads)
    data = load_dataset(0)
    labels = [category for _, category in data]
    demo_files = {path.name for path in (ROOT / "catalog" / "demo" / "images").glob("*.jpg")}
    demo = [index for index, (path, _) in enumerate(data) if path.name in demo_files]
    demo_set = set(demo)
    held_out = [index for index in range(len(data)) if index not in demo_set]
    photos = [Image.open(path).convert("RGB") for path, _ in data]
    embedder = EfficientNetLiteEmbedder.load(runtime="torch")  # uncentred: the mean is fitted on these
    start = time.perf_counter()
    salient, detected = detect_garments(photos, args.threads, args.cache)
    boxes = [found or [Box.whole(photo)] for found, photo in zip(detected, photos, strict=True)]
    masks = SalientSegmenter(salient).segment(photos, boxes)
    seconds = time.perf_counter() - start
    print(f"{len(photos)} photos ({len(demo)} demo, {len(held_out)} held out); detect {seconds:.0f} s")

    print(f"{'cutout':8s} {'centre':12s} {'P@10 held-out 238':>18s} {'P@10 all 340':>13s}")
    shipped_mean = None
    for square in (False, True):
        inputs, owners, queries = embedder_inputs(photos, boxes, masks, MaskCutter(square=square))
        vectors = embedder.embed_images(inputs)
        mean = vectors[[row for row, owner in enumerate(owners) if owner in demo_set]].mean(axis=0)
        if square:
            shipped_mean = mean
        for centre_name, centred in (("none", vectors), ("demo mean", l2_normalize(vectors - mean))):
            held = subset(centred, owners, queries, labels, held_out)
            held_p = precision_at(held[0][held[2]], held[0], held[1], held[3])
            all_p = precision_at(centred[queries], centred, owners, labels)
            print(f"{'square' if square else 'tight':8s} {centre_name:12s} {held_p:18.3f} {all_p:13.3f}")
    if not args.no_write:
        GARMENT_MEAN_FILE.parent.mkdir(parents=True, exist_ok=True)
        np.save(GARMENT_MEAN_FILE, shipped_mean.astype(np.float32))
        print(f"wrote {GARMENT_MEAN_FILE.relative_to(ROOT)} (mean of the demo photos' square cutouts)")


if __name__ == "__main__":
    main()
