"""The full profile's heavy encoders in OpenVINO on the CPU (``LOOKALIKE_FULL_RUNTIME``).

What runs where: SAM 2's image encoder (one pass per photo, the bulk of segmenting), Florence-2's DaViT vision
tower + projector and its BART text encoder over image and prompt tokens, and CLIP's image tower are
converted from the loaded PyTorch modules (``openvino.convert_model``, no ONNX in between) and compiled for
the CPU. SAM 2's prompt encoder + mask decoder and Florence-2's token-by-token decoder (``generate``: greedy or
beams, as configured) stay in PyTorch: they are small per call and keep transformers' generation logic.

``openvino`` asks for f32 inference, so the numbers match PyTorch fp32 (cosine 1.000000, identical masks and
greedy tokens on real photos, bench/pipeline.py prints it); ``openvino-bf16`` asks for bf16 where the CPU has
it (AVX-512 BF16 / AMX; elsewhere OpenVINO silently stays f32), and there Florence-2's torch decoder runs in
bf16 too (1.6x greedy, 2.7x with 3 beams; agreement in bench/README.md). Each
conversion runs once per cache folder; the IR's file name carries a fingerprint of the module's config and
weights and the OpenVINO version, so other weights make a new file, and files are written under a temporary
name, then renamed (.bin before .xml), so two workers converting at once never read a half-written model.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search.pipeline.base import ModelLoadError, PipelineError
from search.pipeline.loading import release, weights_fingerprint
from search.pipeline.openvino_runtime import InferPerThread, cpu_compiled, import_openvino

FULL_RUNTIMES = ("auto", "torch", "openvino", "openvino-bf16")
SETTING = "LOOKALIKE_FULL_RUNTIME"
_convert_lock = threading.Lock()


def resolve_full_runtime(name: str, *, device_type: str = "cpu") -> str:
    """``auto`` is ``torch``; ``openvino`` is opted into (CPU only).

    Measured on the 2-core AVX2 machine (bench/pipeline.py, same run): 2 threads, full pipeline 12.7 -> 9.0 s
    (1.42x; SAM 2 1.95x, <OD> 1.30x, CLIP 1.76x); 1 thread about even (0.95x), the same masks and tokens.
    Not the default yet: a worker peaks at 5.3 GB RSS on its first start (conversion) and 3.7 GB on later ones
    (2.2 GB of it heap, the rest mapped model files), over its 3 GB budget (bench/full_memory.py; torch: 2.7 GB).
    """
    name = (name or "auto").strip().lower()
    if name not in FULL_RUNTIMES:
        raise PipelineError(f"{SETTING}={name!r} is not one of {', '.join(FULL_RUNTIMES)}.")
    if name == "auto":
        return "torch"
    if name != "torch":
        if device_type != "cpu":
            raise PipelineError(
                f"{SETTING}={name} runs on the CPU only, but LOOKALIKE_DEVICE resolved to {device_type}; "
                f"set {SETTING}=torch (or auto) on a GPU."
            )
        import_openvino(f"the full profile's encoders ({SETTING}={name})", hint=f", or set {SETTING}=torch")
    return name


def precision_for(runtime: str) -> str:
    return "bf16" if runtime == "openvino-bf16" else "f32"


def decoder_in_bf16(runtime: str) -> bool:
    """Whether Florence-2's torch side (decoder, shared embeddings, LM head) runs bf16 beside ``runtime``'s
    encoders: under ``openvino-bf16`` on a CPU that runs bf16 (1.6x greedy, 2.7x with 3 beams here)."""
    return precision_for(runtime) == "bf16" and cpu_runs_bf16()


def cpu_runs_bf16() -> bool:
    """Whether OpenVINO's CPU plugin has bf16 kernels here (AVX-512 BF16 or AMX), i.e. the bf16 hint is real.

    The same test decides whether Florence-2's torch decoder turns bf16 under ``openvino-bf16``: without those
    instructions torch emulates bf16, slower than fp32."""
    openvino = import_openvino("the bf16 check")
    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def runtime_for(config: Any, model: Any) -> str:
    """The runtime of a full-profile stage built from ``config``: ``auto`` keeps torch for a model that is not
    fp32 on the CPU (LOOKALIKE_DTYPE=bf16/fp16), which OpenVINO's f32 graphs would not reproduce."""
    import torch

    runtime = resolve_full_runtime(config.full_runtime, device_type=config.torch_device.type)
    if runtime != "torch" and getattr(model, "dtype", torch.float32) != torch.float32:
        if (config.full_runtime or "auto").strip().lower() == "auto":
            return "torch"
        raise PipelineError(f"{SETTING}={runtime} converts fp32 models; LOOKALIKE_DTYPE must be fp32 (or auto).")
    return runtime


