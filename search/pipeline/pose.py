"""Person photos split into upper body, lower body and feet from MediaPipe's pose landmarks.

The models are three ``.tflite`` files (Apache-2.0) shipped inside the ``mediapipe==0.10.21`` wheel:
``pose_detection`` (BlazePose's person detector), ``pose_landmark_full`` (33 body landmarks) and
``face_detection_full_range_sparse`` (the person gate). We install that wheel with ``--no-deps`` and only
read the files: mediapipe's own code pins numpy<2, protobuf<5, jax and OpenCV. They run in
``ai-edge-litert`` (LiteRT, the TensorFlow Lite runtime; numpy>=1.23, fine with numpy 2), which is much
lighter than the mediapipe stack.

Flow (as MediaPipe's own pose graph): the detector finds the person's hip centre and body size; the
landmark model runs on that square region (which may reach past the photo, so a half-body photo is not
squeezed into a whole body). The landmark model's presence score alone says "person" on 72 of the 340
garment-only photos of clothing-cc0 (it is trained on regions that hold a person), and the person detector
fires on 58, so the gate also wants a face in the salient region and an upright skeleton: 0 of those 340
pass (highest face score .71), while the person photos tried score above .9. A worn garment whose
wearer's head is out of the photo is therefore not split into regions (the component boxes are kept).
"""

from __future__ import annotations

import importlib.util
import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from search.pipeline.base import ModelLoadError

MEDIAPIPE_PACKAGE = "mediapipe==0.10.21"
LITERT_PACKAGE = "ai-edge-litert"
POSE_MODEL = "modules/pose_landmark/pose_landmark_full.tflite"
DETECTOR_MODEL = "modules/pose_detection/pose_detection.tflite"
FACE_MODEL = "modules/face_detection/face_detection_full_range_sparse.tflite"
POSE_INPUT, DETECTOR_INPUT, FACE_INPUT = 256, 224, 192
MIN_PRESENCE = 0.5  # the landmark model's own "a person is in this region"
MIN_FACE = 0.8  # garment-only cc0 photos peak at .71, person photos score > .9
MIN_VISIBILITY = 0.5
IN_FRAME_MARGIN = 0.02  # landmarks this far (share of the photo's side) outside it still count as in it
ROI_SCALE = 1.25  # MediaPipe's pose graph enlarges the detector's body circle by this

# BlazePose landmark indices.
FACE = tuple(range(11))
SHOULDERS, ELBOWS, WRISTS = (11, 12), (13, 14), (15, 16)
HIPS, KNEES, ANKLES = (23, 24), (25, 26), (27, 28)
FEET = (27, 28, 29, 30, 31, 32)  # ankles, heels, toes
HANDS = ((15, 17, 19, 21), (16, 18, 20, 22))  # wrist, pinky, index, thumb of each hand
HEAD_RADIUS = 1.0  # x the widest span of the visible face landmarks (ear to ear, or ear to nose in profile)
HAND_RADIUS = 1.2  # x the farthest finger landmark from the wrist

Bounds = tuple[int, int, int, int]


def model_file(relative: str) -> Path:
    """A ``.tflite`` file inside the installed mediapipe wheel, found without importing mediapipe."""
    spec = importlib.util.find_spec("mediapipe")
    for folder in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / relative
        if path.is_file():
            return path
    raise ModelLoadError(
        f"Could not load the offline pose model: mediapipe/{relative} is missing. "
        f"Run `pip install --no-deps {MEDIAPIPE_PACKAGE}` (requirements-models.txt) and "
        f"`pip install {LITERT_PACKAGE}`, or set LOOKALIKE_POSE=0."
    )


def _sigmoid(values: Any) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(values, dtype=np.float32), -80, 80)))


@dataclass(frozen=True)
class Pose:
    """33 landmarks in image pixels with their visibility (probability), and the person-presence score."""

    points: np.ndarray  # (33, 2) x, y
    visibility: np.ndarray  # (33,)
    presence: float


