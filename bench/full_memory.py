"""Peak memory of one worker process holding the full profile, by ``LOOKALIKE_FULL_RUNTIME`` (issue 17).

Usage: python bench/full_memory.py [--threads 2]

Each mode runs in a fresh process: it builds the real-size architectures with random weights (seeded, as
bench/pipeline.py does: Florence-2-base, SAM 2.1 hiera-tiny, CLIP ViT-B/32), puts the encoders in OpenVINO the
way the app does (convert or read the cache, then drop the torch copies of what OpenVINO now runs), pushes
two demo photos through detect -> segment -> cutout -> embed, and prints its peak RSS (ru_maxrss).

Modes: ``torch``; ``openvino, first start`` (an empty cache folder: the one-time conversion); ``openvino,
later starts`` (the cache that the first start wrote).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def child(runtime: str, cache_dir: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from bench.pipeline import build_real_size_stages, demo_photos
    from search.pipeline import full_openvino
    from search.pipeline.cutout import MaskCutter
    from search.pipeline.detectors import florence2_image_size
    from search.pipeline.runner import Pipeline

    started = time.perf_counter()
    detector, segmenter, embedder = build_real_size_stages(tokens=32)
    if runtime == "openvino":
        detector.encoders = full_openvino.Florence2Encoders.load(
            detector.model, cache_dir, image_size=florence2_image_size(detector.processor), threads=threads
        )
        full_openvino.release(detector.model.model, "vision_tower", "multi_modal_projector")
        segmenter.encoder = full_openvino.sam2_image_encoder(segmenter.model, cache_dir, threads=threads)
        full_openvino.release(segmenter.model, "vision_encoder")
        embedder.image_session = full_openvino.clip_image_tower(embedder.model, cache_dir, threads=threads)
        full_openvino.release(embedder.model, "vision_model", "visual_projection")
    loaded = time.perf_counter() - started
    pipeline = Pipeline(detector, segmenter, MaskCutter(), embedder, max_side=1600, profile="bench")
    garments = sum(len(found) for found in pipeline.process(demo_photos(2)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{runtime:>8}: models ready in {loaded:6.1f} s, {garments} garments, peak RSS {peak:7.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=["torch", "openvino"], help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.cache_dir, args.threads)
        return
    with tempfile.TemporaryDirectory(prefix="bench-full-memory-") as cache_dir:
        for label, runtime in (
            ("torch", "torch"),
            ("openvino, first start", "openvino"),
            ("openvino, later", "openvino"),
        ):
            print(f"[{label}]", flush=True)
            command = [
                sys.executable,
                __file__,
                "--child",
                runtime,
                "--cache-dir",
                cache_dir,
                "--threads",
                str(args.threads),
            ]
            subprocess.run(command, check=True, cwd=REPO_ROOT)


if __name__ == "__main__":
    main()
