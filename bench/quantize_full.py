"""int8 for the full profile's two heaviest encoders on the CPU: SAM 2.1 hiera-tiny's image encoder and
Florence-2-base's DaViT vision tower, quantized by NNCF for OpenVINO; speed and agreement with f32 (issue 17).

No real Florence-2 or SAM 2 weights can be loaded here, so this runs the real-size architectures with random
weights (seeded, as bench/pipeline.py builds them). Random weights have none of the activation outliers that
trained transformers have, so agreement here is an upper bound on what real weights would keep: it tells
whether int8 is worth trying on the real checkpoints, not whether to ship it.

Calibration: the model inputs of 32 CC0 photos outside the demo catalog (bench/quantize_u2netp.py's split);
agreement on 6 demo photos, through bench/pipeline.py's agreement() (encoder map cosines, SAM 2 mask IoU,
Florence-2 vision feature and first-step logit cosines, greedy answers); f32 is OpenVINO f32, which matches
PyTorch fp32 (bench/README.md). Timings: seconds per photo of each encoder, f32 vs int8, best of 2.

    OMP_NUM_THREADS=2 python bench/quantize_full.py --threads 2      # about 10 minutes
    OMP_NUM_THREADS=2 python bench/quantize_full.py --threads 2 --precision bf16   # against bf16 graphs
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
CALIBRATION_PHOTOS = 32


def calibration_photos():
    from PIL import Image

    from bench.quantize_u2netp import split_photos

    calibration, _ = split_photos()
    return [Image.open(path).convert("RGB") for path in calibration[:CALIBRATION_PHOTOS]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--photos", type=int, default=6, help="demo photos for agreement")
    parser.add_argument(
        "--precision", default="f32", choices=["f32", "bf16"], help="hint of the reference graphs and int8's rest"
    )
    args = parser.parse_args()
    import nncf
    import torch

    torch.set_num_threads(args.threads)
    from bench.pipeline import agreement, best_of, build_openvino_stages, build_real_size_stages, demo_photos
    from search.pipeline.base import Box
    from search.pipeline.detectors import Florence2Detector
    from search.pipeline.full_openvino import Florence2Encoders, OpenVinoGraph
    from search.pipeline.segmenters import Sam2Segmenter, sam2_preprocess

    stages = build_real_size_stages(tokens=32)
    detector, segmenter, _ = stages
    with tempfile.TemporaryDirectory(prefix="bench-quantize-full-") as cache_dir:
        f32 = build_openvino_stages(stages, cache_dir, args.precision)
    f32_detector, f32_segmenter, f32_embedder = f32
    f32_detector.encoders = f32_detector.encoders.with_threads(args.threads)
    f32_segmenter.encoder = f32_segmenter.encoder.with_threads(args.threads)

    calibration = calibration_photos()
    sam_inputs = [sam2_preprocess(p, [Box.whole(p)], size=segmenter.input_size)[0][None] for p in calibration]
    processor = detector.processor
    vision_inputs = [
        processor(text=["<OD>"], images=[p], return_tensors="np")["pixel_values"].astype(np.float32)
        for p in calibration
    ]
    quantized = {}
    for name, graph, inputs in (
        ("SAM 2 image encoder", f32_segmenter.encoder, sam_inputs),
        ("Florence-2 vision tower", f32_detector.encoders.vision, vision_inputs),
    ):
        start = time.perf_counter()
        model = nncf.quantize(
            graph.model, nncf.Dataset(inputs), subset_size=len(inputs), model_type=nncf.ModelType.TRANSFORMER
        )
        quantized[name] = OpenVinoGraph(model, threads=args.threads, precision=args.precision, what=f"{name} (int8)")
        print(f"quantized {name} in {time.perf_counter() - start:.0f} s ({len(inputs)} calibration photos)")

    int8_segmenter = Sam2Segmenter(segmenter.model, encoder=quantized["SAM 2 image encoder"])
    int8_detector = Florence2Detector(
        f32_detector.model,  # the reference's decoder (bf16 under --precision bf16 on a bf16 CPU)
        processor,
        max_new_tokens=detector.max_new_tokens,
        num_beams=detector.num_beams,
        encoders=Florence2Encoders(quantized["Florence-2 vision tower"], f32_detector.encoders.text),
    )
    photos = demo_photos(args.photos)
    print(f"agreement: int8 (left, the rest {args.precision}) against torch fp32 (right)")
    agreement(stages, (int8_detector, int8_segmenter, f32_embedder), photos, tokens=32)

    photo = photos[0]
    sam_pixels = sam2_preprocess(photo, [Box.whole(photo)], size=segmenter.input_size)[0][None]
    vision_pixels = processor(text=["<OD>"], images=[photo], return_tensors="np")["pixel_values"].astype(np.float32)
    print(f"[cpu, {args.threads} threads] s/photo {args.precision} -> int8 (speed-up)")
    for name, pixels, reference in (
        ("SAM 2 image encoder", sam_pixels, f32_segmenter.encoder),
        ("Florence-2 vision tower", vision_pixels, f32_detector.encoders.vision),
    ):
        reference(pixels), quantized[name](pixels)  # warm
        slow = best_of(lambda graph=reference, x=pixels: graph(x), 2)
        fast = best_of(lambda graph=quantized[name], x=pixels: graph(x), 2)
        print(f"  {name:28s} {slow:7.3f} -> {fast:7.3f}  ({slow / fast:.2f}x)")
    box = [[Box.whole(photo)]]
    detector.num_beams = f32_detector.num_beams = int8_detector.num_beams = 1
    for name, slow_run, fast_run in (
        (
            "segment (whole stage)",
            lambda: f32_segmenter.segment([photo], box),
            lambda: int8_segmenter.segment([photo], box),
        ),
        ("detect, greedy (whole stage)", lambda: f32_detector.detect([photo]), lambda: int8_detector.detect([photo])),
    ):
        slow, fast = best_of(slow_run, 2), best_of(fast_run, 2)
        print(f"  {name:28s} {slow:7.3f} -> {fast:7.3f}  ({slow / fast:.2f}x)")


if __name__ == "__main__":
    main()