def letterbox(image: Image.Image, bounds: Bounds, size: int) -> tuple[np.ndarray, float, int, int]:
    """The box's pixels (black where it leaves the photo) centred on a black square of ``size``; returns
    (pixels in [0, 1], scale, dx, dy) such that an image point is (x_square - dx) / scale + x0."""
    x0, y0, x1, y1 = bounds
    crop = image.crop(bounds).convert("RGB")
    scale = size / max(x1 - x0, y1 - y0, 1)
    width, height = max(1, round(crop.width * scale)), max(1, round(crop.height * scale))
    square = Image.new("RGB", (size, size))
    dx, dy = (size - width) // 2, (size - height) // 2
    square.paste(crop.resize((width, height), Image.Resampling.BILINEAR), (dx, dy))
    return np.asarray(square, dtype=np.float32) / 255.0, scale, dx, dy


@lru_cache(maxsize=2)
def ssd_anchors(size: int, strides: tuple[int, ...]) -> np.ndarray:
    """(n, 2) anchor centres in [0, 1] of MediaPipe's SSD heads (2 anchors per cell and stride layer;
    repeated strides share one feature map), as its ``ssd_anchors_calculator`` builds them."""
    centres = []
    layer = 0
    while layer < len(strides):
        stride, repeats = strides[layer], 0
        while layer < len(strides) and strides[layer] == stride:
            repeats, layer = repeats + 2, layer + 1
        cells = math.ceil(size / stride)
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, repeats, axis=0))
    return np.concatenate(centres).astype(np.float32)


def body_roi(hip: tuple[float, float], scale_point: tuple[float, float]) -> Bounds:
    """The square around the detector's hip centre that holds the whole body (MediaPipe's ROI, upright):
    side = 2 x the hip-to-scale-point distance x ROI_SCALE; it may reach past the photo."""
    radius = math.dist(hip, scale_point) * ROI_SCALE
    radius = max(radius, 8.0)
    x, y = hip
    return (round(x - radius), round(y - radius), round(x + radius), round(y + radius))


def looks_like_person(pose: Pose | None, face_score: float) -> bool:
    """The person gate: the landmark model says a person, a face detector agrees, and the skeleton is
    upright (head above shoulders above hips). The landmark model alone says "person" on many flat-lays."""
    if pose is None or pose.presence < MIN_PRESENCE or face_score < MIN_FACE:
        return False
    pts = pose.points
    nose_y = float(pts[0, 1])
    shoulder_y = float(pts[list(SHOULDERS), 1].mean())
    hip_y = float(pts[list(HIPS), 1].mean())
    shoulder_width = float(abs(pts[SHOULDERS[0], 0] - pts[SHOULDERS[1], 0]))
    return nose_y < shoulder_y < hip_y and shoulder_width > 0.1 * (hip_y - shoulder_y)


