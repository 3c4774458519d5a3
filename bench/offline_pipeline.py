"""Seconds per photo of each stage of the offline pipeline, and "shop the look" on two-garment composites.

Stages (U2-Net-p in ONNX Runtime, EfficientNet-Lite0 in torch), real CC0 photos of catalog/demo/:
  salient pass   U2-Net-p on the photo (320x320, batch 1: the exported graph has a fixed batch)
  detect         components of the mask -> boxes, each labelled by EfficientNet-Lite0's ImageNet head
  segment        the (remembered) mask restricted to each box
  cutout         MaskCutter (white background for the embedder)
  embed          EfficientNet-Lite0 features, batched over all garments
  full pipeline  Pipeline.process on fresh copies of the photos (nothing remembered)

Composites: two demo photos of different categories side by side. "box recall" = share of the two
garments matched by a detected box at IoU >= .5, the truth being U2-Net-p's box on each photo alone;
"self@1" = share of garments whose matched box, searched (exact cosine) against the catalog of all
source photos processed alone, returns its own photo first.

Person photos (--person): tests/fixtures/person/ with garment boxes labelled by hand (PERSON_TRUTH);
recall of the upper/lower boxes at IoU >= .5, and the detector's seconds per photo with and without pose.

Runtimes: EfficientNet-Lite0 (embedder and box labeller) under PyTorch vs ONNX Runtime (exported once
into LOOKALIKE_MODEL_CACHE_DIR), agreement on the demo photos: cosine of each embedding to PyTorch's,
top-10 neighbour overlap, ImageNet top-1 agreement. U2-Net-p variants (session options, smaller input,
int8 dynamic/static) against the shipped fp32 320x320: mask IoU and box IoU.

End to end (--end-to-end): the demo catalog stored in a database of its own (bench_offline_pipeline,
dropped afterwards), then search.tasks.process_images in batches: decode, pipeline, cutout PNG/WebP and
garment rows written; photos per wall-clock second at 1 and 2 threads. --processes N adds the deployed
worker layout: N worker processes of one thread each (the django-q2 cluster's Q_WORKERS), taking small
batches of the same photos from one queue; photos per wall-clock second of all of them together.

--embedder-runtimes: EfficientNet-Lite0 (embedder and box labeller) in ONNX Runtime vs OpenVINO: seconds per
image and agreement (cosine to ONNX Runtime's vectors, top-10 overlap, ImageNet top-1); with --end-to-end,
an extra row with the embedder in OpenVINO. --runs embedder:U2-Net-p,... picks the end-to-end rows.

    python bench/offline_pipeline.py               # --images 8 --pairs 20; about 3 minutes
    python bench/offline_pipeline.py --runtimes --end-to-end --pairs 0 --threads 1,2
    python bench/offline_pipeline.py --person --skip-stages --pairs 0 --threads 1   # person photos, pose cost
    OMP_NUM_THREADS=2 python bench/offline_pipeline.py --salient-runtimes --embedder-runtimes --skip-stages \
        --pairs 0 --end-to-end --limit 48 --threads 1,2 --processes 2
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEMO = ROOT / "catalog" / "demo"


def demo_photos():
    products = json.loads((DEMO / "products.json").read_text())
    return [(DEMO / p["images"][0], p["category"]) for p in products]


def best_of(repeat, run):
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return min(timings)


def compare_runtimes(photos, threads: int) -> None:
    """EfficientNet-Lite0 in PyTorch vs ONNX Runtime: seconds per image (batched) and agreement."""
    import tempfile

    import torch

    from search.pipeline.embedders import EfficientNetLiteEmbedder, imagenet_batch

    torch.set_num_threads(threads)
    cache = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    start = time.perf_counter()
    onnx = EfficientNetLiteEmbedder.load(runtime="onnx", cache_dir=cache, threads=threads)
    export = time.perf_counter() - start
    torch_embedder = EfficientNetLiteEmbedder.load()
    n = len(photos)
    t_torch = best_of(3, lambda: torch_embedder.embed_images(photos)) / n
    t_onnx = best_of(3, lambda: onnx.embed_images(photos)) / n
    a, b = torch_embedder.embed_images(photos), onnx.embed_images(photos)
    cosine = (a * b).sum(axis=1)
    k = min(10, n - 1)
    top_a = np.argsort(-(a @ a.T), axis=1)[:, 1 : k + 1]
    top_b = np.argsort(-(b @ b.T), axis=1)[:, 1 : k + 1]
    overlap = np.mean([len(set(x) & set(y)) / k for x, y in zip(top_a, top_b, strict=True)])
    pixels = imagenet_batch(photos)
    with torch.inference_mode():
        logits = torch_embedder.model(torch.from_numpy(pixels)).numpy()
    same_class = float((onnx.model.logits(pixels).argmax(1) == logits.argmax(1)).mean())
    print(
        f"[{threads} thread(s)] EfficientNet-Lite0 s/image (batched, {n} photos): torch {t_torch:.4f}, "
        f"onnx {t_onnx:.4f} ({t_torch / t_onnx:.1f}x); export once {export:.1f} s\n"
        f"  agreement onnx vs torch: cosine min {cosine.min():.6f} mean {cosine.mean():.6f}, "
        f"top-{k} overlap {overlap:.3f}, ImageNet top-1 same {same_class:.3f}"
    )


def compare_salient_runtimes(photos, threads: int) -> None:
    """U²-Net-p in ONNX Runtime (fp32) vs OpenVINO (bf16 hint): seconds per photo and mask agreement."""
    from search.pipeline.offline import SALIENT_THRESHOLD, SalientModel

    models = {runtime: SalientModel.load(threads, runtime) for runtime in ("onnx", "openvino")}
    seconds = {
        name: best_of(2, lambda m=model: [m._run(photo) for photo in photos]) / len(photos)
        for name, model in models.items()
    }
    ious = []
    for photo in photos:
        a, b = (models[name]._run(photo) >= SALIENT_THRESHOLD for name in ("onnx", "openvino"))
        union = np.logical_or(a, b).sum()
        ious.append(np.logical_and(a, b).sum() / union if union else 1.0)
    print(
        f"[{threads} thread(s)] U2-Net-p s/photo ({len(photos)} photos): onnx {seconds['onnx']:.3f}, "
        f"openvino {seconds['openvino']:.3f} ({seconds['onnx'] / seconds['openvino']:.2f}x); "
        f"mask IoU openvino vs onnx mean {np.mean(ious):.4f} min {np.min(ious):.4f}"
    )


def agreement(a, b) -> str:
    """Cosine of each row of ``b`` to the same row of ``a`` (both L2-normalised), and top-k neighbour overlap."""
    cosine = (a * b).sum(axis=1)
    k = min(10, len(a) - 1)
    top_a = np.argsort(-(a @ a.T), axis=1)[:, 1 : k + 1]
    top_b = np.argsort(-(b @ b.T), axis=1)[:, 1 : k + 1]
    overlap = np.mean([len(set(x) & set(y)) / k for x, y in zip(top_a, top_b, strict=True)])
    return f"cosine min {cosine.min():.6f} mean {cosine.mean():.6f}, top-{k} overlap {overlap:.3f}"


def compare_embedder_runtimes(photos, threads: int) -> None:
    """EfficientNet-Lite0 in ONNX Runtime vs OpenVINO (bf16 hint): CPU seconds per image and agreement, on the
    photos and on their pipeline cutouts (what the index holds)."""
    import tempfile

    from search.pipeline.embedders import EfficientNetLiteEmbedder, imagenet_batch, load_center

    cache = Path(tempfile.mkdtemp(prefix="bench-embedder-"))
    center = load_center("bundled")
    embedders = {
        runtime: EfficientNetLiteEmbedder.load(runtime=runtime, cache_dir=cache, threads=threads, center=center)
        for runtime in ("onnx", "openvino")
    }
    n = len(photos)
    pixels = imagenet_batch(photos)
    seconds = {}
    for name, embedder in embedders.items():
        embedder.model.run(pixels[:16])  # warm
        cpu = time.process_time()
        for _ in range(3):
            for first in range(0, n, 16):
                embedder.model.run(pixels[first : first + 16])
        seconds[name] = (time.process_time() - cpu) / (3 * n)
    a, b = (embedders[name].embed_images(photos) for name in ("onnx", "openvino"))
    same_class = float(
        (
            embedders["onnx"].model.logits(pixels).argmax(1) == embedders["openvino"].model.logits(pixels).argmax(1)
        ).mean()
    )
    print(
        f"[{threads} thread(s)] EfficientNet-Lite0 CPU-s/image (model call, batches of 16, {n} photos): "
        f"onnx {seconds['onnx']:.4f}, openvino {seconds['openvino']:.4f} "
        f"({seconds['onnx'] / seconds['openvino']:.2f}x)\n"
        f"  agreement openvino vs onnx (centred vectors as indexed): {agreement(a, b)}, "
        f"ImageNet top-1 same {same_class:.3f}"
    )


def _worker(queue, results, start, database: str, media: str, embedder: str, salient: str) -> None:
    """One worker process of the --processes layout: one thread, its own pipeline, batches from the queue."""
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.conf import settings

    django.setup()
    from django.db import connections

    connections["default"].settings_dict["NAME"] = database
    settings.MEDIA_ROOT = media
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
    settings.LOOKALIKE_PROFILE = "offline"
    settings.LOOKALIKE_DEVICE = "cpu"
    settings.LOOKALIKE_EMBEDDER_RUNTIME = embedder
    settings.LOOKALIKE_SALIENT_RUNTIME = salient
    settings.LOOKALIKE_TORCH_THREADS = 1
    from search import tasks
    from search.pipeline.registry import get_pipeline

    get_pipeline()  # load outside the timing
    start.wait()
    cpu, done, began = time.process_time(), {"done": 0, "failed": 0}, time.perf_counter()
    while (ids := queue.get()) is not None:
        counts = tasks.process_images(ids)
        done["done"] += counts["done"]
        done["failed"] += counts["failed"]
    results.put((done, time.process_time() - cpu, time.perf_counter() - began))


def in_processes(ids, processes: int, batch: int, database: str, media: str, embedder: str, salient: str) -> None:
    """The photos through ``processes`` worker processes of one thread each, as a django-q2 cluster runs them."""
    import multiprocessing
    import os

    context = multiprocessing.get_context("spawn")  # a fresh interpreter per worker, as qcluster's workers
    queue, results, start = context.Queue(), context.Queue(), context.Barrier(processes + 1)
    for first in range(0, len(ids), batch):
        queue.put(ids[first : first + batch])
    for _ in range(processes):
        queue.put(None)
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        workers = [
            context.Process(target=_worker, args=(queue, results, start, database, media, embedder, salient))
            for _ in range(processes)
        ]
        for worker in workers:
            worker.start()
    finally:
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous
    start.wait()
    began, parent_cpu = time.perf_counter(), time.process_time()
    outcome = [results.get() for _ in workers]
    wall = time.perf_counter() - began
    shares = ", ".join(f"{cpu_s:.1f}/{wall_s:.1f}" for _, cpu_s, wall_s in outcome)
    print(f"  workers' CPU-s/wall-s: {shares}; this process's CPU-s meanwhile {time.process_time() - parent_cpu:.2f}")
    for worker in workers:
        worker.join()
    done = sum(counts["done"] for counts, *_ in outcome)
    failed = sum(counts["failed"] for counts, *_ in outcome)
    cpu = sum(seconds for _, seconds, _ in outcome)
    print(
        f"[end to end, embedder {embedder}, U2-Net-p {salient}, {processes} processes x 1 thread, batches of "
        f"{batch} from one queue] {done} photos done ({failed} failed) in {wall:.1f} s: {done / wall:.2f} "
        f"photos/s, {cpu / max(done, 1):.3f} CPU-s per photo"
    )


def end_to_end(threads_list, batch: int, limit: int, runs, processes: int = 0) -> None:
    """The demo catalog through search.tasks.process_images with a database of its own."""
    import os
    import tempfile

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.conf import settings

    django.setup()
    from django.db import connection

    media = tempfile.TemporaryDirectory(prefix="bench-offline-media-")
    settings.MEDIA_ROOT = media.name
    settings.LOOKALIKE_PROCESS_ON_UPLOAD = False
    settings.LOOKALIKE_PROFILE = "offline"
    settings.LOOKALIKE_DEVICE = "cpu"
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = "bench_offline_pipeline"
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        from catalog import services
        from catalog.models import ImageStatus, ProductImage
        from search import tasks
        from search.pipeline import offline
        from search.pipeline.registry import get_pipeline, reset_pipeline

        products = json.loads((DEMO / "products.json").read_text())[:limit]
        for index, product in enumerate(products):
            record, _ = services.upsert_product(shop="demo", external_id=str(index), name=product["name"])
            services.add_image(product=record, content=(DEMO / product["images"][0]).read_bytes())
        ids = list(ProductImage.objects.order_by("pk").values_list("pk", flat=True))
        for runtime, salient in runs:
            for threads in threads_list:
                settings.LOOKALIKE_EMBEDDER_RUNTIME = runtime
                settings.LOOKALIKE_SALIENT_RUNTIME = salient
                settings.LOOKALIKE_TORCH_THREADS = threads
                offline._salient_model.cache_clear()
                reset_pipeline()
                get_pipeline()  # load (and export) outside the timing
                ProductImage.objects.update(status=ImageStatus.PENDING, attempts=0)
                cpu, start = time.process_time(), time.perf_counter()
                counts = {"done": 0, "failed": 0}
                for first in range(0, len(ids), batch):
                    done = tasks.process_images(ids[first : first + batch])
                    counts["done"] += done["done"]
                    counts["failed"] += done["failed"]
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                print(
                    f"[end to end, embedder {runtime}, U2-Net-p {salient}, {threads} thread(s), batches of {batch}] "
                    f"{counts['done']} "
                    f"photos done ({counts['failed']} failed) in {wall:.1f} s: {counts['done'] / wall:.2f} photos/s, "
                    f"{cpu / max(counts['done'], 1):.3f} CPU-s per photo"
                )
            if processes > 1:
                ProductImage.objects.update(status=ImageStatus.PENDING, attempts=0)
                small = max(1, min(batch, len(ids) // (4 * processes)))  # so that the workers finish together
                in_processes(ids, processes, small, connection.settings_dict["NAME"], media.name, runtime, salient)
    finally:
        connection.creation.destroy_test_db(test_db, verbosity=0)
        media.cleanup()


def time_stages(photos, threads: int, repeat: int) -> None:
    """Seconds per photo of each stage of the shipped offline pipeline (built from the settings, as a worker
    builds it: int8 U2-Net-p where OpenVINO is installed, pose gate, centroid labels, square cutouts, the
    embedder's ONNX graph with mean and metric)."""
    import os
    from dataclasses import replace

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from search.pipeline.config import PipelineConfig
    from search.pipeline.registry import build_pipeline

    pipeline = build_pipeline(replace(PipelineConfig.from_settings(), profile="offline", torch_threads=threads))
    detector, segmenter, cutter, embedder = pipeline.detector, pipeline.segmenter, pipeline.cutter, pipeline.embedder
    salient = detector.salient
    n = len(photos)

    def fresh():
        return [photo.copy() for photo in photos]

    def salient_pass():
        for photo in fresh():
            salient.saliency(photo)

    timing = {"salient pass (U2-Net-p)": best_of(repeat, salient_pass) / n}
    for photo in photos:
        salient.saliency(photo)  # remembered: the next stages are timed without it
    timing["detect (components + labels)"] = best_of(repeat, lambda: detector.detect(photos)) / n
    boxes = detector.detect(photos)
    boxes = [b or [] for b in boxes]
    timing["segment (mask per box)"] = best_of(repeat, lambda: segmenter.segment(photos, boxes)) / n
    masks = segmenter.segment(photos, boxes)
    pairs = [(p, b, m) for p, bs, ms in zip(photos, boxes, masks, strict=True) for b, m in zip(bs, ms, strict=True)]
    timing["cutout"] = best_of(repeat, lambda: [cutter.cut(p, b, m) for p, b, m in pairs]) / n
    inputs = [cutter.cut(p, b, m).embed_input for p, b, m in pairs]
    timing["embed (batched)"] = best_of(repeat, lambda: embedder.embed_images(inputs)) / n
    timing["full pipeline"] = best_of(repeat, lambda: pipeline.process(fresh())) / n
    print(f"[cpu, {threads} thread(s)] seconds per photo ({n} photos, {len(pairs)} garments, best of {repeat})")
    for name, seconds in timing.items():
        print(f"  {name:34s} {seconds:7.3f}")
    stages = sum(v for k, v in timing.items() if k != "full pipeline")
    print(f"  {'sum of stages':34s} {stages:7.3f}")


def composites(all_photos, pairs: int, seed: int = 0) -> None:
    """Shop the look: two photos side by side; box recall, and whether each box finds its own photo first,
    with the shipped cutter (square) and each embedder variant (plain, centred, centred + category metric)."""
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")  # salient_runtime() reads the settings
    import torch
    from category_metric import OUR_CATEGORY  # clothing-cc0's categories -> ours
    from PIL import Image

    from search.pipeline.cutout import MaskCutter
    from search.pipeline.embedders import EfficientNetLiteEmbedder, load_category_metric, load_center
    from search.pipeline.offline import (
        SalientDetector,
        SalientModel,
        SalientSegmenter,
        salient_runtime,
        shared_classifier,
        shared_labeller,
    )
    from search.pipeline.runner import Pipeline

    torch.set_num_threads(2)
    salient = SalientModel.load(2, runtime=salient_runtime())
    rng = random.Random(seed)
    chosen = []
    while len(chosen) < pairs:
        a, b = rng.sample(range(len(all_photos)), 2)
        if all_photos[a][1] != all_photos[b][1]:
            chosen.append((a, b))
    sources = sorted({i for pair in chosen for i in pair})
    print(f"composites: {pairs} pairs of two demo photos of different categories, side by side")
    center, metric = load_center("bundled"), load_category_metric("bundled")
    variants = [("plain", None, None), ("centred", center, None), ("centred + metric (shipped)", center, metric)]
    for name, centre, learned in variants:
        pipeline = Pipeline(
            SalientDetector(salient, shared_classifier(), labeller=shared_labeller()),
            SalientSegmenter(salient),
            MaskCutter(square=True),
            EfficientNetLiteEmbedder.load(center=centre, metric=learned),
            max_side=1600,
            profile="offline",
        )
        alone = {}
        for index in sources:
            photo = Image.open(all_photos[index][0]).convert("RGB")
            garments = pipeline.process_image(photo)
            alone[index] = (photo, max(garments, key=lambda g: g.box.area))
        catalog = np.stack([alone[i][1].embedding for i in sources])
        found = own_first = total = named_right = 0
        counts = []
        for a, b in chosen:
            left, right = alone[a][0], alone[b][0]
            canvas = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), "white")
            canvas.paste(left, (0, 0))
            canvas.paste(right, (left.width, 0))
            garments = pipeline.process_image(canvas)
            counts.append(len(garments) if not garments[0].whole_image_fallback else 0)
            for index, shift in ((a, 0), (b, left.width)):
                truth = alone[index][1].box
                truth = type(truth)(truth.x0 + shift, truth.y0, truth.x1 + shift, truth.y1, label=truth.label)
                best = max(garments, key=lambda g: g.box.iou(truth))
                total += 1
                if best.box.iou(truth) >= 0.5:
                    found += 1
                    nearest = sources[int(np.argmax(catalog @ best.embedding))]
                    own_first += nearest == index
                    named_right += best.box.label == OUR_CATEGORY[all_photos[index][1]]
        print(
            f"  [{name}] boxes per composite: {dict(sorted((n, counts.count(n)) for n in set(counts)))}; "
            f"box recall at IoU >= .5: {found / total:.3f} ({found} of {total}); self@1 of matched boxes against "
            f"the {len(sources)} source photos: {own_first / max(found, 1):.3f}; "
            f"of all garments {own_first / total:.3f}; labelled right {named_right} of {found}"
        )