def cached_ir(
    name: str, cache_dir: str | Path | None, build: Callable[[], Any], *, what: str
) -> tuple[Any, Path, bool]:
    """An ``openvino.Model`` read from ``cache_dir/name.xml``, converted by ``build()`` and saved there first if
    missing. Returns (model, path, converted now)."""
    openvino = import_openvino(what)
    if not cache_dir:
        raise ModelLoadError(f"{what} in OpenVINO needs a cache folder (LOOKALIKE_MODEL_CACHE_DIR).")
    target = Path(cache_dir) / f"{name}-ov{openvino.get_version().split('-')[0]}.xml"
    converted = False
    with _convert_lock:
        if not target.is_file():
            _save_ir(build(), target, what=what)
            converted = True
    try:
        return openvino.Core().read_model(str(target)), target, converted
    except Exception as exc:  # a corrupt file
        raise ModelLoadError(f"Could not read {what} from {target}: {exc}; delete it to convert again.") from exc


def _save_ir(model: Any, target: Path, *, what: str) -> None:
    openvino = import_openvino(what)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        staged = folder / target.name
        openvino.save_model(model, str(staged), compress_to_fp16=False)  # f32 weights: torch's numbers
        os.replace(staged.with_suffix(".bin"), target.with_suffix(".bin"))
        os.replace(staged, target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def convert(module: Any, example: tuple, shapes: Sequence[Sequence[int]], *, what: str) -> Any:
    """``openvino.convert_model`` of a torch module traced at ``example``; ``shapes`` fix the input shapes
    (-1 = dynamic), so the image size is static and shape arithmetic folds away."""
    import torch

    openvino = import_openvino(what)
    try:
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on Python control flow fixed at the traced shape
            return openvino.convert_model(
                module.eval(), example_input=example, input=[openvino.PartialShape(list(s)) for s in shapes]
            )
    except Exception as exc:
        raise ModelLoadError(f"Could not convert {what} to OpenVINO: {exc}; set {SETTING}=torch.") from exc


class OpenVinoGraph:
    """A converted graph, compiled for the CPU at a thread count; ``__call__`` maps numpy inputs to outputs."""

    def __init__(self, model: Any, *, threads: int = 0, precision: str = "f32", what: str = "a model"):
        self.model = model
        self.precision = precision
        self.what = what
        self.threads = threads
        self.compiled = cpu_compiled(model, threads=threads, precision=precision, what=what)
        self._infer = InferPerThread(self.compiled)  # the pipeline is shared by threads
        self._running = 0  # calls in flight: OpenVINO refuses release_memory() while any request runs
        self._running_lock = threading.Lock()

    def with_threads(self, threads: int) -> OpenVinoGraph:
        return OpenVinoGraph(self.model, threads=threads, precision=self.precision, what=self.what)

    def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
        with self._running_lock:
            self._running += 1
        try:
            result = self._infer([np.ascontiguousarray(value) for value in inputs])
            return [np.array(result[index]) for index in range(len(self.compiled.outputs))]
        finally:
            with self._running_lock:
                self._running -= 1
                if self._running == 0:
                    # The last call out frees the activation buffers, which a compiled graph otherwise keeps:
                    # four graphs' worth held at once (~0.5 GB at the real sizes), where PyTorch frees each
                    # stage's after it (bench/full_memory.py). Costs < 5% of a call (bench/README.md).
                    self.compiled.release_memory()


def _threads(threads: int) -> int:
    return max(0, int(threads or 0))


# --- SAM 2: image encoder -------------------------------------------------------------------------------


def sam2_image_encoder(
    model: Any, cache_dir: str | Path | None, *, threads: int = 0, precision: str = "f32", keep_torch: bool = False
):
    """SAM 2's ``get_image_embeddings`` (Hiera + FPN + the decoder's two high-resolution projections + the
    no-memory embedding) for one image at the model's input size: pixels -> its three feature maps.

    The torch encoder is released unless ``keep_torch`` (bench/pipeline.py times both)."""
    import torch

    what = "the SAM 2 image encoder"

    class ImageEmbeddings(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: torch.Tensor):
            return tuple(self.inner.get_image_embeddings(pixel_values))

    size = int(model.config.prompt_encoder_config.image_size)
    shape = (1, 3, size, size)

    def build() -> Any:
        return convert(ImageEmbeddings(model), (torch.zeros(shape),), [shape], what=what)

    name = f"sam2-image-encoder-{weights_fingerprint(model, model.config)}"
    ir, _, _ = cached_ir(name, cache_dir, build, what=what)
    if not keep_torch:
        release(model, "vision_encoder")  # before compiling: the two copies never coexist
    return OpenVinoGraph(ir, threads=_threads(threads), precision=precision, what=what)


# --- Florence-2: vision tower + projector, text encoder ------------------------------------------------


class Florence2Encoders:
    """Florence-2's encoder side in OpenVINO: ``image_features(pixels)`` (DaViT + projector) and
    ``encode(inputs_embeds)`` (the BART encoder), so ``generate`` only runs the decoder."""

    def __init__(self, vision: OpenVinoGraph, text: OpenVinoGraph):
        self.vision = vision
        self.text = text

    def with_threads(self, threads: int) -> Florence2Encoders:
        return Florence2Encoders(self.vision.with_threads(threads), self.text.with_threads(threads))

    @classmethod
    def load(
        cls,
        model: Any,
        cache_dir: str | Path | None,
        *,
        image_size: int,
        threads: int = 0,
        precision: str = "f32",
        keep_torch: bool = False,
    ) -> Florence2Encoders:
        """The torch vision tower, projector and text encoder are released unless ``keep_torch``: ``generate``
        gets the encoder's output, so only the decoder (and the shared embeddings) stay in PyTorch."""
        import torch

        inner = model.model
        size = int(image_size)

        class Vision(torch.nn.Module):
            def __init__(self, owner: Any):
                super().__init__()
                self.owner = owner

            def forward(self, pixel_values: torch.Tensor):
                return self.owner.get_image_features(pixel_values).pooler_output

        class TextEncoder(torch.nn.Module):
            def __init__(self, encoder: Any):
                super().__init__()
                self.encoder = encoder

            def forward(self, inputs_embeds: torch.Tensor):
                return self.encoder(inputs_embeds=inputs_embeds).last_hidden_state

        fingerprint = weights_fingerprint(model, model.config)
        vision_what, text_what = "the Florence-2 vision encoder", "the Florence-2 text encoder"
        pixels = torch.zeros(1, 3, size, size)
        vision_ir, _, _ = cached_ir(
            f"florence2-vision-{fingerprint}",
            cache_dir,
            lambda: convert(Vision(inner), (pixels,), [(-1, 3, size, size)], what=vision_what),
            what=vision_what,
        )
        width = int(model.config.text_config.d_model)
        embeds = torch.zeros(1, 8, width)
        text_ir, _, _ = cached_ir(
            f"florence2-text-encoder-{fingerprint}",
            cache_dir,
            lambda: convert(TextEncoder(inner.get_encoder()), (embeds,), [(-1, -1, width)], what=text_what),
            what=text_what,
        )
        if not keep_torch:
            release(inner, "vision_tower", "multi_modal_projector")
            release(inner.language_model, "encoder")
        threads = _threads(threads)
        return cls(
            OpenVinoGraph(vision_ir, threads=threads, precision=precision, what=vision_what),
            OpenVinoGraph(text_ir, threads=threads, precision=precision, what=text_what),
        )

    def image_features(self, pixels: np.ndarray) -> np.ndarray:
        return self.vision(pixels.astype(np.float32))[0]

    def encode(self, inputs_embeds: np.ndarray) -> np.ndarray:
        return self.text(inputs_embeds.astype(np.float32))[0]


# --- CLIP: image tower ----------------------------------------------------------------------------------


def clip_image_tower(
    model: Any, cache_dir: str | Path | None, *, threads: int = 0, precision: str = "f32", keep_torch: bool = False
):
    """CLIP's ``get_image_features`` (vision transformer + projection, not normalised), dynamic batch; the torch
    image tower is released unless ``keep_torch``."""
    import torch

    from search.pipeline.embedders import projected_embeddings

    what = "the CLIP image tower"
    size = int(model.config.vision_config.image_size)

    class ImageFeatures(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: torch.Tensor):
            return projected_embeddings(self.inner.get_image_features(pixel_values=pixel_values))

    def build() -> Any:
        example = (torch.zeros(2, 3, size, size),)
        return convert(ImageFeatures(model), example, [(-1, 3, size, size)], what=what)

    fingerprint = weights_fingerprint(torch.nn.ModuleList([model.vision_model, model.visual_projection]), model.config)
    ir, _, _ = cached_ir(f"clip-image-{fingerprint}", cache_dir, build, what=what)
    if not keep_torch:
        release(model, "vision_model", "visual_projection")
    return OpenVinoGraph(ir, threads=_threads(threads), precision=precision, what=what)
