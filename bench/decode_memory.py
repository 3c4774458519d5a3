"""Peak memory of decoding large photos, one and several at once, through core.photos.load_image.

The hostile case from issue 10: a 156 KB PNG of 8944 x 8944 16-bit greyscale (80 MP, under the pixel
cap). Each scenario runs in a fresh Python process and reports its peak RSS above the same process's
baseline (Django set up, modules imported), so the figures compare within one run:

    python bench/decode_memory.py            # all scenarios
    python bench/decode_memory.py --photos 3 # three concurrent decodes only

"convert first" is what the code did before: decode, convert the full-size image to RGB (through float64
for 16-bit), then shrink; it is shown for the ratio.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIDE = 8944


def hostile_png() -> bytes:
    import numpy as np
    from PIL import Image

    values = (np.arange(SIDE, dtype=np.uint16)[None, :] // 64 * 256).repeat(SIDE, axis=0)
    buffer = io.BytesIO()
    Image.fromarray(values.astype(np.uint16)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def convert_first(content: bytes):
    """The previous order of work: full-size float64 and RGB copies before the shrink."""
    import numpy as np
    from PIL import Image

    image = Image.open(io.BytesIO(content))
    image.load()
    values = np.asarray(image, dtype=np.float64) / 257.0
    rgb = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8)).convert("RGB")
    return rgb.resize((1600, 1600), Image.Resampling.LANCZOS, reducing_gap=3.0)


def peak_rss_kib() -> int:
    """This process's high-water RSS (VmHWM): unlike ru_maxrss it is not inherited through fork + exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def child(mode: str, photos: int, content_path: str) -> None:
    """One scenario in this process; prints JSON with the peak above the baseline."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from core.photos import load_image

    content = Path(content_path).read_bytes()
    baseline = peak_rss_kib()
    work = (lambda: load_image(content, max_side=1600)) if mode == "core.photos" else (lambda: convert_first(content))
    threads = [threading.Thread(target=work) for _ in range(photos)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"baseline_mib": baseline / 1024, "peak_above_baseline_mib": (peak_rss_kib() - baseline) / 1024}))


def run(mode: str, photos: int, content_path: Path, concurrency: int) -> dict:
    env = dict(os.environ, PHOTO_DECODE_CONCURRENCY=str(concurrency), OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--photos", str(photos), "--content", str(content_path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, action="append", help="concurrent decodes (default 1 and 3)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--content", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.photos[0], args.content)
        return
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hostile.png"
        path.write_bytes(hostile_png())
        print(f"photo: {SIDE}x{SIDE} 16-bit greyscale PNG, {path.stat().st_size / 1024:.0f} KB")
        columns = ("decoder", "photos at once", "decode slots", "baseline MiB", "peak MiB above it")
        print(f"{columns[0]:<14} {columns[1]:>14} {columns[2]:>12} {columns[3]:>12} {columns[4]:>18}")
        for photos in args.photos or [1, 3]:
            for mode, slots in (("convert first", photos), ("core.photos", 2), ("core.photos", 1)):
                figure = run(mode, photos, path, slots)
                print(
                    f"{mode:<14} {photos:>14} {slots:>12} {figure['baseline_mib']:>12.0f}"
                    f" {figure['peak_above_baseline_mib']:>18.0f}"
                )


if __name__ == "__main__":
    main()
