"""How many photos the offline detector's person gate (search/pipeline/pose.py) takes for a person.

None of the 340 photos of ../shared/datasets/clothing-cc0 shows a worn garment (all were looked at), so
every photo the gate flags there is a false positive; tests/fixtures/person/ holds the two honest person
photos we have (see its ATTRIBUTION.md), which it should flag. Each photo is looked at as the detector does:
U2-Net-p's salient region, BlazePose's person detector for the body square, the 33 landmarks, the face
score; then each signal alone and the gate (presence >= .5, face >= .8, an upright skeleton).

    python bench/person_gate.py --cache /tmp/sal.npz     # ~5 min on 1 thread (U2-Net-p once per photo)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # after ROOT: bench/search.py must not shadow the search app

from offline_quality import load_dataset  # noqa: E402

PEOPLE = ROOT / "tests" / "fixtures" / "person"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", default="", help="the .npz of U2-Net-p maps bench/garment_mean.py keeps")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from PIL import Image

    from search.pipeline import pose
    from search.pipeline.offline import SalientModel

    data = load_dataset(0)
    photos = [Image.open(path).convert("RGB") for path, _ in data]
    people = [Image.open(path).convert("RGB") for path in sorted(PEOPLE.glob("*.jpg"))]
    salient = SalientModel.load(args.threads)
    salient._remember = len(photos) + len(people) + 1
    cache = Path(args.cache) if args.cache else None
    if cache and cache.is_file():
        saved = np.load(cache)
        for index, photo in enumerate(photos):
            salient._recent[id(photo)] = (lambda p=photo: p, saved[f"m{index}"].astype(np.float32))
    model = pose.shared_pose_model(args.threads)

    def signals(image):
        mask = salient.mask(image)
        ys, xs = np.nonzero(mask)
        bounds = (0, 0, image.width, image.height)
        if len(xs):
            bounds = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        start = time.perf_counter()
        body = model.body_box(image, bounds)
        found = model.pose(image, body or bounds)
        face = model.face_score(image, bounds)
        person = pose.looks_like_person(found, face)
        return dict(body=body is not None, presence=found.presence, face=face, gate=person), time.perf_counter() - start

    rows, seconds = zip(*(signals(photo) for photo in photos), strict=True)
    person_rows = [signals(photo)[0] for photo in people]
    per_photo = np.mean(seconds)
    print(f"{len(photos)} clothing-cc0 photos (no person); gate {per_photo:.3f} s/photo, {args.threads} thread(s)")
    print(f"{'signal':48s} {'cc0 flagged':>11s} {'persons flagged':>15s}")
    tests = [
        ("BlazePose person detector finds a body", lambda r: r["body"]),
        ("landmark presence >= .5", lambda r: r["presence"] >= 0.5),
        *(
            (f"presence >= .5 and face >= {t}", lambda r, t=t: r["presence"] >= 0.5 and r["face"] >= t)
            for t in (0.6, 0.7)
        ),
        ("the gate (presence, face >= .8, upright)", lambda r: r["gate"]),
    ]
    for name, test in tests:
        print(f"{name:48s} {sum(map(test, rows)):11d} {sum(map(test, person_rows)):>11d} of {len(person_rows)}")
    print(
        f"highest face score on a cc0 photo {max(r['face'] for r in rows):.3f}; on the persons "
        + ", ".join(f"{r['face']:.3f}" for r in person_rows)
    )


if __name__ == "__main__":
    main()
