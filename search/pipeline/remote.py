"""``RemotePipeline``: the ``Pipeline`` interface over HTTP to the inference service (search/pipeline/service.py).

``registry.get_pipeline()`` returns one when ``LOOKALIKE_INFERENCE_URL`` is set, so search and the
background tasks call it exactly as they call the in-process pipeline, and this process loads no model
(nothing here imports torch). A service that cannot be reached or fails raises ``PipelineError`` (HTTP
503 on a page or the API; a task fails the photo with the reason and retries it after the backoff).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence

import numpy as np
import urllib3
from PIL import Image

from core.photos import downscale, to_rgb
from search.pipeline import wire
from search.pipeline.base import Box, GarmentResult, PipelineError, UnsupportedOperation

INFO_TTL_SECONDS = 30.0  # a restarted service with another model is noticed within this


class RemotePipeline:
    """Same properties and methods as ``search.pipeline.runner.Pipeline``; thread-safe."""

    def __init__(self, url: str, *, timeout: float = 120.0, pool_size: int = 16):
        self.url = url.rstrip("/")
        self._http = urllib3.PoolManager(
            maxsize=pool_size, block=False, retries=False, timeout=urllib3.Timeout(connect=5.0, read=timeout)
        )
        self._info: dict | None = None
        self._info_at = 0.0
        self._info_lock = threading.Lock()

    # --- transport ----------------------------------------------------------------------------------

    def _unreachable(self, detail: str) -> PipelineError:
        return PipelineError(
            f"The inference service at {self.url} is not available ({detail}). Start it with "
            "`python manage.py inference_server`, or unset LOOKALIKE_INFERENCE_URL to run the models in this process.",
            code="inference_unavailable",
        )

    def _call(self, payload: dict) -> dict:
        try:
            response = self._http.request(
                "POST",
                f"{self.url}/predict",
                body=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
            )
        except urllib3.exceptions.HTTPError as exc:
            raise self._unreachable(type(exc).__name__ + (f": {exc.reason}" if hasattr(exc, "reason") else "")) from exc
        if response.status != 200:
            raise self._unreachable(f"HTTP {response.status}: {response.data[:300].decode(errors='replace')}")
        data = json.loads(response.data)
        error = data.get("error") if isinstance(data, dict) else None
        if error:
            kind = UnsupportedOperation if error.get("type") == "UnsupportedOperation" else PipelineError
            raise kind(error.get("message") or "the inference service failed")
        return data

    def health(self) -> bool:
        """Whether the service answers its health check (its models were loaded at start)."""
        try:
            return self._http.request("GET", f"{self.url}/health", timeout=5.0).status == 200
        except urllib3.exceptions.HTTPError:
            return False

    def info(self, *, fresh: bool = False) -> dict:
        """The service's profile, embedder and batching figures (cached for ``INFO_TTL_SECONDS``)."""
        with self._info_lock:
            if fresh or self._info is None or time.monotonic() - self._info_at > INFO_TTL_SECONDS:
                self._info = self._call({"op": "info"})
                self._info_at = time.monotonic()
            return self._info

    # --- the Pipeline interface ---------------------------------------------------------------------

    @property
    def profile(self) -> str:
        return self.info()["profile"]

    @property
    def reason(self) -> str:
        return self.info().get("reason", "")

    @property
    def embedder_id(self) -> str:
        return self.info()["embedder_id"]

    @property
    def embedding_dim(self) -> int:
        return int(self.info()["embedding_dim"])

    @property
    def supports_text(self) -> bool:
        return bool(self.info()["supports_text"])

    @property
    def max_side(self) -> int:
        return int(self.info()["max_side"])

    def describe(self) -> str:
        return f"inference service {self.url}: {self.info()['describe']}"

    def prepare(self, image: Image.Image) -> Image.Image:
        """Shrunk here as the service would, so only the pixels it uses cross the wire."""
        return downscale(to_rgb(image), self.max_side)

    def process(self, images: Sequence[Image.Image]) -> list[list[GarmentResult]]:
        prepared = [self.prepare(image) for image in images]
        if not prepared:
            return []
        data = self._call({"op": "process", "images": [wire.image_to_wire(image) for image in prepared]})
        return [wire.garments_from_wire(per_image) for per_image in data["garments"]]

    def process_boxes(self, image: Image.Image, boxes: Sequence[Box]) -> list[GarmentResult]:
        prepared = self.prepare(image)
        boxes = [box.clamped(prepared.width, prepared.height) for box in boxes]
        if not boxes:
            return []
        data = self._call(
            {
                "op": "embed_boxes",
                "image": wire.image_to_wire(prepared),
                "boxes": [wire.box_to_wire(box) for box in boxes],
            }
        )
        return wire.garments_from_wire(data["garments"])

    def process_image(self, image: Image.Image) -> list[GarmentResult]:
        return self.process([image])[0]

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Without a text tower the answer is known here: no round trip queued behind photos."""
        if not self.supports_text:
            raise UnsupportedOperation(
                f"The embedder {self.embedder_id!r} of the inference service has no text tower, so text search "
                "by meaning is not available (keyword search still is)."
            )
        return wire.vectors_from_wire(self._call({"op": "embed_text", "texts": list(texts)})["vectors"])
