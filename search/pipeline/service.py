"""The pipeline as a separate inference service (``manage.py inference_server``), built on LitServe.

One LitAPI serves tagged requests (``op``: ``process``, ``embed_boxes``, ``embed_text``, ``info``).
LitServe collects concurrent requests into one batch (``max_batch_size``, ``batch_timeout``); ``predict``
then runs all photos of the batch through ONE ``Pipeline.process`` call and all texts through one text
call, so requests from different web processes and workers share a forward pass. Models are loaded
before the port opens (LitServe starts serving after ``setup``), dropped after ``idle_unload_seconds``
without a request (as Immich does) and loaded again by the next request. ``info`` never loads a model.

LitServe runs ``setup`` and ``predict`` in a spawned inference process: Django is set up there from the
inherited ``DJANGO_SETTINGS_MODULE``, so the service reads the same settings as the web and the workers.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from collections import Counter

import litserve as ls

from search.pipeline import wire
from search.pipeline.base import PipelineError

logger = logging.getLogger("search.pipeline")


class PipelineAPI(ls.LitAPI):
    """The pipeline behind one LitServe endpoint, with batching across requests and idle unloading."""

    def __init__(self, *, max_batch_size: int, batch_timeout: float, idle_unload_seconds: float):
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path="/predict")
        self.idle_unload_seconds = idle_unload_seconds

    # --- model life cycle (runs in the inference process) -------------------------------------------

    def setup(self, device):
        import django

        django.setup()
        self._lock = threading.Lock()
        self._pipeline = None
        self._meta: dict = {}
        self._stats = {"loads": 0, "unloads": 0, "requests": 0, "batch_sizes": Counter()}
        with self._lock:
            self._load()  # preload: LitServe opens the port only after setup
            self._last_used = time.monotonic()
        if self.idle_unload_seconds > 0:
            threading.Thread(target=self._unload_when_idle, name="idle-unload", daemon=True).start()

    def _load(self):
        from search.pipeline.config import PipelineConfig
        from search.pipeline.registry import build_pipeline

        started = time.monotonic()
        pipeline = build_pipeline(PipelineConfig.from_settings())
        self._pipeline = pipeline
        self._meta = {
            "profile": pipeline.profile,
            "describe": pipeline.describe(),
            "reason": pipeline.reason,
            "embedder_id": pipeline.embedder_id,
            "embedding_dim": pipeline.embedding_dim,
            "supports_text": pipeline.supports_text,
            "max_side": pipeline.max_side,
        }
        self._stats["loads"] += 1
        logger.info("inference service: %s loaded in %.1f s", self._meta["describe"], time.monotonic() - started)
        return pipeline

    def _unload_when_idle(self):
        interval = min(1.0, self.idle_unload_seconds / 4)
        while True:
            time.sleep(interval)
            with self._lock:
                idle = time.monotonic() - self._last_used
                if self._pipeline is not None and idle >= self.idle_unload_seconds:
                    self._pipeline = None
                    self._stats["unloads"] += 1
                    _free_memory()
                    logger.info("inference service: models unloaded after %.0f s idle", idle)

    # --- requests -----------------------------------------------------------------------------------

    def decode_request(self, request, **kwargs):
        op = request.get("op") if isinstance(request, dict) else None
        if op not in wire.OPS:
            return {"op": "invalid", "error": f"unknown op {op!r}; expected one of {', '.join(wire.OPS)}"}
        return request

    def predict(self, batch, **kwargs):
        outputs: list[dict | None] = [None] * len(batch)
        model_items = [i for i, item in enumerate(batch) if item["op"] not in ("info", "invalid")]
        with self._lock:
            self._stats["requests"] += len(batch)
            if model_items:
                self._stats["batch_sizes"][len(model_items)] += 1
                try:
                    pipeline = self._pipeline or self._load()
                except Exception as exc:
                    for i in model_items:
                        outputs[i] = _error(exc)
                    model_items = []
                for op, run in (("process", _run_process), ("embed_text", _run_texts)):
                    group = [i for i in model_items if batch[i]["op"] == op]
                    if group:
                        for i, output in zip(group, run(pipeline, [batch[i] for i in group]), strict=True):
                            outputs[i] = output
                for i in model_items:
                    if batch[i]["op"] == "embed_boxes":
                        outputs[i] = _guarded(_run_boxes, pipeline, batch[i])
                self._last_used = time.monotonic()
            for i, item in enumerate(batch):
                if item["op"] == "info":
                    outputs[i] = self._info()
                elif item["op"] == "invalid":
                    outputs[i] = {"error": {"type": "PipelineError", "message": item["error"]}}
        return outputs

    def encode_response(self, output, **kwargs):
        return output

    def _info(self) -> dict:
        sizes = self._stats["batch_sizes"]
        stats = {key: value for key, value in self._stats.items() if key != "batch_sizes"}
        return {
            **self._meta,
            "loaded": self._pipeline is not None,
            "idle_unload_seconds": self.idle_unload_seconds,
            "max_batch_size": self.max_batch_size,
            "batch_timeout": self.batch_timeout,
            "stats": {**stats, "batch_sizes": {str(size): count for size, count in sorted(sizes.items())}},
        }


def _error(exc: BaseException) -> dict:
    if not isinstance(exc, PipelineError):
        logger.exception("inference request failed", exc_info=exc)
    return {"error": {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__}}


def _guarded(run, pipeline, item) -> dict:
    try:
        return run(pipeline, item)
    except Exception as exc:
        return _error(exc)


def _run_process(pipeline, items: list[dict]) -> list[dict]:
    """All photos of all requests in ONE pipeline call; a failing batch falls back to request by request,
    so one bad photo does not fail its neighbours."""
    try:
        images = [[wire.image_from_wire(data) for data in item["images"]] for item in items]
        results = pipeline.process([image for images_of_one in images for image in images_of_one])
    except Exception:
        if len(items) == 1:
            return [_guarded(_process_one, pipeline, items[0])]
        return [_guarded(_process_one, pipeline, item) for item in items]
    outputs, position = [], 0
    for images_of_one in images:
        garments = results[position : position + len(images_of_one)]
        outputs.append({"garments": [wire.garments_to_wire(per_image) for per_image in garments]})
        position += len(images_of_one)
    return outputs


def _process_one(pipeline, item: dict) -> dict:
    results = pipeline.process([wire.image_from_wire(data) for data in item["images"]])
    return {"garments": [wire.garments_to_wire(per_image) for per_image in results]}


def _run_boxes(pipeline, item: dict) -> dict:
    boxes = [wire.box_from_wire(box) for box in item["boxes"]]
    return {"garments": wire.garments_to_wire(pipeline.process_boxes(wire.image_from_wire(item["image"]), boxes))}


def _run_texts(pipeline, items: list[dict]) -> list[dict]:
    texts = [list(item["texts"]) for item in items]
    try:
        vectors = pipeline.embed_text([text for texts_of_one in texts for text in texts_of_one])
    except Exception as exc:
        return [_error(exc)] * len(items)
    outputs, position = [], 0
    for texts_of_one in texts:
        outputs.append({"vectors": wire.vectors_to_wire(vectors[position : position + len(texts_of_one)])})
        position += len(texts_of_one)
    return outputs


def _free_memory() -> None:
    gc.collect()
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def serve(
    *,
    host: str,
    port: int,
    max_batch_size: int,
    batch_timeout: float,
    idle_unload_seconds: float,
    timeout: float,
    workers: int = 1,
) -> None:
    """Run the service until SIGTERM or Ctrl-C (both shut LitServe's processes down)."""
    api = PipelineAPI(
        max_batch_size=max_batch_size, batch_timeout=batch_timeout, idle_unload_seconds=idle_unload_seconds
    )
    server = ls.LitServer(api, accelerator="auto", devices=1, workers_per_device=workers, timeout=timeout)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    server.run(host=host, port=port, num_api_servers=1, generate_client_file=False, log_level="warning")
