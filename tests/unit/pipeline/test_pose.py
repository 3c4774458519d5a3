"""Person photos split into upper body, lower body and feet (search/pipeline/pose.py): the pure geometry and
gate on synthetic landmarks, then the real MediaPipe weights on a real person photo and a garment photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search.pipeline import offline, pose
from search.pipeline.base import ModelLoadError

PERSON_PHOTO = Path(__file__).resolve().parents[2] / "fixtures" / "person" / "astronaut.jpg"
# A puffer coat on a floor: the landmark model alone scores it .99 "person" and the person detector fires.
COAT_PHOTO = (
    Path(__file__).resolve().parents[3] / "catalog" / "demo" / "images" / "14ca9980-a105-41be-adbd-ac337db9b829.jpg"
)


def standing(width: int = 200, height: int = 400, shift: float = 0.0) -> pose.Pose:
    """A synthetic upright person facing the camera, everything visible; ``shift`` moves it down."""
    points = np.zeros((33, 2), dtype=np.float32)
    points[0:11] = (100, 40)  # face
    points[[11, 12]] = [(140, 90), (60, 90)]  # shoulders (left is on the image's right)
    points[[13, 14]] = [(150, 150), (50, 150)]  # elbows
    points[[15, 16]] = [(155, 200), (45, 200)]  # wrists
    points[[23, 24]] = [(125, 210), (75, 210)]  # hips
    points[[25, 26]] = [(122, 290), (78, 290)]  # knees
    points[[27, 28]] = [(120, 360), (80, 360)]  # ankles
    points[[29, 30]] = [(118, 370), (82, 370)]  # heels
    points[[31, 32]] = [(130, 380), (70, 380)]  # toes
    points[:, 1] += shift
    return pose.Pose(points=points, visibility=np.ones(33, dtype=np.float32), presence=0.99)


def test_body_regions_of_a_whole_person_are_stacked_and_inside_the_photo():
    regions = pose.body_regions(standing(), (0, 0, 200, 400))
    assert set(regions) == {"upper", "lower", "feet"}
    upper, lower, feet = regions["upper"], regions["lower"], regions["feet"]
    assert upper[1] < 90 < 210 < upper[3], "shoulders to hips"
    assert upper[0] <= 45 and upper[2] >= 155, "as wide as the arms"
    assert lower[1] < 210 < 360 <= lower[3] and lower[0] <= 75 and lower[2] >= 125
    assert upper[1] < lower[1] < feet[1] and feet[3] >= 380
    assert all(0 <= b[0] < b[2] <= 200 and 0 <= b[1] < b[3] <= 400 for b in regions.values())


def test_body_regions_of_a_half_body_photo_give_the_upper_body_to_the_edge():
    half = standing(shift=150.0)  # hips at 360, knees and ankles below a 300-pixel photo
    regions = pose.body_regions(half, (0, 0, 200, 300))
    assert set(regions) == {"upper"} and regions["upper"][3] == 300


def test_body_regions_need_visible_shoulders():
    hidden = standing()
    visibility = hidden.visibility.copy()
    visibility[[11, 12]] = 0.1
    assert pose.body_regions(pose.Pose(hidden.points, visibility, hidden.presence), (0, 0, 200, 400)) == {}


def test_person_gate_wants_presence_a_face_and_an_upright_skeleton():
    person = standing()
    assert pose.looks_like_person(person, face_score=0.9)
    assert not pose.looks_like_person(person, face_score=0.7), "no face: a garment the model dressed up"
    assert not pose.looks_like_person(pose.Pose(person.points, person.visibility, 0.3), face_score=0.9)
    upside_down = person.points.copy()
    upside_down[:, 1] = 400 - upside_down[:, 1]
    assert not pose.looks_like_person(pose.Pose(upside_down, person.visibility, 0.99), face_score=0.9)
    assert not pose.looks_like_person(None, face_score=0.99)


def test_bare_regions_cover_head_and_hands_not_the_clothes():
    person = standing()
    points = person.points.copy()
    points[0:11] = [(100, 45), (95, 35), (92, 35), (89, 35), (105, 35), (108, 35), (111, 35), (82, 40), (118, 40)] + [
        (95, 55),
        (105, 55),
    ]
    points[[17, 19, 21]] = [(160, 215), (157, 218), (150, 210)]  # fingers below the wrists
    points[[18, 20, 22]] = [(40, 215), (43, 218), (50, 210)]
    bare = pose.bare_regions(pose.Pose(points, person.visibility, person.presence), (200, 400))
    assert bare.shape == (400, 200)
    assert bare[45, 100] and bare[30, 100] and bare[65, 100], "face, forehead and chin"
    assert bare[210, 155] and bare[210, 45], "both hands"
    assert not bare[150, 100] and not bare[150, 150] and not bare[300, 100], "torso, elbow, legs stay"
    assert not bare[100, 60] and not bare[100, 140], "shoulders stay"
    hidden = person.visibility.copy()
    hidden[[15, 16]] = 0.1  # wrists not seen: no hand disks
    assert not pose.bare_regions(pose.Pose(points, hidden, person.presence), (200, 400))[210, 155]


def test_detector_anchors_match_the_blazepose_head():
    anchors = pose.ssd_anchors(224, (8, 16, 32, 32, 32))
    assert anchors.shape == (2254, 2) and anchors.min() > 0 and anchors.max() < 1


def test_missing_mediapipe_is_a_clear_model_load_error(monkeypatch):
    monkeypatch.setattr(pose.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps mediapipe==0\.10\.21.*LOOKALIKE_POSE=0"):
        pose.model_file(pose.POSE_MODEL)


def test_pose_can_be_switched_off_by_a_setting(settings):
    from search.pipeline.config import PipelineConfig

    settings.LOOKALIKE_POSE = False
    assert PipelineConfig.from_settings(settings).pose is False
    settings.LOOKALIKE_POSE = True
    assert PipelineConfig.from_settings(settings).pose is True


# --- real weights ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pose_detector():
    salient = offline.shared_salient_model(1)
    return offline.SalientDetector(salient, offline.shared_classifier(), pose=pose.shared_pose_model(1))


def test_a_person_photo_gets_an_upper_body_box_labelled_as_worn_there(pose_detector):
    photo = Image.open(PERSON_PHOTO).convert("RGB")
    (box,) = pose_detector.detect([photo])[0]  # hips are out of the photo: no lower body, no feet
    assert box.label in offline.REGION_CATEGORIES["upper"] | {"garment"}
    suit = (18, 175, 362, 512)  # the orange suit, by hand
    ix = max(0.0, min(box.x1, suit[2]) - max(box.x0, suit[0]))
    iy = max(0.0, min(box.y1, suit[3]) - max(box.y0, suit[1]))
    union = box.area + (suit[2] - suit[0]) * (suit[3] - suit[1]) - ix * iy
    assert ix * iy / union >= 0.5
    assert box.y0 > 150, "the face is not part of the garment"


def test_a_garment_photo_is_not_taken_for_a_person(pose_detector):
    photo = Image.open(COAT_PHOTO).convert("RGB")
    mask = pose_detector.salient.mask(photo)
    assert pose_detector._person_regions(photo, mask) == ([], mask)
    without_pose = offline.SalientDetector(pose_detector.salient, pose_detector.classifier)
    assert pose_detector.detect([photo]) == without_pose.detect([photo])


def test_the_gate_runs_no_body_model_on_a_photo_without_a_face(pose_detector, monkeypatch):
    photo = Image.open(COAT_PHOTO).convert("RGB")
    mask = pose_detector.salient.mask(photo)
    model = pose_detector.pose
    calls = []
    for name in ("body_box", "pose"):
        real = getattr(model, name)
        monkeypatch.setattr(model, name, lambda *args, _name=name, _real=real: calls.append(_name) or _real(*args))
    assert pose_detector._person_regions(photo, mask)[0] == []
    assert calls == [], "the face detector said no: person detector and landmarks are skipped"
    person = Image.open(PERSON_PHOTO).convert("RGB")
    assert pose_detector._person_regions(person, pose_detector.salient.mask(person))[0]
    assert calls == ["body_box", "pose"]


CAMERAMAN_PHOTO = PERSON_PHOTO.with_name("camera.jpg")


def test_the_wearers_face_is_carved_out_of_the_upper_body_mask(pose_detector):
    """The cameraman leans into his camera: his face is inside the upper-body box, and U2-Net-p's mask of the
    whole person holds it; the segmenter's mask for that box must not."""
    photo = Image.open(CAMERAMAN_PHOTO).convert("RGB")
    face = (slice(120, 190), slice(200, 245))  # rows, columns of his face, by hand
    salient = offline.SalientModel(pose_detector.salient.infer, runtime="fresh")  # no carve remembered yet
    assert salient.mask(photo)[face].mean() > 0.8, "the salient mask holds the face"
    boxes = pose_detector.detect([photo])[0]
    upper = next(box for box in boxes if box.label in offline.REGION_CATEGORIES["upper"] | {"garment"})
    (mask,) = offline.SalientSegmenter(pose_detector.salient).segment([photo], [[upper]])[0]
    garment = np.asarray(mask) > 0
    assert garment[face].mean() < 0.05
    assert garment.sum() > 0.5 * salient.mask(photo)[int(upper.y0) : int(upper.y1), int(upper.x0) : int(upper.x1)].sum()