# Person photos (tests/fixtures/person/, see ATTRIBUTION.md) and their garments' boxes, labelled by hand
# (x0, y0, x1, y1): "upper" = what is worn on the torso, "lower" = trousers/skirt/shorts where visible.
PERSON_TRUTH = {
    "astronaut.jpg": {"upper": (18, 175, 362, 512)},  # flight suit; hips out of the photo
    "camera.jpg": {"upper": (0, 105, 300, 512), "lower": (92, 455, 152, 512)},  # long coat; a strip of trousers
}
# Skin and hands, by hand (x0, y0, x1, y1): no garment mask should hold these pixels.
PERSON_BARE = {
    "astronaut.jpg": [(160, 30, 300, 175)],  # face and neck
    "camera.jpg": [(170, 95, 255, 205), (178, 200, 240, 255)],  # face; the gloved hand in front of the coat
}


def person_photos(threads: int, repeat: int) -> None:
    """Shop the look on person photos: box recall of upper/lower at IoU >= .5 against hand-labelled boxes,
    and the seconds per photo that pose (person detector, landmarks, face gate) adds to the detector."""
    import torch
    from PIL import Image

    from search.pipeline.base import Box
    from search.pipeline.offline import (
        SalientDetector,
        SalientModel,
        SalientSegmenter,
        shared_classifier,
        shared_labeller,
    )
    from search.pipeline.pose import PoseModel

    torch.set_num_threads(threads)
    salient, classifier, labeller = SalientModel.load(threads), shared_classifier(), shared_labeller()
    plain = SalientDetector(salient, classifier, labeller=labeller)
    posed = SalientDetector(salient, classifier, pose=PoseModel.load(threads), labeller=labeller)
    folder = ROOT / "tests" / "fixtures" / "person"
    people = [Image.open(folder / name).convert("RGB") for name in PERSON_TRUTH]
    found = {"upper": [0, 0], "lower": [0, 0]}
    for (name, truth), boxes in zip(PERSON_TRUTH.items(), posed.detect(people), strict=True):
        print(f"  {name}: " + ", ".join(f"{b.label} {tuple(int(v) for v in b.as_tuple())}" for b in boxes))
        for region, bounds in truth.items():
            target = Box(*bounds, label=region)
            best = max((b.iou(target) for b in boxes), default=0.0)
            found[region][0] += best >= 0.5
            found[region][1] += 1
            print(f"    {region}: best IoU {best:.2f}")
    for region, (hit, total) in found.items():
        print(f"person photos: {region} box recall at IoU >= .5: {hit} of {total}")
    segmenter = SalientSegmenter(salient)
    for (name, bare), photo, boxes in zip(PERSON_BARE.items(), people, posed.detect(people), strict=True):
        inside = np.zeros((photo.height, photo.width), dtype=bool)  # before the carve: the mask inside any box
        uncarved = SalientModel(salient.infer, runtime=salient.runtime).mask(photo)
        for box in boxes:
            x0, y0, x1, y1 = box.pixel_bounds()
            inside[y0:y1, x0:x1] |= uncarved[y0:y1, x0:x1]
        carved = np.zeros_like(inside)
        for mask in segmenter.segment([photo], [boxes])[0]:
            carved |= np.asarray(mask) > 0
        region = np.zeros_like(inside)
        for x0, y0, x1, y1 in bare:
            region[y0:y1, x0:x1] = True
        print(
            f"  {name}: head and hands (hand-labelled, {int(region.sum())} px) inside garment masks: "
            f"{inside[region].mean():.3f} without the carve, {carved[region].mean():.3f} with it"
        )
    garments = [Image.open(path).convert("RGB") for path, _ in demo_photos()[:8]]
    for what, photos in (("person photos", people), ("garment photos", garments)):
        for photo in photos:
            salient.saliency(photo)  # U2-Net-p remembered: only the detector's own work is timed
        t_plain = best_of(repeat, lambda photos=photos: plain.detect(photos)) / len(photos)
        t_posed = best_of(repeat, lambda photos=photos: posed.detect(photos)) / len(photos)
        print(
            f"  {what} ({len(photos)}): detect {t_plain:.3f} s/photo without pose, {t_posed:.3f} with "
            f"(+{t_posed - t_plain:.3f} s, {threads} thread{'s' if threads > 1 else ''})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--runtimes", action="store_true", help="EfficientNet-Lite0: torch vs ONNX Runtime")
    parser.add_argument("--person", action="store_true", help="upper/lower boxes on person photos, pose cost")
    parser.add_argument("--end-to-end", action="store_true", help="search.tasks.process_images with a database")
    parser.add_argument("--skip-stages", action="store_true", help="no per-stage timings")
    parser.add_argument("--limit", type=int, default=102, help="demo photos end to end (default all 102)")
    parser.add_argument("--batch", type=int, default=16, help="photos per process_images call end to end")
    parser.add_argument(
        "--salient-runtimes", action="store_true", help="U2-Net-p: ONNX Runtime vs OpenVINO (and end to end each)"
    )
    parser.add_argument(
        "--embedder-runtimes", action="store_true", help="EfficientNet-Lite0: ONNX Runtime vs OpenVINO (and end to end)"
    )
    parser.add_argument(
        "--runs", default="", help="end to end rows instead, e.g. onnx:openvino,openvino:openvino (embedder:U2-Net-p)"
    )
    parser.add_argument(
        "--processes", type=int, default=0, help="end to end also in N worker processes of 1 thread each"
    )
    args = parser.parse_args()
    from PIL import Image

    everything = demo_photos()
    step = max(1, len(everything) // args.images)
    photos = [Image.open(path).convert("RGB") for path, _ in everything[::step][: args.images]]
    threads_list = [int(t) for t in args.threads.split(",")]
    if args.runtimes:
        runtime_photos = [Image.open(path).convert("RGB") for path, _ in everything[:32]]
        for threads in threads_list:
            compare_runtimes(runtime_photos, threads)
    if not args.skip_stages:
        for threads in threads_list:
            time_stages(photos, threads, args.repeat)
    if args.person:
        for threads in threads_list:
            person_photos(threads, args.repeat)
    if args.salient_runtimes:
        salient_photos = [Image.open(path).convert("RGB") for path, _ in everything[:24]]
        for threads in threads_list:
            compare_salient_runtimes(salient_photos, threads)
    if args.embedder_runtimes:
        embedder_photos = [Image.open(path).convert("RGB") for path, _ in everything[:32]]
        for threads in threads_list:
            compare_embedder_runtimes(embedder_photos, threads)
    if args.end_to_end:
        runs = []  # (embedder runtime, U2-Net-p runtime)
        if args.salient_runtimes:  # U2-Net-p runtimes, the embedder in ONNX Runtime
            runs += [("onnx", "onnx"), ("onnx", "openvino")]
        if args.embedder_runtimes:  # the embedder in OpenVINO too
            runs += [("onnx", "openvino")] * (not runs) + [("openvino", "openvino")]
        runs = runs or [("torch", "onnx"), ("onnx", "onnx")]  # EfficientNet-Lite0 torch vs onnx
        if args.runs:
            runs = [tuple(run.split(":")) for run in args.runs.split(",")]
        end_to_end(threads_list, args.batch, args.limit, runs, args.processes)
    if args.pairs:
        composites(everything, args.pairs)


if __name__ == "__main__":
    main()
