"""OpenVINO for the CPU path: one way to compile a model for the CPU, with a precision hint.

On this machine's CPUs (AVX-512 BF16), OpenVINO's bf16 path ran U²-Net-p at 320x320 about 2x faster than
ONNX Runtime fp32 on one thread (0.24 s vs 0.48 s per photo), from the same ONNX file.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from search.pipeline.base import ModelLoadError

PRECISIONS = ("f32", "bf16")


def import_openvino(what: str, hint: str = "") -> Any:
    """``openvino``, or a ModelLoadError naming ``what`` needed it and how to install it (``hint``: another way)."""
    try:
        import openvino
    except ImportError as exc:
        raise ModelLoadError(
            f"Could not load {what}: openvino is missing. Run `pip install openvino` (requirements.txt){hint}."
        ) from exc
    return openvino


def openvino_available() -> bool:
    try:
        import_openvino("OpenVINO")
    except ModelLoadError:
        return False
    return True


def cpu_compiled(model: str | Path | Any, *, threads: int = 0, precision: str = "bf16", what: str = "a model") -> Any:
    """A model (ONNX/IR path or an ``openvino.Model``) compiled for the CPU, for latency.

    ``threads`` 0 lets OpenVINO use every core; ``precision`` is the inference precision hint (bf16 falls back
    to f32 on CPUs without bf16 support, which OpenVINO decides itself).

    CPU pinning is off: OpenVINO pins its threads from the first core in every process, so two 1-thread worker
    processes shared one core and ran at half speed each (U²-Net-p 1.04 s/photo each vs 0.53 alone); unpinned,
    the OS spreads them (bench/offline_pipeline.py --processes).
    """
    if precision not in PRECISIONS:
        raise ModelLoadError(f"Unknown OpenVINO precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    openvino = import_openvino(what)
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision, "ENABLE_CPU_PINNING": False}
    if threads > 0:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    try:
        source = str(model) if isinstance(model, str | Path) else model
        return openvino.Core().compile_model(source, "CPU", config)
    except Exception as exc:  # a corrupt or unsupported model
        raise ModelLoadError(f"Could not compile {what} for OpenVINO's CPU plugin: {exc}") from exc


class InferPerThread:
    """A compiled model that several threads call at once (web threads sharing one pipeline).

    An infer request is not thread-safe, and ``CompiledModel.__call__`` shares one: each calling thread gets
    its own request instead, so concurrent calls neither share buffers nor wait on a lock.
    """

    def __init__(self, compiled: Any):
        self.compiled = compiled
        self._local = threading.local()

    def __call__(self, inputs: Any) -> Any:
        """Outputs (indexable by position or by output) for ``inputs`` (a list, or a dict by input name)."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request.infer(inputs)
