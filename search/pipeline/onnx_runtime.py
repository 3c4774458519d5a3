"""ONNX Runtime for the CPU path: one way to open a session, and EfficientNet-Lite0 and CLIP's text tower
exported once to ONNX.

CLIP's text tower (what a text search encodes) ran 3x faster in ONNX Runtime than in PyTorch at the real
ViT-B/32 size on one thread (12-15 ms vs 37-45 ms per query, random weights, cosine 1.0000 between the two;
bench/text_search.py): a query is a handful of tokens, so PyTorch's per-operation overhead dominates. Its file
name carries a fingerprint of the config and weights, so other weights make a new export.

EfficientNet-Lite0 ran ~10x faster per image in ONNX Runtime than in PyTorch here (bench/offline_pipeline.py),
with the same features (cosine > 0.9999). The export runs once, at first use, into
``LOOKALIKE_MODEL_CACHE_DIR``; the file name carries the weights' size and the exporter's version, so a new
weights file or torch makes a new export. Writes go to a temporary file then ``os.replace``, so two workers
exporting at once cannot leave a half-written model.

``LOOKALIKE_EMBEDDER_RUNTIME=openvino`` compiles that same exported file with OpenVINO instead (bf16 hint, as
U²-Net-p; f32 on CPUs without bf16). On an AVX2-only EPYC (no bf16) it gave the same features (cosine 1.000000)
and ImageNet top-1 as ONNX Runtime at about the same CPU time (-3% to +25% per image across runs), so ``auto``
stays ``onnx``: opt in where bf16 makes it faster (bench/offline_pipeline.py --embedder-runtimes).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from search.pipeline.base import ModelLoadError

RUNTIMES = ("auto", "onnx", "openvino", "torch")
EFFICIENTNET_LITE0_ONNX_OPSET = 17
_export_lock = threading.Lock()


def import_onnxruntime(what: str, hint: str = "") -> Any:
    """``onnxruntime``, or a ModelLoadError naming ``what`` needed it and how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelLoadError(
            f"Could not load {what}: onnxruntime is missing. Run `pip install onnxruntime` (requirements.txt){hint}."
        ) from exc
    return onnxruntime


def onnxruntime_available() -> bool:
    try:
        import_onnxruntime("ONNX Runtime")
    except ModelLoadError:
        return False
    return True


def cpu_session(path: str | Path, *, threads: int = 0, what: str = "an ONNX model") -> Any:
    """An ONNX Runtime CPU session: all graph optimisations, ``threads`` intra-op threads (0 = one per core),
    one inter-op thread (the graphs here are chains, and the worker's other threads need the cores)."""
    onnxruntime = import_onnxruntime(what)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(0, int(threads))
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # a corrupt or incompatible file
        raise ModelLoadError(f"Could not load {what} from {path}: {exc}") from exc


def _features_and_logits(model: Any) -> Any:
    """EfficientNet-Lite0 as one graph with both outputs: pooled features (the embedding) and ImageNet logits."""
    import torch

    class FeaturesAndLogits(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, pixels: torch.Tensor):
            pooled = self.inner.extract_features(pixels).mean(dim=(2, 3))
            return pooled, self.inner._fc(self.inner._dropout(pooled))  # what EfficientNet.forward does

    return FeaturesAndLogits(model).eval()


def efficientnet_lite0_onnx_path(cache_dir: str | Path) -> Path:
    """The cached ONNX export of the bundled EfficientNet-Lite0, exported now if it is not there yet."""
    import torch

    from search.pipeline.embedders import EFFICIENTNET_INPUT, efficientnet_lite0_weights, load_efficientnet_lite0

    weights = efficientnet_lite0_weights()
    size = EFFICIENTNET_INPUT  # static height and width (a plainer graph), so the name carries them
    name = f"efficientnet-lite0-{weights.stat().st_size}-{size}px-torch{torch.__version__.split('+')[0]}.onnx"
    target = Path(cache_dir) / name
    if target.is_file():
        return target
    with _export_lock:
        if target.is_file():
            return target
        _export(
            _features_and_logits(load_efficientnet_lite0()),
            (torch.zeros(1, 3, size, size),),
            target,
            input_names=["pixels"],
            output_names=["features", "logits"],
            dynamic_axes={"pixels": {0: "n"}, "features": {0: "n"}, "logits": {0: "n"}},
            opset_version=EFFICIENTNET_LITE0_ONNX_OPSET,
        )
    return target