class PoseModel:
    """BlazePose person detector, landmarks and a face detector in LiteRT (one interpreter each)."""

    name = "MediaPipe pose (BlazePose full + face detector)"

    def __init__(self, detector: Any, landmarks: Any, face: Any):
        self.detector, self.landmarks, self.face = detector, landmarks, face
        self._lock = threading.Lock()  # interpreters' tensors are not thread-safe

    @classmethod
    def load(cls, threads: int = 0) -> PoseModel:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ModelLoadError(
                f"Could not load the offline pose model: {LITERT_PACKAGE} is missing. Run "
                f"`pip install {LITERT_PACKAGE}` and `pip install --no-deps {MEDIAPIPE_PACKAGE}`, "
                "or set LOOKALIKE_POSE=0."
            ) from exc
        interpreters = []
        for relative in (DETECTOR_MODEL, POSE_MODEL, FACE_MODEL):
            path = model_file(relative)
            try:
                interpreter = Interpreter(model_path=str(path), num_threads=threads or None)
                interpreter.allocate_tensors()
            except Exception as exc:  # a corrupt or incompatible file
                raise ModelLoadError(f"Could not load the offline pose model {path.name}: {exc}") from exc
            interpreters.append(interpreter)
        return cls(*interpreters)

    @staticmethod
    def _run(interpreter: Any, pixels: np.ndarray) -> list[np.ndarray]:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels[None])
        interpreter.invoke()
        return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]

    def body_box(self, image: Image.Image, bounds: Bounds) -> Bounds | None:
        """The whole-body square of the most confident person in ``bounds``, or None when none."""
        pixels, scale, dx, dy = letterbox(image, bounds, DETECTOR_INPUT)
        with self._lock:
            raw, scores = self._run(self.detector, pixels * 2.0 - 1.0)
        scores = _sigmoid(scores[0, :, 0])
        best = int(np.argmax(scores))
        if scores[best] < MIN_PRESENCE:
            return None
        anchor = ssd_anchors(DETECTOR_INPUT, (8, 16, 32, 32, 32))[best] * DETECTOR_INPUT
        row = raw[0, best]
        hip = row[4:6] + anchor  # keypoint 0: mid-hip; keypoint 1 sets the body's size
        top = row[6:8] + anchor

        def to_image(point: np.ndarray) -> tuple[float, float]:
            return (float(point[0] - dx) / scale + bounds[0], float(point[1] - dy) / scale + bounds[1])

        return body_roi(to_image(hip), to_image(top))

    def pose(self, image: Image.Image, roi: Bounds) -> Pose:
        pixels, scale, dx, dy = letterbox(image, roi, POSE_INPUT)
        with self._lock:
            outputs = {d["name"]: d["index"] for d in self.landmarks.get_output_details()}
            self.landmarks.set_tensor(self.landmarks.get_input_details()[0]["index"], pixels[None])
            self.landmarks.invoke()
            raw = self.landmarks.get_tensor(outputs["Identity"])[0].reshape(-1, 5)[:33].copy()
            flag = float(self.landmarks.get_tensor(outputs["Identity_1"]).ravel()[0])
        presence = flag if 0.0 <= flag <= 1.0 else float(_sigmoid(flag))
        points = np.empty((33, 2), dtype=np.float32)
        points[:, 0] = (raw[:, 0] - dx) / scale + roi[0]
        points[:, 1] = (raw[:, 1] - dy) / scale + roi[1]
        return Pose(points=points, visibility=_sigmoid(raw[:, 3]), presence=presence)

    def face_score(self, image: Image.Image, bounds: Bounds) -> float:
        """Highest face-detector score in ``bounds`` (the salient region, where a worn garment's wearer is)."""
        pixels, *_ = letterbox(image, bounds, FACE_INPUT)
        with self._lock:
            outputs = self._run(self.face, pixels * 2.0 - 1.0)
        scores = next(o for o in outputs if o.shape[-1] == 1)
        return float(_sigmoid(scores).max())

    def person(self, image: Image.Image, bounds: Bounds) -> Pose | None:
        """The pose of the person in ``bounds`` when the gate says there is one, else None.

        The face detector goes first: it looks at ``bounds`` alone, so the gate's answer is the same in any
        order, and it is the cheapest of the three models (~4 ms against ~30 for person detector and
        landmarks), which no garment photo without a face then runs."""
        face = self.face_score(image, bounds)
        if face < MIN_FACE:
            return None
        roi = self.body_box(image, bounds) or bounds
        pose = self.pose(image, roi)
        return pose if looks_like_person(pose, face) else None


@lru_cache(maxsize=4)
def shared_pose_model(threads: int = 0) -> PoseModel:
    """One set of LiteRT interpreters per process (and thread setting)."""
    return PoseModel.load(threads)


