"""Pipeline benchmark: real-size architectures (random weights, built from configs; nothing downloaded).

    python bench/pipeline.py                         # CPU at 1 and 2 threads (+ GPU when CUDA is visible)
    python bench/pipeline.py --quick                 # 1 image, 1 thread: a smoke run in about a minute
    python bench/pipeline.py --measure-background    # cutout background choice, real EfficientNet-Lite0
    python bench/pipeline.py --beams 3,1 --tokens 32 # <OD> decode: 3 beams vs greedy at an answer's length
    python bench/pipeline.py --images 1 --repeat 2 --threads 1,2   # torch vs OpenVINO encoders side by side

With openvino installed (``--runtimes torch,openvino``, the default then), every CPU timing is printed for
both LOOKALIKE_FULL_RUNTIME=torch and =openvino (the same torch models; OpenVINO runs SAM 2's image encoder,
Florence-2's vision + text encoders and CLIP's image tower), with agreement lines on the demo catalog's
photos: SAM 2 encoder cosine, mask IoU and logit correlation, Florence-2 vision/encoder cosine and the
decoder's first-step logits and argmax tokens, CLIP embedding cosine and top-10 overlap. Conversions are
cached in ``--cache-dir`` (converted once, like the app's LOOKALIKE_MODEL_CACHE_DIR).

Prints, measured in one run: seconds per image per stage (Florence-2-base <OD>, SAM 2.1 hiera-tiny,
cutout, CLIP ViT-B/32), batched vs unbatched CLIP embedding, vectorised cutout vs a per-pixel loop, the
full pipeline vs the sum of its stages, and peak RSS with all models loaded. Photos are real (CC0).
Random weights make Florence-2 emit junk, so every image takes the whole-image fallback (one box); its
generation is pinned to ``--tokens`` new tokens (32 ~ an answer with four or five garments).
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

DATASET = Path(os.environ.get("CLOTHING_CC0_DIR", REPO_ROOT.parent / "shared" / "datasets" / "clothing-cc0"))
FIXTURE_PHOTOS = REPO_ROOT / "tests" / "fixtures" / "photos"
DEMO_PHOTOS = REPO_ROOT / "catalog" / "demo" / "images"


def photo_rows() -> list[tuple[Path, str]]:
    """(path, category) of the CC0 photos: the full dataset when present, else the test fixtures."""
    for folder in (DATASET, FIXTURE_PHOTOS):
        labels = folder / "labels.csv"
        if labels.is_file():
            with labels.open() as handle:
                return [(folder / row["file"], row["category"]) for row in csv.DictReader(handle)]
    raise SystemExit(f"No photos: neither {DATASET} nor {FIXTURE_PHOTOS} has a labels.csv")


def best_of(function: Callable[[], object], repeat: int) -> float:
    """Fastest of ``repeat`` runs (seconds): the least disturbed by other work on shared cores."""
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return min(timings)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- per-pixel loop, for comparison only ------------------------------------------------------------


def cutout_per_pixel_loop(image: Image.Image, mask: Image.Image) -> Image.Image:
    """The naive cutout the vectorised MaskCutter replaces: one Python call per pixel."""
    rgba = Image.new("RGBA", image.size, (0, 0, 0, 0))
    pixels, alpha, out = image.load(), mask.load(), rgba.load()
    for y in range(image.height):
        for x in range(image.width):
            if alpha[x, y] > 0:
                r, g, b = pixels[x, y]
                out[x, y] = (r, g, b, alpha[x, y])
    return rgba.crop(rgba.getbbox())


def ellipse_mask(size: tuple[int, int]) -> Image.Image:
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    inside = ((xx - width / 2) / (width * 0.4)) ** 2 + ((yy - height / 2) / (height * 0.45)) ** 2 <= 1
    return Image.fromarray((inside * 255).astype(np.uint8))


# --- real-size models from configs ------------------------------------------------------------------


def build_real_size_stages(tokens: int):
    import torch
    from transformers import (
        CLIPConfig,
        CLIPModel,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Sam2Config,
        Sam2Model,
    )

    from search.pipeline.detectors import Florence2Detector
    from search.pipeline.embedders import ClipEmbedder
    from search.pipeline.segmenters import Sam2Segmenter
    from tests.fixtures.tiny_models import clip_processor, florence2_processor

    torch.manual_seed(0)
    florence_processor = florence2_processor(image_size=768)
    florence_config = Florence2Config(
        vision_config={"projection_dim": 768, "drop_path_rate": 0.0},  # DaViT defaults = Florence-2-base
        text_config={
            "vocab_size": 51289,
            "d_model": 768,
            "encoder_layers": 6,
            "decoder_layers": 6,
            "encoder_attention_heads": 12,
            "decoder_attention_heads": 12,
            "encoder_ffn_dim": 3072,
            "decoder_ffn_dim": 3072,
            "max_position_embeddings": 1024,
            "bos_token_id": 0,
            "pad_token_id": 1,
            "eos_token_id": 2,
            "decoder_start_token_id": 2,
            "forced_bos_token_id": 0,
        },
        image_token_id=florence_processor.tokenizer.image_token_id,
    )
    florence = Florence2ForConditionalGeneration(florence_config).eval()
    florence.generation_config.min_new_tokens = tokens  # a random model may stop at once: pin the length
    detector = Florence2Detector(florence, florence_processor, max_new_tokens=tokens, num_beams=3)
    segmenter = Sam2Segmenter(Sam2Model(Sam2Config()).eval())  # defaults = sam2.1-hiera-tiny
    embedder = ClipEmbedder(
        CLIPModel(CLIPConfig()).eval(), clip_processor(image_size=224), model_id="random-clip-vit-b-32"
    )  # CLIPConfig defaults = ViT-B/32
    return detector, segmenter, embedder


def to_device(stages, device, dtype):
    detector, segmenter, embedder = stages
    detector.model.to(device=device, dtype=dtype)
    segmenter.model.to(device=device, dtype=dtype)
    embedder.model.to(device=device, dtype=dtype)


def bench_stages(stages, images: list[Image.Image], repeat: int, label: str) -> dict[str, float]:
    """Per-image seconds of each stage on the pipeline's own data flow, and of the whole pipeline.

    Stage runs and whole-pipeline runs alternate and the best of each is kept, so load from other work on
    shared cores hits both sides alike.
    """
    from search.pipeline.base import Box
    from search.pipeline.cutout import MaskCutter
    from search.pipeline.runner import Pipeline

    detector, segmenter, embedder = stages
    cutter = MaskCutter()
    pipeline = Pipeline(detector, segmenter, cutter, embedder, max_side=1600, profile="bench")
    n = len(images)
    boxes = [found or [Box.whole(image)] for image, found in zip(images, detector.detect(images), strict=True)]
    masks = segmenter.segment(images, boxes)
    pairs = [
        (image, box, mask)
        for image, image_boxes, image_masks in zip(images, boxes, masks, strict=True)
        for box, mask in zip(image_boxes, image_masks, strict=True)
    ]
    cutouts = [cutter.cut(*pair).embed_input for pair in pairs]
    runs = {
        "detect (Florence-2-base <OD>)": lambda: detector.detect(images),
        "segment (SAM 2.1 hiera-tiny)": lambda: segmenter.segment(images, boxes),
        "cutout (vectorised)": lambda: [cutter.cut(*pair) for pair in pairs],
        "embed (CLIP ViT-B/32, batched)": lambda: embedder.embed_images(cutouts),
        "full pipeline": lambda: pipeline.process(images),
    }
    timings = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for name, run in runs.items():
            timings[name] = min(timings[name], best_of(run, 1) / n)
    stage_sum = sum(value for key, value in timings.items() if key != "full pipeline")
    print(f"\n[{label}] seconds per image ({n} images, {len(pairs)} garments, best of {repeat})")
    for key, value in timings.items():
        print(f"  {key:34s} {value:8.3f}")
    print(f"  {'sum of stages':34s} {stage_sum:8.3f}")
    print(f"  full / sum of stages = {timings['full pipeline'] / stage_sum:.3f}  (target within 1.20)")
    return timings


def bench_decode(detector, images: list[Image.Image], beams: list[int], tokens: int, label: str) -> None:
    """Florence-2 <OD> seconds per image for each beam count (LOOKALIKE_OD_NUM_BEAMS), ``tokens`` new tokens."""
    saved = detector.num_beams
    timings = {}
    try:
        for count in beams:
            detector.num_beams = count
            timings[count] = best_of(lambda: detector.detect(images), 1) / len(images)
    finally:
        detector.num_beams = saved
    parts = ", ".join(f"{count} beam{'s' if count > 1 else ''} {seconds:.2f}" for count, seconds in timings.items())
    print(f"[{label}] <OD> s/image at {tokens} new tokens (LOOKALIKE_OD_NUM_BEAMS): {parts}")


def bench_clip_batching(embedder, photos: list[Image.Image], repeat: int, label: str) -> None:
    """One call per photo vs one call for all, alternating, best of ``max(repeat, 5)`` each."""
    unbatched = batched = float("inf")
    for _ in range(max(repeat, 5)):
        unbatched = min(unbatched, best_of(lambda: [embedder.embed_images([photo]) for photo in photos], 1))
        batched = min(batched, best_of(lambda: embedder.embed_images(photos), 1))
    unbatched, batched = unbatched / len(photos), batched / len(photos)
    print(
        f"[{label}] CLIP ViT-B/32 s/image: unbatched {unbatched:.4f}, batched ({len(photos)}) {batched:.4f}, "
        f"speed-up {unbatched / batched:.2f}x (target >= 1.5x)"
    )


def bench_cutout_loop(photo: Image.Image) -> None:
    from search.pipeline.base import Box
    from search.pipeline.cutout import MaskCutter

    mask = ellipse_mask(photo.size)
    cutter = MaskCutter(padding=0)
    vectorised = best_of(lambda: cutter.cut(photo, Box.whole(photo), mask), 5)
    looped = best_of(lambda: cutout_per_pixel_loop(photo, mask), 1)
    same = np.array_equal(
        np.asarray(cutter.cut(photo, Box.whole(photo), mask).rgba)[..., 3],
        np.asarray(cutout_per_pixel_loop(photo, mask))[..., 3],
    )
    print(
        f"cutout {photo.width}x{photo.height}: vectorised {vectorised * 1000:.1f} ms, per-pixel loop "
        f"{looped * 1000:.1f} ms, {looped / vectorised:.0f}x faster (same alpha: {same})"
    )


# --- torch vs OpenVINO (LOOKALIKE_FULL_RUNTIME) ---------------------------------------------------------


def build_openvino_stages(stages, cache_dir: str, precision: str):
    """The same torch models with their encoders in OpenVINO, as LOOKALIKE_FULL_RUNTIME=openvino builds them
    (the torch copies are kept here, so both runtimes run side by side)."""
    from search.pipeline import full_openvino
    from search.pipeline.detectors import Florence2Detector, florence2_image_size
    from search.pipeline.embedders import ClipEmbedder
    from search.pipeline.segmenters import Sam2Segmenter

    detector, segmenter, embedder = stages
    timings = {}
    start = time.perf_counter()
    encoders = full_openvino.Florence2Encoders.load(
        detector.model,
        cache_dir,
        image_size=florence2_image_size(detector.processor),
        precision=precision,
        keep_torch=True,  # timed against torch below
    )
    timings["Florence-2 vision + text encoder"] = time.perf_counter() - start
    start = time.perf_counter()
    sam_encoder = full_openvino.sam2_image_encoder(segmenter.model, cache_dir, precision=precision, keep_torch=True)
    timings["SAM 2 image encoder"] = time.perf_counter() - start
    start = time.perf_counter()
    clip_tower = full_openvino.clip_image_tower(embedder.model, cache_dir, precision=precision, keep_torch=True)
    timings["CLIP image tower"] = time.perf_counter() - start
    print("OpenVINO conversion (or cache read) + compile, s: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    decoder_model = detector.model
    if full_openvino.decoder_in_bf16("openvino-bf16" if precision == "bf16" else "openvino"):
        import copy

        import torch

        # as the app does under openvino-bf16 (a copy here: the torch rows keep their fp32 model)
        decoder_model = copy.deepcopy(detector.model).to(torch.bfloat16)
    ov_detector = Florence2Detector(
        decoder_model,
        detector.processor,
        max_new_tokens=detector.max_new_tokens,
        num_beams=detector.num_beams,
        encoders=encoders,
    )
    ov_embedder = ClipEmbedder(
        embedder.model, embedder.processor, model_id=embedder.model_id, batch_size=embedder.batch_size
    )
    ov_embedder.image_session = clip_tower
    return ov_detector, Sam2Segmenter(segmenter.model, encoder=sam_encoder), ov_embedder


def openvino_threads(ov_stages, threads: int):
    """The OpenVINO stages recompiled for ``threads`` inference threads."""
    detector, segmenter, embedder = ov_stages
    detector.encoders = detector.encoders.with_threads(threads)
    segmenter.encoder = segmenter.encoder.with_threads(threads)
    embedder.image_session = embedder.image_session.with_threads(threads)
    return ov_stages


def detect_breakdown(detector, images: list[Image.Image], label: str) -> None:
    """Where <OD> time goes: DaViT vision tower + projector, BART text encoder, and the rest (decoder steps)."""
    import torch

    model = detector.model
    n = len(images)
    inputs = detector.processor(text=["<OD>"] * n, images=images, return_tensors="pt")
    with torch.inference_mode():
        if detector.encoders is None:
            vision = best_of(lambda: model.get_image_features(inputs["pixel_values"]), 1)
            features = model.get_image_features(inputs["pixel_values"]).pooler_output
        else:
            vision = best_of(lambda: detector.encoders.image_features(inputs["pixel_values"].numpy()), 1)
            features = torch.from_numpy(detector.encoders.image_features(inputs["pixel_values"].numpy()))
        embeds = model.get_input_embeddings()(inputs["input_ids"]).float()  # f32 even from a bf16 decoder
        slots = (inputs["input_ids"] == model.config.image_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(slots, features.float())
        if detector.encoders is None:
            text = best_of(lambda: model.model.get_encoder()(inputs_embeds=embeds), 1)
        else:
            text = best_of(lambda: detector.encoders.encode(embeds.numpy()), 1)
    total = best_of(lambda: detector.detect(images), 1)
    print(
        f"[{label}] <OD> s/image ({detector.num_beams} beams): vision tower {vision / n:.2f}, text encoder "
        f"{text / n:.2f} ({embeds.shape[1]} tokens), decoder + rest {(total - vision - text) / n:.2f}, "
        f"total {total / n:.2f}"
    )


def print_comparison(torch_timings: dict[str, float], ov_timings: dict[str, float], label: str) -> None:
    print(f"[{label}] s/image torch -> openvino (speed-up)")
    for key, before in torch_timings.items():
        after = ov_timings[key]
        print(f"  {key:34s} {before:8.3f} -> {after:8.3f}  ({before / after:.2f}x)")


def cosine(a, b) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def demo_photos(count: int) -> list[Image.Image]:
    paths = sorted(DEMO_PHOTOS.glob("*.jpg"))
    step = max(1, len(paths) // max(count, 1))
    return [Image.open(path).convert("RGB") for path in paths[::step][:count]]


def agreement(stages, ov_stages, photos: list[Image.Image], tokens: int) -> None:
    """OpenVINO vs torch fp32 on real photos (random weights: compare tensors and masks, not answers)."""
    import torch

    from search.pipeline.base import Box
    from search.pipeline.segmenters import sam2_preprocess

    detector, segmenter, embedder = stages
    ov_detector, ov_segmenter, ov_embedder = ov_stages
    # SAM 2: encoder maps, then masks for two boxes per photo (an inner box and the whole photo)
    encoder_cos, ious, correlations = [[], [], []], [], []
    for photo in photos:
        w, h = photo.size
        boxes = [Box(0.15 * w, 0.1 * h, 0.85 * w, 0.95 * h, label="top"), Box.whole(photo)]
        pixels, scaled = sam2_preprocess(photo, boxes, size=segmenter.input_size)
        with torch.inference_mode():
            maps_torch = segmenter.model.get_image_embeddings(torch.from_numpy(pixels)[None])
            maps_ov = ov_segmenter.encoder(pixels[None])
            for index, (a, b) in enumerate(zip(maps_torch, maps_ov, strict=True)):
                encoder_cos[index].append(cosine(a.numpy(), b))
            box_tensor = torch.from_numpy(scaled)[None]
            logits_torch = segmenter.model(image_embeddings=list(maps_torch), input_boxes=box_tensor).pred_masks
            maps_ov_t = [torch.from_numpy(m) for m in maps_ov]
            logits_ov = ov_segmenter.model(image_embeddings=maps_ov_t, input_boxes=box_tensor).pred_masks
        for a, b in zip(logits_torch[0, :, 0].numpy(), logits_ov[0, :, 0].numpy(), strict=True):
            correlations.append(float(np.corrcoef(a.ravel(), b.ravel())[0, 1]))
        masks_torch, masks_ov = segmenter.segment([photo], [boxes])[0], ov_segmenter.segment([photo], [boxes])[0]
        for a, b in zip(masks_torch, masks_ov, strict=True):
            x, y = np.asarray(a) > 0, np.asarray(b) > 0
            union = np.logical_or(x, y).sum()
            ious.append(1.0 if union == 0 else float(np.logical_and(x, y).sum() / union))
    maps = ", ".join(f"map {i} min {min(c):.6f}" for i, c in enumerate(encoder_cos))
    print(f"agreement SAM 2 ({len(photos)} photos): encoder cosine {maps}")
    print(
        f"agreement SAM 2 ({len(ious)} masks): mask IoU mean {np.mean(ious):.4f} min {min(ious):.4f}; "
        f"low-res logit correlation mean {np.mean(correlations):.6f} min {min(correlations):.6f}"
    )
    # Florence-2: vision features, encoder output, first-step logits and argmax, greedy tokens
    inputs = detector.processor(text=["<OD>"] * len(photos), images=photos, return_tensors="pt")
    with torch.inference_mode():
        vision_torch = detector.model.get_image_features(inputs["pixel_values"]).pooler_output.numpy()
        vision_ov = ov_detector.encoders.image_features(inputs["pixel_values"].numpy())
        encoded_torch = detector.encoder_inputs(photos)
        encoded_ov = ov_detector.encoder_inputs(photos)
        hidden_torch = detector.model.model.get_encoder()(
            inputs_embeds=detector.model.get_input_embeddings()(encoded_torch["input_ids"]).masked_scatter(
                (encoded_torch["input_ids"] == detector.model.config.image_token_id).unsqueeze(-1),
                torch.from_numpy(vision_torch),
            )
        ).last_hidden_state.numpy()
        hidden_ov = encoded_ov["encoder_outputs"].last_hidden_state.float().numpy()
        start = torch.full((len(photos), 1), detector.model.config.text_config.decoder_start_token_id)
        first_torch = detector.model(**encoded_torch, decoder_input_ids=start).logits[:, -1].numpy()
        first_ov = ov_detector.model(**encoded_ov, decoder_input_ids=start).logits[:, -1].float().numpy()
    vision_cos = [cosine(a, b) for a, b in zip(vision_torch, vision_ov, strict=True)]
    hidden_cos = [cosine(a, b) for a, b in zip(hidden_torch, hidden_ov, strict=True)]
    logit_cos = [cosine(a, b) for a, b in zip(first_torch, first_ov, strict=True)]
    same_argmax = float((first_torch.argmax(-1) == first_ov.argmax(-1)).mean())
    top5 = np.mean(
        [len(set(np.argsort(-a)[:5]) & set(np.argsort(-b)[:5])) / 5 for a, b in zip(first_torch, first_ov, strict=True)]
    )
    print(
        f"agreement Florence-2 ({len(photos)} photos): vision feature cosine min {min(vision_cos):.6f}, encoder "
        f"output cosine min {min(hidden_cos):.6f}; first-step logits cosine min {min(logit_cos):.6f}, "
        f"argmax same {same_argmax:.2f}, top-5 overlap {top5:.2f}"
    )
    saved = detector.num_beams, ov_detector.num_beams
    detector.num_beams = ov_detector.num_beams = 1
    try:
        same_text = [a == b for a, b in zip(detector._generate(photos), ov_detector._generate(photos), strict=True)]
    finally:
        detector.num_beams, ov_detector.num_beams = saved
    print(f"agreement Florence-2: greedy {tokens}-token answers identical on {sum(same_text)}/{len(same_text)} photos")
    # CLIP: embeddings of photos and of cutout-like crops
    crops = photos + [p.crop((p.width // 6, p.height // 8, p.width * 5 // 6, p.height * 7 // 8)) for p in photos]
    vectors_torch, vectors_ov = embedder.embed_images(crops), ov_embedder.embed_images(crops)
    cosines = (vectors_torch * vectors_ov).sum(axis=1)
    k = min(10, len(crops) - 1)

    def neighbours(vectors):
        similarity = vectors @ vectors.T
        np.fill_diagonal(similarity, -np.inf)
        return np.argsort(-similarity, axis=1)[:, :k]

    overlap = np.mean(
        [len(set(a) & set(b)) / k for a, b in zip(neighbours(vectors_torch), neighbours(vectors_ov), strict=True)]
    )
    print(
        f"agreement CLIP ({len(crops)} images): embedding cosine min {cosines.min():.6f} mean {cosines.mean():.6f}, "
        f"top-{k} overlap {overlap:.3f}"
    )


def run_benchmark(args) -> None:
    import torch

    rows = photo_rows()
    step = max(1, len(rows) // max(args.images, 1))
    photos = [Image.open(path).convert("RGB") for path, _ in rows[::step][: args.images]]
    batch_photos = [Image.open(path).convert("RGB") for path, _ in rows[:: max(1, len(rows) // 16)][:16]]
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs; photos {photos[0].size} ...; tokens {args.tokens}")
    rss_before = peak_rss_mb()
    torch.set_num_threads(1)
    start = time.perf_counter()
    stages = build_real_size_stages(args.tokens)
    print(f"built real-size models in {time.perf_counter() - start:.1f} s")
    bench_cutout_loop(photos[0])
    ov_stages = None
    if "openvino" in args.runtimes:
        ov_stages = build_openvino_stages(stages, args.cache_dir, args.precision)
        print(f"peak RSS with torch + OpenVINO models: {peak_rss_mb():.0f} MB")
        if args.agreement:
            agreement(stages, ov_stages, demo_photos(args.agreement), args.tokens)
    for threads in [1] if args.quick else args.threads:
        torch.set_num_threads(threads)
        label = f"cpu, {threads} thread{'s' if threads > 1 else ''}"
        timings = {}
        for runtime in args.runtimes:
            run_stages = stages if runtime == "torch" else openvino_threads(ov_stages, threads)
            run_label = f"{label}, {runtime}"
            timings[runtime] = bench_stages(run_stages, photos, args.repeat, run_label)
            detect_breakdown(run_stages[0], photos, run_label)
            bench_decode(run_stages[0], photos, args.beams, args.tokens, run_label)
            if runtime == "torch":
                bench_clip_batching(run_stages[2], batch_photos, args.repeat, run_label)
        if "torch" in timings and "openvino" in timings:
            print_comparison(timings["torch"], timings["openvino"], label)
    print(f"peak RSS with all models loaded: {peak_rss_mb():.0f} MB (before models {rss_before:.0f} MB)")
    if torch.cuda.is_available():
        to_device(stages, torch.device("cuda"), torch.float16)
        stages[0].model.generation_config.min_new_tokens = args.tokens
        bench_stages(stages, photos, args.repeat, f"cuda fp16, {torch.cuda.get_device_name()}")
        bench_decode(stages[0], photos, args.beams, args.tokens, "cuda fp16")
        bench_clip_batching(stages[2], batch_photos, args.repeat, "cuda fp16")
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MB")
    else:
        print("CUDA not available: GPU timings skipped")


# --- cutout background measurement ------------------------------------------------------------------


def border_colour_mask(image: Image.Image) -> Image.Image:
    """A rough garment mask for photos on a plain background: pixels far from the border's colour.

    Stands in for SAM 2 (no weights offline); photos where it fails are excluded by ``usable_mask``.
    """
    pixels = np.asarray(image, dtype=np.float32)
    height, width, _ = pixels.shape
    margin = max(2, int(0.04 * min(height, width)))
    border = np.concatenate(
        [pixels[:margin].reshape(-1, 3), pixels[-margin:].reshape(-1, 3)]
        + [pixels[:, :margin].reshape(-1, 3), pixels[:, -margin:].reshape(-1, 3)]
    )
    background = np.median(border, axis=0)
    threshold = max(30.0, float(np.percentile(np.linalg.norm(border - background, axis=1), 95)) * 1.2)
    foreground = np.linalg.norm(pixels - background, axis=2) > threshold
    mask = Image.fromarray((foreground * 255).astype(np.uint8))
    return mask.filter(ImageFilter.MedianFilter(7)).filter(ImageFilter.MaxFilter(9)).filter(ImageFilter.MinFilter(9))


def usable_mask(mask: Image.Image) -> bool:
    values = np.asarray(mask) > 0
    edge = np.concatenate([values[0], values[-1], values[:, 0], values[:, -1]])
    return 0.1 <= values.mean() <= 0.9 and edge.mean() < 0.1


def square_pad(image: Image.Image, colour=(255, 255, 255)) -> Image.Image:
    side = max(image.size)
    canvas = Image.new("RGB", (side, side), colour)
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas


def precision_at_k(vectors: np.ndarray, labels: list[str], k: int) -> float:
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    neighbours = np.argsort(-similarity, axis=1)[:, :k]
    label_array = np.array(labels)
    return float((label_array[neighbours] == label_array[:, None]).mean())


def measure_background(args) -> None:
    """Which image should the embedder see for a cut-out garment? Masks from ``border_colour_mask``.

    Table 1, catalog vs catalog: category precision@k over the CC0 photos (leave-one-out, 17 categories).
    Table 2, a shopper's photo of the same garment in another place: each garment is pasted on another
    photo (of another category) and used as the query against the untouched catalog; "self@1" is how often
    its own catalog photo comes first, P@5 its category precision. Both sides get the same treatment.
    """
    import torch

    from search.pipeline.base import Box
    from search.pipeline.cutout import MaskCutter
    from search.pipeline.embedders import EfficientNetLiteEmbedder

    torch.set_num_threads(1)
    embedder = EfficientNetLiteEmbedder.load(batch_size=16)
    photos, masks, labels = [], [], []
    rows = photo_rows()
    for path, category in rows:
        photo = Image.open(path).convert("RGB")
        mask = border_colour_mask(photo)
        if usable_mask(mask):
            photos.append(photo)
            masks.append(mask)
            labels.append(category)
    print(f"{len(photos)} of {len(rows)} photos have a usable border-colour mask; {len(set(labels))} categories")
    rng = np.random.default_rng(0)
    moved = []
    for index, (photo, mask) in enumerate(zip(photos, masks, strict=True)):
        others = [j for j in range(len(photos)) if labels[j] != labels[index]]
        background = photos[int(rng.choice(others))].resize(photo.size)
        moved.append(Image.composite(photo, background, mask))

    def prepare(variant: str, images: list[Image.Image]) -> list[Image.Image]:
        if variant == "whole photo (no cutout)":
            return images
        background = "white" if variant == "cutout, white, padded square" else variant.split()[-1]
        cutter = MaskCutter(background=background)
        cut = [cutter.cut(image, Box.whole(image), mask).embed_input for image, mask in zip(images, masks, strict=True)]
        return [square_pad(image) for image in cut] if variant.endswith("square") else cut

    variants = [
        "whole photo (no cutout)",
        "cutout, background keep",
        "cutout, background white",
        "cutout, background gray",
        "cutout, white, padded square",
    ]
    label_array = np.array(labels)
    print(f"{'embedder input':30s} {'P@1':>6s} {'P@5':>6s} {'P@10':>6s} | moved: {'self@1':>6s} {'P@5':>6s}")
    for variant in variants:
        catalog = embedder.embed_images(prepare(variant, photos))
        queries = embedder.embed_images(prepare(variant, moved))
        scores = [precision_at_k(catalog, labels, k) for k in (1, 5, 10)]
        similarity = queries @ catalog.T
        self_at_1 = float((similarity.argmax(axis=1) == np.arange(len(photos))).mean())
        np.fill_diagonal(similarity, -np.inf)  # category precision among the other garments
        top5 = np.argsort(-similarity, axis=1)[:, :5]
        moved_p5 = float((label_array[top5] == label_array[:, None]).mean())
        catalog_scores = " ".join(f"{score:6.3f}" for score in scores)
        print(f"{variant:30s} {catalog_scores} | moved: {self_at_1:6.3f} {moved_p5:6.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 image, 1 thread, 1 repeat")
    parser.add_argument("--images", type=int, default=2, help="photos per stage timing (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing; the best is kept (default 3)")
    parser.add_argument("--tokens", type=int, default=32, help="Florence-2 new tokens per image (default 32)")
    parser.add_argument("--beams", default="3,1", help="<OD> beam counts to compare (default 3,1; 1 = greedy)")
    parser.add_argument("--measure-background", action="store_true", help="cutout background measurement only")
    parser.add_argument("--threads", default="1,2", help="CPU thread counts (default 1,2)")
    parser.add_argument(
        "--runtimes", default="", help="torch,openvino (default: both where openvino is installed, else torch)"
    )
    parser.add_argument("--precision", default="f32", choices=["f32", "bf16"], help="OpenVINO precision hint")
    parser.add_argument("--cache-dir", default=str(REPO_ROOT / ".models" / "cache"), help="OpenVINO IR cache")
    parser.add_argument("--agreement", type=int, default=6, help="demo photos for the agreement lines (0 = none)")
    args = parser.parse_args()
    args.beams = [int(count) for count in args.beams.split(",")]
    args.threads = [int(count) for count in args.threads.split(",") if count.strip()]  # "": agreement only
    if not args.runtimes:
        from search.pipeline.openvino_runtime import openvino_available

        args.runtimes = "torch,openvino" if openvino_available() else "torch"
    args.runtimes = [name.strip() for name in args.runtimes.split(",") if name.strip()]
    if args.quick:
        args.images, args.repeat = 1, 1
    if args.measure_background:
        measure_background(args)
    else:
        run_benchmark(args)


if __name__ == "__main__":
    main()
