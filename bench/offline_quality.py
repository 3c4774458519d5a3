"""Category precision@10 of the offline pipeline on the CC0 garment photos, before and after real masks.

What it measures: every photo of ../shared/datasets/clothing-cc0 (340, 17 categories, one product each)
goes through the offline stages in this process (no database). A photo's catalog entry is the vectors of
all its garments; the query is its largest garment (what /api/search/ searches by default). Photos are
ranked by their best garment's cosine similarity (exact search, numpy), the query photo left out;
precision@10 = share of the 10 nearest photos in the query's category, averaged over all 340 queries.

Variants (what the embedder sees, and how the feature map is pooled):
- ``whole photo``: the previous offline profile (whole-image detector, box mask): the "before" figure;
- ``salient mask, whole box``: U2-Net-p's mask over the whole photo, no detector;
- ``offline pipeline``: SalientDetector -> SalientSegmenter -> MaskCutter -> EfficientNet-Lite0, with
  the cutout background (white / gray / keep), padding, and GeM pooling varied.

    python bench/offline_quality.py            # about 5 minutes on 1 thread (U2-Net-p once per photo)
    python bench/offline_quality.py --threads 2 --limit 5   # 5 photos per category, quick look
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATASET = ROOT.parent / "shared" / "datasets" / "clothing-cc0"


def load_dataset(limit: int):
    rows = list(csv.DictReader((DATASET / "labels.csv").open()))
    per_category: dict[str, int] = defaultdict(int)
    chosen = []
    for row in rows:
        if limit and per_category[row["category"]] >= limit:
            continue
        per_category[row["category"]] += 1
        chosen.append((DATASET / row["file"], row["category"]))
    return chosen


def precision_at(query_vectors, catalog_vectors, owners, labels, k=10):
    """Mean share of same-category photos among each query photo's k nearest other photos."""
    labels = np.asarray(labels)
    owners = np.asarray(owners)
    similarity = query_vectors @ catalog_vectors.T  # (photos, garments)
    photos = len(labels)
    best = np.full((photos, photos), -np.inf, dtype=np.float32)
    for garment, owner in enumerate(owners):
        best[:, owner] = np.maximum(best[:, owner], similarity[:, garment])
    np.fill_diagonal(best, -np.inf)
    nearest = np.argsort(-best, axis=1)[:, :k]
    return float((labels[nearest] == labels[:, None]).mean())


def detect_garments(photos, threads: int, cache: str = "", runtime: str = "onnx"):
    """(SalientModel, boxes per photo): the offline detector without pose (no cc0 photo shows a person).
    Every U2-Net-p map stays in memory for the segmenter; ``cache``: an .npz that keeps them between runs
    (written once, then read), so a rerun iterates on the embedder side quickly."""
    from search.pipeline.offline import SalientDetector, SalientModel, shared_classifier

    salient = SalientModel.load(threads, runtime=runtime)
    salient._remember = len(photos) + 1
    path = Path(cache) if cache else None
    if path and path.is_file():
        saved = np.load(path)
        for index, photo in enumerate(photos):
            salient._recent[id(photo)] = (lambda p=photo: p, saved[f"m{index}"].astype(np.float32))
    detected = SalientDetector(salient, shared_classifier()).detect(photos)
    if path and not path.is_file():
        np.savez_compressed(path, **{f"m{i}": salient.saliency(p).astype(np.float16) for i, p in enumerate(photos)})
    return salient, detected


def embedder_inputs(photos, boxes_per_photo, masks_per_photo, cutter):
    """What the embedder sees for every garment (its cutout, or the photo when ``cutter`` is None), the photo
    each belongs to, and the rows of the queries (each photo's largest garment)."""
    inputs, owners, query_rows = [], [], []
    for index, (photo, boxes, masks) in enumerate(zip(photos, boxes_per_photo, masks_per_photo, strict=True)):
        largest = max(range(len(boxes)), key=lambda i: boxes[i].area)
        for position, (box, mask) in enumerate(zip(boxes, masks, strict=True)):
            if position == largest:
                query_rows.append(len(inputs))
            inputs.append(cutter.cut(photo, box, mask).embed_input if cutter else photo)
            owners.append(index)
    return inputs, owners, query_rows


