"""Peak memory of one worker process holding the full profile, by ``LOOKALIKE_FULL_RUNTIME`` (issue 17).

Usage: python bench/full_memory.py [--threads 2]

The real-size architectures with random weights (seeded, as bench/pipeline.py builds them: Florence-2-base,
SAM 2.1 hiera-tiny, CLIP ViT-B/32) are saved once into model folders; each mode then runs in a fresh
process that builds its pipeline from those folders exactly as a worker does (``build_pipeline`` of a
full-profile PipelineConfig: the stages' ``from_config``, CLIP's text tower in ONNX Runtime as ``auto``
picks on the CPU, OpenVINO's conversion or cache read, the torch copies released), pushes two demo photos
through detect -> segment -> cutout -> embed, and prints:

- peak RSS (ru_maxrss): every resident page, including the OpenVINO IR weight files that are mapped
  read-only (file-backed: shared between workers that map the same file, and reclaimable);
- peak anonymous memory (RssAnon, sampled every 5 ms): the process's own heap, which nothing else shares;
- file-backed resident memory at the end (RssFile).

Modes: ``torch``; ``openvino, first start`` (an empty cache folder: the one-time conversion); ``openvino,
later`` (the cache that the first start wrote). ``--openvino openvino-bf16`` runs the two OpenVINO modes with
the bf16 precision hint (bf16 graphs on a CPU with AVX-512 BF16 or AMX).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def memory_status() -> dict[str, float]:
    """RssAnon and RssFile of this process, in MB (Linux /proc)."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("RssAnon:", "RssFile:")):
                name, value = line.split(":")
                fields[name] = int(value.split()[0]) / 1024
    return fields


class PeakAnon:
    """The highest RssAnon seen while running (a sampling thread: ru_maxrss has no anonymous-only twin)."""

    def __init__(self, interval: float = 0.005):
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        self._thread.start()

    def _sample(self, interval: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, memory_status()["RssAnon"])
            time.sleep(interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, memory_status()["RssAnon"])


def save_models(folder: Path) -> None:
    """The real-size random-weight stages of bench/pipeline.py, saved as model folders (weights + processors)."""
    from bench.pipeline import build_real_size_stages

    detector, segmenter, embedder = build_real_size_stages(tokens=32)  # 32 new tokens pinned (min_new_tokens)
    for name, model, processor in (
        ("detector", detector.model, detector.processor),
        ("segmenter", segmenter.model, None),
        ("embedder", embedder.model, embedder.processor),
    ):
        model.save_pretrained(folder / name)
        if processor is not None:
            processor.save_pretrained(folder / name)


def child(runtime: str, models: Path, cache_dir: str, threads: int) -> None:
    peak_anon = PeakAnon()
    from bench.pipeline import demo_photos
    from search.pipeline.registry import PipelineConfig, build_pipeline

    started = time.perf_counter()
    config = PipelineConfig(
        profile="full",
        detector_model=str(models / "detector"),
        segmenter_model=str(models / "segmenter"),
        embedder_model=str(models / "embedder"),
        device="cpu",
        torch_threads=threads,
        full_runtime=runtime,
        embedder_runtime="auto",
        model_cache_dir=cache_dir,
        detector_max_new_tokens=32,
        local_files_only=True,
    )
    pipeline = build_pipeline(config)
    loaded = time.perf_counter() - started
    garments = sum(len(found) for found in pipeline.process(demo_photos(2)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    anon = peak_anon.stop()
    runtimes = (pipeline.detector.runtime, pipeline.segmenter.runtime, pipeline.embedder.image_runtime)
    print(
        f"{runtime:>13}: models ready in {loaded:6.1f} s ({'/'.join(runtimes)}, CLIP text "
        f"{pipeline.embedder.text_runtime}), {garments} garments, peak RSS {peak:5.0f} MB, peak anonymous "
        f"{anon:5.0f} MB, file-backed at the end {memory_status()['RssFile']:5.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", default="torch,first,later", help="comma-separated: torch, first, later")
    parser.add_argument(
        "--openvino", default="openvino", choices=["openvino", "openvino-bf16"], help="OpenVINO modes' runtime"
    )
    parser.add_argument("--child", choices=["torch", "openvino", "openvino-bf16"], help=argparse.SUPPRESS)
    parser.add_argument("--models", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.models), args.cache_dir, args.threads)
        return
    with tempfile.TemporaryDirectory(prefix="bench-full-memory-") as scratch:
        models, cache_dir = Path(scratch) / "models", Path(scratch) / "cache"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", SAVE.format(folder=str(models))], check=True, cwd=REPO_ROOT)
        print(f"real-size random-weight models saved in {time.perf_counter() - started:.0f} s", flush=True)
        modes = {"torch": ("torch", "torch"), "first": (f"{args.openvino}, first start", args.openvino)}
        modes["later"] = (f"{args.openvino}, later", args.openvino)
        chosen = [modes[name.strip()] for name in args.modes.split(",")]
        if modes["later"] in chosen and modes["first"] not in chosen:
            chosen.insert(chosen.index(modes["later"]), modes["first"])  # the later start reads its cache
        for label, runtime in chosen:
            print(f"[{label}]", flush=True)
            command = [sys.executable, __file__, "--child", runtime, "--models", str(models)]
            command += ["--cache-dir", str(cache_dir), "--threads", str(args.threads)]
            subprocess.run(command, check=True, cwd=REPO_ROOT)


SAVE = "from pathlib import Path; from bench.full_memory import save_models; save_models(Path({folder!r}))"

if __name__ == "__main__":
    main()
