"""Where and how precisely the models run: device and dtype choice, and torch's thread count."""

from __future__ import annotations

import threading

import torch

from search.pipeline.base import PipelineError

_DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}
_threads_lock = threading.Lock()
_threads_applied: int | None = None


def resolve_device(name: str) -> torch.device:
    """ "auto" picks CUDA, then Apple's MPS, then the CPU; an explicit device that is absent is an error."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise PipelineError(
            f"LOOKALIKE_DEVICE={name!r} is not a torch device (use auto, cpu, cuda, cuda:1 or mps)."
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PipelineError(
            "LOOKALIKE_DEVICE=cuda but no CUDA GPU is visible to torch; use LOOKALIKE_DEVICE=auto or cpu."
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise PipelineError("LOOKALIKE_DEVICE=mps but MPS is not available; use LOOKALIKE_DEVICE=auto or cpu.")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """ "auto" is fp16 on CUDA (half the memory, tensor cores) and fp32 elsewhere (CPU half is slow)."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in _DTYPES:
        raise PipelineError(f"LOOKALIKE_DTYPE={name!r} is not one of auto, fp32, fp16, bf16.")
    return _DTYPES[name]


def apply_torch_threads(threads: int) -> None:
    """Set torch's intra-op threads once per process (0 leaves torch's default).

    Called when the pipeline loads, not per request: changing it repeatedly is costly and racy.
    """
    global _threads_applied
    if threads <= 0:
        return
    with _threads_lock:
        if _threads_applied == threads:
            return
        torch.set_num_threads(threads)
        _threads_applied = threads