def embed(model, images, pooling: str, batch: int = 16):
    import torch

    from search.pipeline.base import l2_normalize
    from search.pipeline.embedders import imagenet_batch

    chunks = []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            features = model.extract_features(torch.from_numpy(imagenet_batch(images[start : start + batch])))
            if pooling == "gem":
                pooled = features.clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3)
            else:
                pooled = features.mean(dim=(2, 3))
            chunks.append(pooled.float().numpy())
    return l2_normalize(np.concatenate(chunks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=0, help="photos per category (0 = all 20)")
    parser.add_argument("--only-new", action="store_true", help="only the last four rows (square padding)")
    parser.add_argument("--cache", default="", help="an .npz to keep U2-Net-p's maps in (written once, then read)")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import torch
    from PIL import Image

    from search.pipeline.base import Box
    from search.pipeline.cutout import MaskCutter
    from search.pipeline.embedders import EfficientNetLiteEmbedder
    from search.pipeline.offline import SalientSegmenter

    torch.set_num_threads(args.threads)
    data = load_dataset(args.limit)
    labels = [category for _, category in data]
    photos = [Image.open(path).convert("RGB") for path, _ in data]
    model = EfficientNetLiteEmbedder.load().model
    print(f"{len(photos)} photos, {len(set(labels))} categories, {args.threads} thread(s)")
    start = time.perf_counter()
    salient, detected = detect_garments(photos, args.threads, args.cache)
    segmenter = SalientSegmenter(salient)
    whole = [[Box.whole(photo)] for photo in photos]
    fallback = [boxes or whole[index] for index, boxes in enumerate(detected)]
    masks = segmenter.segment(photos, fallback)
    whole_masks = segmenter.segment(photos, whole)
    print(f"U2-Net-p + components + labels: {(time.perf_counter() - start) / len(photos):.3f} s/photo")
    counts = np.bincount([len(boxes) for boxes in detected])
    print("garments per photo:", {n: int(c) for n, c in enumerate(counts) if c})

    def score(boxes_per_photo, masks_per_photo, cutter, pooling="mean"):
        inputs, owners, query_rows = embedder_inputs(photos, boxes_per_photo, masks_per_photo, cutter)
        vectors = embed(model, inputs, pooling)
        return precision_at(vectors[query_rows], vectors, owners, labels)

    full_masks = [[Image.new("L", photo.size, 255)] for photo in photos]
    rows = [
        ("whole photo (before: whole-image detector, box mask)", whole, full_masks, None, "mean"),
        ("salient mask, whole box, white", whole, whole_masks, MaskCutter(background="white"), "mean"),
        ("offline pipeline, white, pad 0.02 (shipped)", fallback, masks, MaskCutter(background="white"), "mean"),
        ("offline pipeline, gray", fallback, masks, MaskCutter(background="gray"), "mean"),
        ("offline pipeline, keep background", fallback, masks, MaskCutter(background="keep"), "mean"),
        ("offline pipeline, white, pad 0.10", fallback, masks, MaskCutter(background="white", padding=0.10), "mean"),
        ("offline pipeline, white, GeM pooling", fallback, masks, MaskCutter(background="white"), "gem"),
        ("offline pipeline, white, square", fallback, masks, MaskCutter(background="white", square=True), "mean"),
        ("offline pipeline, white, square, pad 0.10", fallback, masks, MaskCutter(padding=0.10, square=True), "mean"),
        ("offline pipeline, white, square, GeM", fallback, masks, MaskCutter(square=True), "gem"),
        ("salient mask, whole box, white, square", whole, whole_masks, MaskCutter(square=True), "mean"),
    ]
    if args.only_new:
        rows = rows[-4:]
    print(f"{'embedder input':58s} P@10")
    for name, boxes, masks_here, cutter, pooling in rows:
        print(f"{name:58s} {score(boxes, masks_here, cutter, pooling):.3f}")


if __name__ == "__main__":
    main()
