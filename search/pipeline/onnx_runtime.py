"""ONNX Runtime for the CPU path: one way to open a session, and EfficientNet-Lite0 exported once to ONNX.

EfficientNet-Lite0 ran ~10x faster per image in ONNX Runtime than in PyTorch here (bench/offline_pipeline.py),
with the same features (cosine > 0.9999). The export runs once, at first use, into
``LOOKALIKE_MODEL_CACHE_DIR``; the file name carries the weights' size and the exporter's version, so a new
weights file or torch makes a new export. Writes go to a temporary file then ``os.replace``, so two workers
exporting at once cannot leave a half-written model.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from search.pipeline.base import ModelLoadError

RUNTIMES = ("auto", "onnx", "torch")
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

    from search.pipeline.embedders import efficientnet_lite0_weights, load_efficientnet_lite0

    weights = efficientnet_lite0_weights()
    name = f"efficientnet-lite0-{weights.stat().st_size}-torch{torch.__version__.split('+')[0]}.onnx"
    target = Path(cache_dir) / name
    if target.is_file():
        return target
    with _export_lock:
        if target.is_file():
            return target
        try:
            import onnx  # noqa: F401  (torch's exporter needs it)
        except ImportError as exc:
            raise ModelLoadError(
                "Could not export efficientnet-lite0 to ONNX: the onnx package is missing. Run `pip install "
                "onnx` (requirements.txt), or set LOOKALIKE_EMBEDDER_RUNTIME=torch."
            ) from exc
        target.parent.mkdir(parents=True, exist_ok=True)
        model = _features_and_logits(load_efficientnet_lite0())
        handle, temporary = tempfile.mkstemp(suffix=".onnx", dir=target.parent)
        os.close(handle)
        try:
            with torch.inference_mode(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the exporter's notes on its own deprecation and constant folding
                torch.onnx.export(
                    model,
                    (torch.zeros(1, 3, 224, 224),),
                    temporary,
                    input_names=["pixels"],
                    output_names=["features", "logits"],
                    dynamic_axes={"pixels": {0: "n"}, "features": {0: "n"}, "logits": {0: "n"}},
                    opset_version=EFFICIENTNET_LITE0_ONNX_OPSET,
                    dynamo=False,  # the TorchScript exporter: no onnxscript needed, and a plain static graph
                )
            os.replace(temporary, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
    return target


class OnnxEfficientNetLite0:
    """EfficientNet-Lite0 in ONNX Runtime: ``run(pixels)`` -> (features (n, 1280), logits (n, 1000))."""

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


def resolve_runtime(name: str, *, device_type: str = "cpu") -> str:
    """``auto`` is ``onnx`` on the CPU when onnxruntime is installed, else ``torch`` (GPUs stay on torch)."""
    name = (name or "auto").strip().lower()
    if name not in RUNTIMES:
        from search.pipeline.base import PipelineError

        raise PipelineError(f"LOOKALIKE_EMBEDDER_RUNTIME={name!r} is not one of {', '.join(RUNTIMES)}.")
    if name == "auto":
        return "onnx" if device_type == "cpu" and onnxruntime_available() else "torch"
    return name
