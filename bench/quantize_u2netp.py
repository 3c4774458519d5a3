"""Builds search/pipeline/models/u2netp-int8.{xml,bin}: U²-Net-p quantized to int8 for OpenVINO, and checks it.

Post-training static quantization with NNCF (a build tool only: `pip install nncf`; the runtime needs just
openvino). Calibration: 100 CC0 photos of ../shared/datasets/clothing-cc0 that are not in the demo catalog
(every other one of them); the check runs on the rest of the dataset (the demo catalog's photos included),
which calibration never saw.

Two convolutions stay in float: plain int8 everywhere lost too much (mask IoU to fp32 mean .87), and NNCF's
``quantize_with_accuracy_control`` (max mask-IoU drop .03) found these two, the last decoder stages before
the side outputs are fused, as the ones that carry the loss.

Agreement with the shipped fp32 ONNX model (ONNX Runtime), on the held-out photos: mask IoU at the
pipeline's threshold (mean, median, 10th percentile, min, share >= .90), and seconds per photo of each.

    python bench/quantize_u2netp.py               # quantize, save, check (about 4 minutes)
    python bench/quantize_u2netp.py --check-only  # check the saved model
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CC0 = ROOT.parent / "shared" / "datasets" / "clothing-cc0"
FLOAT_CONVOLUTIONS = ["Conv_787/WithoutBiases", "Conv_685/WithoutBiases"]
CALIBRATION_PHOTOS = 100


def split_photos() -> tuple[list[Path], list[Path]]:
    """(calibration, held out): calibration never includes a demo catalog photo."""
    demo = {Path(p["images"][0]).name for p in json.loads((ROOT / "catalog/demo/products.json").read_text())}
    with (CC0 / "labels.csv").open() as handle:
        files = [CC0 / row["file"] for row in csv.DictReader(handle)]
    outside = [path for path in files if path.name not in demo]
    calibration = outside[::2][:CALIBRATION_PHOTOS]
    chosen = set(calibration)
    return calibration, [path for path in files if path not in chosen]


def pixels(path: Path) -> np.ndarray:
    from PIL import Image

    from search.pipeline.offline import u2netp_input

    return u2netp_input(Image.open(path).convert("RGB"))


def quantize(calibration: list[Path], target: Path) -> None:
    import nncf
    import openvino as ov

    from search.pipeline.offline import u2netp_model_path

    model = ov.Core().read_model(str(u2netp_model_path()))
    dataset = nncf.Dataset([pixels(path) for path in calibration])
    quantized = nncf.quantize(
        model,
        dataset,
        subset_size=len(calibration),
        ignored_scope=nncf.IgnoredScope(names=FLOAT_CONVOLUTIONS),
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(target))
    size = target.stat().st_size + target.with_suffix(".bin").stat().st_size
    print(f"saved {target.relative_to(ROOT)} ({size / 1e6:.2f} MB)")


def check(held_out: list[Path]) -> None:
    from PIL import Image

    from search.pipeline.offline import SALIENT_THRESHOLD, SalientModel

    fp32, int8 = SalientModel.load(1, "onnx"), SalientModel.load(1, "openvino-int8")
    photos = [Image.open(path).convert("RGB") for path in held_out]
    ious, seconds = [], {"onnx": 0.0, "openvino-int8": 0.0}
    for photo in photos:
        masks = []
        for name, model in (("onnx", fp32), ("openvino-int8", int8)):
            start = time.perf_counter()
            masks.append(model._run(photo) >= SALIENT_THRESHOLD)
            seconds[name] += time.perf_counter() - start
        union = np.logical_or(*masks).sum()
        ious.append(np.logical_and(*masks).sum() / union if union else 1.0)
    ious = np.array(ious)
    print(
        f"int8 vs fp32 mask IoU on {len(photos)} held-out photos: mean {ious.mean():.4f}, "
        f"median {np.median(ious):.4f}, p10 {np.percentile(ious, 10):.4f}, min {ious.min():.4f}, "
        f">= .90 {np.mean(ious >= 0.9):.3f}"
    )
    print(
        f"1 thread, ms/photo: onnx fp32 {1000 * seconds['onnx'] / len(photos):.0f}, "
        f"openvino int8 {1000 * seconds['openvino-int8'] / len(photos):.0f} "
        f"({seconds['onnx'] / seconds['openvino-int8']:.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check-only", action="store_true", help="check the saved model, do not quantize")
    args = parser.parse_args()
    from search.pipeline.offline import u2netp_int8_path

    calibration, held_out = split_photos()
    if not args.check_only:
        quantize(calibration, u2netp_int8_path())
    check(held_out)


if __name__ == "__main__":
    main()
