"""Does int8 keep the offline embedder's results? EfficientNet-Lite0 quantized by NNCF for OpenVINO, measured.

Post-training static quantization (NNCF, a build tool only: `pip install nncf`) of the exported
EfficientNet-Lite0 graph the offline profile runs (features and ImageNet logits, from
LOOKALIKE_MODEL_CACHE_DIR), in three variants: int8 everywhere, the stem and block 0 kept float, the stem
and blocks 0-3 kept float (the head stays float in both, where it makes no difference).

Inputs are what the embedder sees in the pipeline: the square cutouts on white of every garment that the
offline detector and segmenter (U2-Net-p) find on the 340 CC0 photos. Calibration: the cutouts of the same 100
photos outside the demo catalog that calibrate U2-Net-p (bench/quantize_u2netp.py); the check runs on the
other 240 photos, which calibration never saw.

Agreement with fp32 (OpenVINO f32 on the same graph, the numbers ONNX Runtime gives): cosine of the centred
vectors as indexed, top-10 neighbour overlap among the held-out garments, ImageNet top-1 (the box
labeller's head), and category precision@10 of the held-out photos (query: largest garment, catalog: all
held-out garments, photos ranked by their best garment, itself left out); ms per image, batches of 16, 1 thread.

    python bench/quantize_efficientnet.py        # about 4 minutes on 1 thread
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # after ROOT: bench/search.py must not shadow the search app

from offline_quality import embedder_inputs, load_dataset, precision_at  # noqa: E402
from quantize_u2netp import split_photos  # noqa: E402  (the calibration / held-out split of U2-Net-p)

HEAD = ["/_conv_head/Conv/WithoutBiases", "/_fc/Gemm/WithoutBiases"]
STEM = ["/_conv_stem/Conv/WithoutBiases"]


def block(index: int) -> list[str]:
    """Its convolutions (block 0 has no expand convolution, so names are matched leniently)."""
    return [f"/_blocks.{index}/_{part}_conv/Conv/WithoutBiases" for part in ("expand", "depthwise", "project")]


VARIANTS = {
    "int8 everywhere": [],
    "float stem + block 0": HEAD + STEM + block(0),
    "float stem + blocks 0-3": HEAD + STEM + [name for index in range(4) for name in block(index)],
}


def run(compiled, batches) -> tuple[np.ndarray, np.ndarray, float]:
    request = compiled.create_infer_request()
    request.infer([batches[0]])  # warm
    start = time.perf_counter()
    outputs = [request.infer([batch]) for batch in batches]
    seconds = time.perf_counter() - start
    features = np.concatenate([out[compiled.output("features")] for out in outputs])
    logits = np.concatenate([out[compiled.output("logits")] for out in outputs])
    return features, logits, seconds


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import nncf
    import openvino as ov
    from django.conf import settings
    from PIL import Image

    from search.pipeline.base import Box, l2_normalize
    from search.pipeline.cutout import MaskCutter
    from search.pipeline.embedders import GARMENT_MEAN_FILE, imagenet_batch
    from search.pipeline.offline import SalientDetector, SalientSegmenter, shared_classifier, shared_salient_model
    from search.pipeline.onnx_runtime import efficientnet_lite0_onnx_path

    calibration_files, _ = split_photos()
    calibration_names = {path.name for path in calibration_files}
    data = load_dataset(0)
    photos = [Image.open(path).convert("RGB") for path, _ in data]
    start = time.perf_counter()
    salient = shared_salient_model(1)
    salient._remember = len(photos) + 1
    detected = SalientDetector(salient, shared_classifier()).detect(photos)
    boxes = [found or [Box.whole(photo)] for found, photo in zip(detected, photos, strict=True)]
    masks = SalientSegmenter(salient).segment(photos, boxes)
    inputs, owners, queries = embedder_inputs(photos, boxes, masks, MaskCutter(square=True))
    seconds = time.perf_counter() - start
    print(f"{len(photos)} photos, {len(inputs)} garment cutouts ({salient.runtime} masks) in {seconds:.0f} s")

    calibrate = [i for i, owner in enumerate(owners) if data[owner][0].name in calibration_names]
    check = [i for i, owner in enumerate(owners) if data[owner][0].name not in calibration_names]
    held_photos = sorted({owners[i] for i in check})
    position = {photo: n for n, photo in enumerate(held_photos)}
    held_owners = [position[owners[i]] for i in check]
    held_queries = [check.index(row) for row in queries if owners[row] in position]
    held_labels = [data[photo][1] for photo in held_photos]
    batches = [imagenet_batch([inputs[i] for i in check[s : s + 16]]) for s in range(0, len(check), 16)]
    center = np.load(GARMENT_MEAN_FILE).astype(np.float32).ravel()

    def indexed(features: np.ndarray) -> np.ndarray:
        return l2_normalize(l2_normalize(features) - center)

    def nearest(vectors: np.ndarray) -> np.ndarray:
        similarity = vectors @ vectors.T
        np.fill_diagonal(similarity, -np.inf)
        return np.argsort(-similarity, axis=1)[:, :10]

    source = efficientnet_lite0_onnx_path(settings.LOOKALIKE_MODEL_CACHE_DIR)
    core = ov.Core()
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1, "ENABLE_CPU_PINNING": False}
    features, logits, seconds = run(core.compile_model(str(source), "CPU", config), batches)
    reference = indexed(features)
    reference_nearest = nearest(reference)
    reference_p10 = precision_at(reference[held_queries], reference, held_owners, held_labels)
    print(
        f"{len(check)} held-out cutouts of {len(held_photos)} photos; calibration {len(calibrate)} cutouts of "
        f"{len(calibration_files)} photos"
    )
    print(f"{'fp32':26s} {1000 * seconds / len(check):5.1f} ms/image  P@10 {reference_p10:.3f}")
    dataset = nncf.Dataset([imagenet_batch([inputs[i]]) for i in calibrate])
    for name, float_nodes in VARIANTS.items():
        model = core.read_model(str(source))
        ignored = nncf.IgnoredScope(names=float_nodes, validate=False)
        quantized = nncf.quantize(model, dataset, subset_size=len(calibrate), ignored_scope=ignored)
        q_features, q_logits, q_seconds = run(core.compile_model(quantized, "CPU", config), batches)
        vectors = indexed(q_features)
        cosine = (vectors * reference).sum(axis=1)
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(nearest(vectors), reference_nearest, strict=True)])
        top1 = np.mean(q_logits.argmax(axis=1) == logits.argmax(axis=1))
        p10 = precision_at(vectors[held_queries], vectors, held_owners, held_labels)
        print(
            f"{name:26s} {1000 * q_seconds / len(check):5.1f} ms/image ({seconds / q_seconds:.2f}x)  P@10 {p10:.3f}  "
            f"cosine min {cosine.min():.4f} mean {cosine.mean():.4f}  top-10 overlap {overlap:.3f}  "
            f"ImageNet top-1 same {top1:.3f}"
        )


if __name__ == "__main__":
    main()