def body_regions(pose: Pose, bounds: Bounds) -> dict[str, Bounds]:
    """Boxes (x0, y0, x1, y1) for "upper", "lower" and "feet" inside ``bounds``, each only when the
    landmarks that define it are visible and inside ``bounds``. A pure function of the landmarks, so it
    is tested without weights.

    Upper body: shoulders to hips, as wide as shoulders, elbows and wrists (to the photo's edge when the
    hips are out of it). Lower body: hips to ankles, as wide as hips, knees and ankles. Feet: around
    ankles, heels and toes, from the ankles down.
    """
    pts = pose.points
    bx0, by0, bx1, by1 = bounds
    margin = IN_FRAME_MARGIN * max(bx1 - bx0, by1 - by0)
    inside = (
        (pts[:, 0] >= bx0 - margin)
        & (pts[:, 0] <= bx1 + margin)
        & (pts[:, 1] >= by0 - margin)
        & (pts[:, 1] <= by1 + margin)
    )
    seen = (pose.visibility >= MIN_VISIBILITY) & inside

    def visible(indices: tuple[int, ...]) -> list[int]:
        return [i for i in indices if seen[i]]

    def box(indices: list[int], top: float, bottom: float, pad: float) -> Bounds | None:
        xs = pts[indices, 0]
        x0, x1 = float(xs.min()) - pad, float(xs.max()) + pad
        clipped = (max(bx0, round(x0)), max(by0, round(top)), min(bx1, round(x1)), min(by1, round(bottom)))
        return clipped if clipped[2] - clipped[0] > 4 and clipped[3] - clipped[1] > 4 else None

    shoulders, hips = visible(SHOULDERS), visible(HIPS)
    if not shoulders:
        return {}
    shoulder_y = float(pts[shoulders, 1].mean())
    hip_y = float(pts[hips, 1].mean()) if hips else float(by1)
    torso = max(hip_y - shoulder_y, 1.0)
    regions: dict[str, Bounds | None] = {
        "upper": box(
            shoulders + visible(ELBOWS) + visible(WRISTS) + hips,
            shoulder_y - 0.15 * torso,
            hip_y + 0.1 * torso if hips else float(by1),
            0.12 * torso,
        )
    }
    ankles, knees = visible(ANKLES), visible(KNEES)
    if hips and (knees or ankles):
        bottom_y = float(pts[ankles, 1].max()) if ankles else float(by1)
        regions["lower"] = box(hips + knees + ankles, hip_y - 0.1 * torso, bottom_y, 0.15 * torso)
    feet = visible(FEET)
    if ankles and len(feet) >= 2:
        ankle_y = float(pts[ankles, 1].min())
        regions["feet"] = box(feet, ankle_y - 0.12 * torso, float(pts[feet, 1].max()) + 0.1 * torso, 0.12 * torso)
    return {name: found for name, found in regions.items() if found is not None}


def bare_regions(pose: Pose, size: tuple[int, int]) -> np.ndarray:
    """Boolean (height, width): the head and the hands, as disks around their landmarks. The salient mask
    holds the whole person, so without this the upper body's cutout shows the face of a wearer who leans
    forward and the hands in front of a coat. A pure function of the landmarks (tested without weights)."""
    width, height = size
    seen = pose.visibility >= MIN_VISIBILITY
    rows, cols = np.ogrid[:height, :width]
    bare = np.zeros((height, width), dtype=bool)

    def disk(centre: np.ndarray, radius: float) -> None:
        nonlocal bare
        bare |= (cols - centre[0]) ** 2 + (rows - centre[1]) ** 2 <= radius**2

    face = pose.points[[i for i in FACE if seen[i]]]
    if len(face) >= 2:
        span = max(math.dist(a, b) for a in face for b in face)
        disk(face.mean(axis=0), HEAD_RADIUS * span)
    for wrist, *fingers in HANDS:
        visible = [i for i in fingers if seen[i]]
        if seen[wrist] and visible:
            reach = max(math.dist(pose.points[wrist], pose.points[i]) for i in visible)
            disk(pose.points[[wrist, *visible]].mean(axis=0), HAND_RADIUS * reach)
    return bare