def _export(module: Any, inputs: tuple, target: Path, **options: Any) -> None:
    """torch.onnx.export to a temporary file beside ``target``, then ``os.replace`` (see the module docstring)."""
    import torch

    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError as exc:
        raise ModelLoadError(
            "Could not export to ONNX: the onnx package is missing. Run `pip install onnx` (requirements.txt), "
            "or set LOOKALIKE_EMBEDDER_RUNTIME=torch."
        ) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".onnx", dir=target.parent)
    os.close(handle)
    try:
        with torch.inference_mode(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on its own deprecation and tracing
            # dynamo=False: the TorchScript exporter, no onnxscript needed, and a plain static graph
            torch.onnx.export(module, inputs, temporary, dynamo=False, **options)
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def clip_text_fingerprint(model: Any) -> str:
    """A short hash of a CLIP model's config and text-side weights: the export's name changes with the weights,
    not only with the model id. weights_fingerprint reads each tensor's first 64 values only, so the mapped
    checkpoint pages of a tower that ONNX Runtime then runs stay out of memory."""
    import torch

    from search.pipeline.loading import weights_fingerprint

    return weights_fingerprint(torch.nn.ModuleList([model.text_model, model.text_projection]), model.config)


class _ClipTextFeatures:
    """CLIPModel.get_text_features as a module with one tensor out (what the exporter traces)."""

    @staticmethod
    def wrap(model: Any) -> Any:
        import torch

        class TextFeatures(torch.nn.Module):
            def __init__(self, inner: Any):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
                from search.pipeline.embedders import projected_embeddings

                output = self.inner.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
                return projected_embeddings(output)

        return TextFeatures(model).eval()


def clip_text_onnx_path(model: Any, cache_dir: str | Path) -> Path:
    """The cached ONNX export of ``model``'s text tower (projected, not normalised), exported now if needed."""
    import torch

    name = f"clip-text-{clip_text_fingerprint(model)}-torch{torch.__version__.split('+')[0]}.onnx"
    target = Path(cache_dir) / name
    if target.is_file():
        return target
    with _export_lock:
        if not target.is_file():
            # Traced at 2 x 7 tokens with one padded row; batch and length stay dynamic.
            ids = torch.full((2, 7), int(model.config.text_config.eos_token_id or 0), dtype=torch.long)
            ids[:, 0] = int(model.config.text_config.bos_token_id or 0)
            mask = torch.ones_like(ids)
            mask[1, 4:] = 0
            axes = {0: "n", 1: "tokens"}
            _export(
                _ClipTextFeatures.wrap(model),
                (ids, mask),
                target,
                input_names=["input_ids", "attention_mask"],
                output_names=["text_embeds"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "text_embeds": {0: "n"}},
                opset_version=EFFICIENTNET_LITE0_ONNX_OPSET,
            )
    return target


class OnnxClipText:
    """CLIP's text tower in ONNX Runtime: ``run(input_ids, attention_mask)`` -> projected vectors (n, dim)."""

    def __init__(self, session: Any):
        self.session = session

    @classmethod
    def load(cls, model: Any, cache_dir: str | Path, *, threads: int = 0) -> OnnxClipText:
        import_onnxruntime("the CLIP text tower in ONNX Runtime", ", or set LOOKALIKE_EMBEDDER_RUNTIME=torch")
        if not cache_dir:
            raise ModelLoadError("The ONNX CLIP text tower needs a cache folder (LOOKALIKE_MODEL_CACHE_DIR).")
        path = clip_text_onnx_path(model, cache_dir)
        return cls(cpu_session(path, threads=threads, what="the CLIP text tower (ONNX)"))

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {
            "input_ids": np.ascontiguousarray(input_ids, dtype=np.int64),
            "attention_mask": np.ascontiguousarray(attention_mask, dtype=np.int64),
        }
        return self.session.run(None, feed)[0]


class OnnxEfficientNetLite0:
    """EfficientNet-Lite0 in ONNX Runtime: ``run(pixels)`` -> (features (n, 1280), logits (n, 1000))."""

    runtime = "onnx"

    def __init__(self, session: Any):
        self.session = session

    @classmethod
    def load(cls, cache_dir: str | Path, *, threads: int = 0) -> OnnxEfficientNetLite0:
        import_onnxruntime(
            "the efficientnet-lite0 embedder in ONNX Runtime", ", or set LOOKALIKE_EMBEDDER_RUNTIME=torch"
        )
        path = efficientnet_lite0_onnx_path(cache_dir)
        return cls(cpu_session(path, threads=threads, what="efficientnet-lite0 (ONNX)"))

    def run(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        features, logits = self.session.run(None, {"pixels": np.ascontiguousarray(pixels, dtype=np.float32)})
        return features, logits

    def features(self, pixels: np.ndarray) -> np.ndarray:
        return self.session.run(["features"], {"pixels": np.ascontiguousarray(pixels, dtype=np.float32)})[0]

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"pixels": np.ascontiguousarray(pixels, dtype=np.float32)})[0]


