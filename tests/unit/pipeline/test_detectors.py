import pytest
import torch
from PIL import Image

from search.pipeline.base import Box
from search.pipeline.detectors import Florence2Detector, WholeImageDetector, parse_od_text, select_garments
from search.pipeline.labels import DEFAULT_LABEL_MAP, merge_label_map, normalize_label

OD_ANSWER = "</s><s>dress<loc_100><loc_200><loc_500><loc_900>person<loc_0><loc_0><loc_999><loc_999></s>"


def test_parse_od_text_turns_location_bins_into_pixel_boxes():
    parsed = parse_od_text(OD_ANSWER, (1000, 500))
    assert [label for label, _ in parsed] == ["dress", "person"]
    assert parsed[0][1] == pytest.approx((100.5, 100.25, 500.5, 450.25))
    assert parsed[1][1] == pytest.approx((0.5, 0.25, 999.5, 499.75))


def test_parse_od_text_reads_several_boxes_per_label_and_ignores_stray_tokens():
    text = "<s>shoe<loc_10><loc_800><loc_200><loc_990><loc_600><loc_800><loc_790><loc_990><loc_5><loc_6></s>"
    parsed = parse_od_text(text, (1000, 1000))
    assert [label for label, _ in parsed] == ["shoe", "shoe"]
    assert parsed[1][1] == pytest.approx((600.5, 800.5, 790.5, 990.5))


def test_parse_od_text_of_junk_finds_no_labelled_box():
    junk = "</s>" + "<loc_309>" * 19 + "</s>"
    assert all(label == "" for label, _ in parse_od_text(junk, (50, 40)))
    assert select_garments(parse_od_text(junk, (50, 40)), (50, 40)) == []
    assert parse_od_text("</s><s>a cat sitting</s>", (50, 40)) == []


def test_parse_agrees_with_florence2_processor_post_processing(tiny_model_dirs):
    from transformers import Florence2Processor

    processor = Florence2Processor.from_pretrained(tiny_model_dirs["detector"])
    official = processor.post_process_generation(OD_ANSWER, task="<OD>", image_size=(640, 480))["<OD>"]
    ours = parse_od_text(OD_ANSWER, (640, 480))
    assert official["labels"] == [label for label, _ in ours]
    for official_box, (_, our_box) in zip(official["bboxes"], ours, strict=True):
        assert our_box == pytest.approx(official_box, abs=1.0)  # theirs truncates to int


@pytest.mark.parametrize(
    ("label", "category"),
    [
        ("dress", "dress"),
        ("Dresses", "dress"),
        ("red dress", "dress"),
        ("t-shirt", "t-shirt"),
        ("jeans", "pants"),
        ("trousers", "pants"),
        ("coat", "jacket"),
        ("shoes", "shoes"),
        ("sneakers", "shoes"),
        ("boots", "shoes"),
        ("handbag", "bag"),
        ("baseball cap", "hat"),
        ("person", None),
        ("human face", None),
        ("chair", None),
        ("", None),
    ],
)
def test_labels_map_to_garment_categories(label, category):
    assert normalize_label(label, DEFAULT_LABEL_MAP) == category


def test_select_garments_keeps_every_garment_and_drops_the_rest():
    detections = [
        ("person", (0, 0, 100, 100)),
        ("shirt", (10, 10, 60, 50)),
        ("jeans", (15, 50, 55, 95)),
        ("shoe", (20, 95, 30, 100)),  # 50 px of 10 000 = 0.5%: below 1%, dropped
        ("chair", (60, 60, 100, 100)),
    ]
    boxes = select_garments(detections, (100, 100), min_area_fraction=0.01)
    assert [(box.label, box.as_tuple()) for box in boxes] == [
        ("shirt", (10, 10, 60, 50)),
        ("pants", (15, 50, 55, 95)),
    ]
    assert [box.label for box in select_garments(detections, (100, 100), min_area_fraction=0.001)] == [
        "shirt",
        "pants",
        "shoes",
    ]


def test_select_garments_dedupes_same_label_overlaps_keeping_the_larger():
    detections = [
        ("dress", (10, 10, 50, 90)),
        ("dress", (8, 8, 50, 92)),  # IoU 0.91 with the first and larger: kept instead
        ("dress", (60, 10, 95, 90)),  # a second dress beside it: kept
        ("jacket", (10, 10, 50, 60)),  # overlaps the dress but is another garment: kept
    ]
    boxes = select_garments(detections, (100, 100), iou_threshold=0.7)
    assert [(box.label, box.as_tuple()) for box in boxes] == [
        ("dress", (8, 8, 50, 92)),
        ("dress", (60, 10, 95, 90)),
        ("jacket", (10, 10, 50, 60)),
    ]


def test_select_garments_clamps_boxes_to_the_image_and_orders_corners():
    (box,) = select_garments([("skirt", (90, -10, -5, 60))], (80, 50))
    assert box.as_tuple() == (0, 0, 80, 50)


def test_label_map_overrides_add_and_remove_labels():
    label_map = merge_label_map({"Tunic": "top", "dress": None})
    detections = [("tunic", (0, 0, 50, 50)), ("dress", (50, 0, 100, 50))]
    assert [box.label for box in select_garments(detections, (100, 50), label_map=label_map)] == ["top"]


def test_whole_image_detector_returns_one_full_box_per_image():
    images = [Image.new("RGB", (30, 20)), Image.new("RGB", (5, 7))]
    assert WholeImageDetector().detect(images) == [
        [Box(0, 0, 30, 20, label="garment")],
        [Box(0, 0, 5, 7, label="garment")],
    ]


@pytest.fixture(scope="module")
def tiny_florence(tiny_model_dirs):
    from transformers import Florence2ForConditionalGeneration, Florence2Processor

    model = Florence2ForConditionalGeneration.from_pretrained(tiny_model_dirs["detector"]).eval()
    return model, Florence2Processor.from_pretrained(tiny_model_dirs["detector"])


def test_florence2_detector_decodes_generated_tokens_into_garment_boxes(tiny_florence, monkeypatch):
    """The real tokenizer's decode of known answer tokens goes through parsing and filtering."""
    model, processor = tiny_florence
    answers = [OD_ANSWER, "</s><s>person<loc_0><loc_0><loc_999><loc_999></s>"]
    token_ids = [processor.tokenizer.encode(answer, add_special_tokens=False) for answer in answers]
    width = max(map(len, token_ids))
    padded = torch.tensor([ids + [processor.tokenizer.pad_token_id] * (width - len(ids)) for ids in token_ids])
    calls = []

    def generate(**kwargs):
        calls.append(kwargs)
        return padded

    monkeypatch.setattr(model, "generate", generate)
    detector = Florence2Detector(model, processor, batch_size=8)
    boxes = detector.detect([Image.new("RGB", (1000, 500)), Image.new("RGB", (64, 64))])
    assert len(calls) == 1  # both images in one generate call
    assert calls[0]["pixel_values"].shape[0] == 2
    assert [[box.label for box in image_boxes] for image_boxes in boxes] == [["dress"], []]
    assert boxes[0][0].as_tuple() == pytest.approx((100.5, 100.25, 500.5, 450.25))


def test_florence2_detector_runs_the_real_random_model(tiny_florence):
    model, processor = tiny_florence
    detector = Florence2Detector(model, processor, batch_size=1, max_new_tokens=12)
    boxes = detector.detect([Image.new("RGB", (80, 60), "red"), Image.new("RGB", (60, 80), "blue")])
    assert len(boxes) == 2
    assert all(isinstance(box, Box) and box.label in DEFAULT_LABEL_MAP.values() for found in boxes for box in found)
