"""Loading Hugging Face models from a local folder or the local cache, failing fast and clearly offline.

A model source is a hub id ("patrickjohncyh/fashion-clip") or a folder written by ``manage.py
download_models``. That command also writes ``lookalike_model.json`` with the hub id, so a copy of the
weights keeps the same ``model_id`` wherever it is stored (the database keeps vectors apart by it).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from search.pipeline.base import ModelLoadError

logger = logging.getLogger("search.pipeline")

MARKER_FILE = "lookalike_model.json"


def is_local_path(source: str) -> bool:
    """A folder (existing or not) rather than a hub id: absolute, relative with ./, or ~."""
    return source.startswith(("/", "./", "../", "~")) or Path(source).expanduser().is_dir()


def model_id_for(source: str) -> str:
    """Identity of the weights behind a source: the hub id, the marker's id for a downloaded copy, or the
    absolute folder path for a folder without a marker (never silently equal to another model's id)."""
    if not is_local_path(source):
        return source
    folder = Path(source).expanduser().resolve()
    marker = folder / MARKER_FILE
    if marker.is_file():
        try:
            return str(json.loads(marker.read_text())["model_id"])
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring unreadable %s in %s", MARKER_FILE, folder)
    return str(folder)


def write_marker(folder: Path, model_id: str) -> None:
    (folder / MARKER_FILE).write_text(json.dumps({"model_id": model_id}) + "\n")


def is_available_offline(source: str) -> bool:
    """True when the source's config can be read without any network: a folder, or the HF cache."""
    if is_local_path(source):
        return (Path(source).expanduser() / "config.json").is_file()
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo_id=source, filename="config.json")
    except Exception:  # an invalid repo id is simply "not available"
        return False
    return isinstance(cached, str)


def load_error(what: str, source: str, setting: str, reason: str) -> ModelLoadError:
    return ModelLoadError(
        f"Could not load {what} model {source!r} (setting {setting}): {reason}. "
        f"Run `python manage.py download_models --to DIR` on a connected machine and set {setting}=DIR/..., "
        "or use LOOKALIKE_PROFILE=offline."
    )


def _reason(source: str, exc: BaseException, *, tried_hub: bool) -> str:
    if is_local_path(source):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            return f"the folder {folder} does not exist"
        if not (folder / "config.json").is_file():
            return f"the folder {folder} holds no config.json (not a saved model)"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if is_local_path(source):
        return text[:300]
    if not tried_hub:
        return f"not in the local Hugging Face cache; no download attempted ({text[:160]})"
    return f"no network and not in the local cache ({text[:200]})"


def load_pretrained(
    cls: Any,
    source: str,
    *,
    what: str,
    setting: str,
    device: Any = None,
    dtype: Any = None,
    local_files_only: bool = False,
) -> Any:
    """``cls.from_pretrained(source)`` trying the local copy first; the hub only if allowed and needed.

    Models come back in eval mode on ``device``; any failure becomes a ``ModelLoadError`` naming the setting.
    """
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a bar per load only clutters worker and command logs
    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    local_source = str(Path(source).expanduser()) if is_local_path(source) else source
    try:
        loaded = cls.from_pretrained(local_source, local_files_only=True, **kwargs)
    except Exception as local_exc:
        if local_files_only or is_local_path(source):
            raise load_error(what, source, setting, _reason(source, local_exc, tried_hub=False)) from local_exc
        try:
            loaded = cls.from_pretrained(source, **kwargs)
        except Exception as exc:
            raise load_error(what, source, setting, _reason(source, exc, tried_hub=True)) from exc
    if hasattr(loaded, "eval"):
        loaded.eval()
        if device is not None:
            loaded.to(device)
    return loaded


def release(owner: Any, *names: str) -> None:
    """Drop torch submodules that another runtime now runs (OpenVINO, ONNX Runtime), so the process does not hold
    two copies of their weights, and hand the freed memory back to the OS."""
    import gc

    for name in names:
        setattr(owner, name, None)
    gc.collect()
    return_freed_memory()


def return_freed_memory() -> None:
    """glibc's ``malloc_trim``: freed weights otherwise stay in malloc's arenas, where RSS still counts them
    (55-100 MB of the full profile's worker, bench/full_memory.py). A no-op off glibc."""
    import contextlib
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError, TypeError):  # musl, macOS, Windows: nothing to trim
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)


def weights_fingerprint(module: Any, config: Any = None) -> str:
    """A short hash of a module's config and weights: each tensor's name, shape, dtype and first 64 values (any
    other checkpoint or fine-tune changes those). Reading no further leaves the pages of the weights that
    OpenVINO replaces untouched (transformers maps the checkpoint file; touching values spread along each tensor
    pulled 710 MB of Florence-2-base into memory), so a later start keeps the released encoders out of RSS."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    if config is not None:
        digest.update(config.to_json_string(use_diff=False).encode())
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(tensor.detach().reshape(-1)[:64].to(torch.float64).cpu().numpy().tobytes())
    return digest.hexdigest()[:16]