class OpenVinoEfficientNetLite0:
    """EfficientNet-Lite0 in OpenVINO, compiled from the same exported .onnx: the OnnxEfficientNetLite0 interface."""

    runtime = "openvino"

    def __init__(self, compiled: Any):
        from search.pipeline.openvino_runtime import InferPerThread

        self.compiled = compiled
        self._features, self._logits = compiled.output("features"), compiled.output("logits")
        self._infer_request = InferPerThread(compiled)

    @classmethod
    def load(cls, cache_dir: str | Path, *, threads: int = 0) -> OpenVinoEfficientNetLite0:
        from search.pipeline.openvino_runtime import cpu_compiled, import_openvino

        import_openvino("the efficientnet-lite0 embedder in OpenVINO", hint=", or set LOOKALIKE_EMBEDDER_RUNTIME=onnx")
        path = efficientnet_lite0_onnx_path(cache_dir)
        # f32, not bf16: on a CPU with AVX-512 BF16 the bf16 hint moves the vectors (raw cosine min .9955 to ONNX
        # Runtime's, 1.7x faster) and a catalog indexed by one runtime must be searchable by the other.
        return cls(cpu_compiled(path, threads=threads, precision="f32", what="efficientnet-lite0 (OpenVINO)"))

    def _infer(self, pixels: np.ndarray) -> Any:
        return self._infer_request({"pixels": np.ascontiguousarray(pixels, dtype=np.float32)})

    def run(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = self._infer(pixels)
        return outputs[self._features], outputs[self._logits]

    def features(self, pixels: np.ndarray) -> np.ndarray:
        return self._infer(pixels)[self._features]

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        return self._infer(pixels)[self._logits]


EFFICIENTNET_LITE0_RUNTIMES = {"onnx": OnnxEfficientNetLite0, "openvino": OpenVinoEfficientNetLite0}


@lru_cache(maxsize=4)
def shared_efficientnet_lite0(
    cache_dir: str, threads: int = 0, runtime: str = "onnx"
) -> OnnxEfficientNetLite0 | OpenVinoEfficientNetLite0:
    """One EfficientNet-Lite0 session per process (cache folder, threads, runtime "onnx" or "openvino"): the
    offline embedder and the box labeller read the same graph's two outputs."""
    if runtime not in EFFICIENTNET_LITE0_RUNTIMES:
        raise ModelLoadError(f"Unknown efficientnet-lite0 runtime {runtime!r}; choose onnx or openvino.")
    return EFFICIENTNET_LITE0_RUNTIMES[runtime].load(cache_dir, threads=threads)


def resolve_runtime(name: str, *, device_type: str = "cpu", openvino: bool = False) -> str:
    """``auto`` is ``onnx`` on the CPU when onnxruntime is installed, else ``torch`` (GPUs stay on torch).

    ``openvino=True``: the caller has an OpenVINO path (EfficientNet-Lite0), so ``openvino`` is kept; a caller
    without one (CLIP's text tower) reads ``openvino`` as ``onnx``, the nearest CPU runtime.
    """
    name = (name or "auto").strip().lower()
    if name not in RUNTIMES:
        from search.pipeline.base import PipelineError

        raise PipelineError(f"LOOKALIKE_EMBEDDER_RUNTIME={name!r} is not one of {', '.join(RUNTIMES)}.")
    if name == "auto":
        return "onnx" if device_type == "cpu" and onnxruntime_available() else "torch"
    if name == "openvino" and not openvino:
        return "onnx"
    return name
