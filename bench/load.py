"""Load: N concurrent clients against the single-process default and the scale-out layout, side by side.

Run from the repository root (starts every server itself, on loopback, in temporary folders):

    nice -n 10 env OMP_NUM_THREADS=1 python bench/load.py --clients 50 --seconds 60

One PostgreSQL of its own (tests/fixtures/own_postgres.py) is migrated and filled once: ``--products`` demo
products imported and indexed (offline profile). Then, against that same database, in turn:

- ``single``: README's default, ``manage.py serve`` (gunicorn ``--workers`` x ``--threads``, each web process
  loading the models, plus the django-q2 worker on the ORM broker);
- ``layout``: ``manage.py serve --no-worker`` (same gunicorn) with ``LOOKALIKE_INFERENCE_URL``, the inference
  service (``manage.py inference_server``), 2 ``qcluster`` workers on a redis-server; media stay on the
  local disk in both, as the load does not read them.

Each client loops over photo search (POST /api/search/), text search, product list and "similar", for
``--seconds``. Prints per layout and endpoint: requests, 2xx, 429, 5xx, p50/p95 of the 2xx (ms); and checks
the throttle: a 429 only where the client's last 60 s already hold ``--throttle`` throttled requests
(photo, text and similar share the "search" scope; the list is not throttled).
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import urllib3  # noqa: E402

from tests.fixtures.inference_service import InferenceService  # noqa: E402
from tests.fixtures.own_postgres import OwnServer, manage, temporary_data_dir  # noqa: E402
from tests.fixtures.servers import free_port, redis_server  # noqa: E402

DEMO = ROOT / "catalog" / "demo"
THROTTLED = {"photo", "text", "similar"}
TEXTS = ["red dress", "black leather shoes", "denim jacket", "white t-shirt", "summer hat", "blue jeans"]


def demo_catalog(path: Path, count: int) -> tuple[Path, list[Path]]:
    products = json.loads((DEMO / "products.json").read_text())
    random.Random(0).shuffle(products)
    chosen = products[:count]
    for product in chosen:
        product["images"] = [str(DEMO / image) for image in product["images"]]
    path.write_text(json.dumps(chosen))
    return path, [Path(product["images"][0]) for product in chosen]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def wait_http(url: str, seconds: float, process: subprocess.Popen) -> None:
    http = urllib3.PoolManager(retries=False)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args} exited")
        try:
            if http.request("GET", url, timeout=5).status == 200:
                return
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer in {seconds} s")


def run_load(base: str, clients: int, seconds: float, photos: list[bytes], product_ids: list[int]) -> list[tuple]:
    """(endpoint, status, latency s, finished at) of every request of every client."""
    http = urllib3.PoolManager(maxsize=clients, retries=False, timeout=urllib3.Timeout(connect=10, read=120))
    records: list[tuple] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(number: int) -> None:
        rng = random.Random(number)
        kinds = itertools.cycle(rng.sample(["photo", "text", "list", "similar"], 4))
        mine = []
        while time.monotonic() < stop_at:
            kind = next(kinds)
            started = time.monotonic()
            try:
                if kind == "photo":
                    fields = {"image": ("q.jpg", rng.choice(photos), "image/jpeg"), "k": "12"}
                    response = http.request("POST", f"{base}/api/search/", fields=fields)
                elif kind == "text":
                    response = http.request("GET", f"{base}/api/search/", fields={"q": rng.choice(TEXTS), "k": "12"})
                elif kind == "list":
                    response = http.request("GET", f"{base}/api/products/", fields={"page": "1"})
                else:
                    response = http.request("GET", f"{base}/api/products/{rng.choice(product_ids)}/similar/")
                status = response.status
            except urllib3.exceptions.HTTPError:
                status = 0  # no answer at all: counted with the server errors
            finished = time.monotonic()
            mine.append((kind, status, finished - started, finished))
        with lock:
            records.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return records


def throttle_violations(records: list[tuple], limit: int) -> int:
    """429s that came before ``limit`` throttled requests were allowed in the preceding 60 s (one client
    address: every bench client is 127.0.0.1). An allowed request counts from when it was sent (the server
    checks the budget on arrival), not from when its answer came back: a photo search answers seconds later."""
    allowed = sorted(end - seconds for kind, status, seconds, end in records if kind in THROTTLED and status != 429)
    violations = 0
    for kind, status, _, end in records:
        if kind in THROTTLED and status == 429:
            in_window = bisect.bisect_right(allowed, end) - bisect.bisect_right(allowed, end - 60)
            violations += in_window < limit * 0.9  # slack: the client's clock is not the server's
    return violations


def most_allowed_in_a_minute(records: list[tuple]) -> int:
    """The most throttled requests allowed (sent) within any 60 s: at most the rate when the throttle holds."""
    allowed = sorted(end - seconds for kind, status, seconds, end in records if kind in THROTTLED and status != 429)
    return max((bisect.bisect_left(allowed, start + 60) - index for index, start in enumerate(allowed)), default=0)


def summary(name: str, records: list[tuple], seconds: float, limit: int) -> dict:
    result = {
        "layout": name,
        "endpoints": {},
        "throttle_violations": throttle_violations(records, limit),
        "most_allowed_in_a_minute": most_allowed_in_a_minute(records),
    }
    for kind in ("photo", "text", "list", "similar"):
        mine = [r for r in records if r[0] == kind]
        ok = [r[2] * 1000 for r in mine if 200 <= r[1] < 300]
        result["endpoints"][kind] = {
            "requests": len(mine),
            "ok": len(ok),
            "429": sum(1 for r in mine if r[1] == 429),
            "5xx_or_none": sum(1 for r in mine if r[1] >= 500 or r[1] == 0),
            "other": sum(1 for r in mine if r[1] not in (0, 429) and not 200 <= r[1] < 300 and r[1] < 500),
            "ok_per_s": round(len(ok) / seconds, 1),
            "p50_ms": round(percentile(ok, 50), 1),
            "p95_ms": round(percentile(ok, 95), 1),
        }
    return result


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to serve (it stops gunicorn and its worker) or to a process group; SIGKILL after 30 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def spawn(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True, stdout=out, stderr=out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--products", type=int, default=24)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=4)
    parser.add_argument(
        "--layout-web-threads", type=int, default=0, help="threads per web process of the layout (0: --web-threads)"
    )
    parser.add_argument("--throttle", type=int, default=600, help="SEARCH_THROTTLE_RATE per minute")
    parser.add_argument("--layouts", default="single,layout")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lookalike-load-"))
    results = []
    with temporary_data_dir() as data_dir:
        database = OwnServer(data_dir, database="load")
        database.start()
        base_env = {
            **database.env,
            "DATABASE_URL": database.database_url,
            "LOOKALIKE_PROFILE": "offline",
            "MEDIA_ROOT": str(work / "media"),
            "SEARCH_THROTTLE_RATE": f"{args.throttle}/min",
            "LOOKALIKE_PROCESS_ON_UPLOAD": "0",
            # Production settings, as README's `serve` runs them (plain http on loopback).
            "DEBUG": "0",
            "SECRET_KEY": "bench-load-" + "x" * 50,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "STATIC_ROOT": str(work / "static"),
        }
        catalog, photo_paths = demo_catalog(work / "catalog.json", args.products)
        for step in (["migrate", "-v0"], ["import_products", str(catalog)], ["index", "--sync"]):
            started = time.monotonic()
            done = manage(step, base_env)
            if done.returncode != 0:
                raise SystemExit(f"{step}: {done.stderr[-2000:]}")
            print(f"{' '.join(step[:1])}: {time.monotonic() - started:.0f} s", flush=True)
        photos = [path.read_bytes() for path in photo_paths[:8]]

        for name in args.layouts.split(","):
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            web_args = ["--bind", f"127.0.0.1:{port}", "--workers", str(args.web_workers)]
            threads = args.layout_web_threads if name == "layout" and args.layout_web_threads else args.web_threads
            web_args += ["--threads", str(threads)]
            processes: list[subprocess.Popen] = []
            service = None
            redis = redis_server(work) if name == "layout" else None
            try:
                if name == "single":
                    env = {**base_env, "LOOKALIKE_PROCESS_ON_UPLOAD": "1"}
                    processes.append(spawn([sys.executable, "manage.py", "serve", *web_args], env, work / "single.log"))
                else:
                    redis_url = redis.__enter__()
                    service = InferenceService({**base_env}, work / "inference.log")
                    service.wait_healthy()
                    env = {**base_env, "REDIS_URL": redis_url, "LOOKALIKE_INFERENCE_URL": service.url, "Q_SYNC": "0"}
                    processes.append(
                        spawn([sys.executable, "manage.py", "serve", "--no-worker", *web_args], env, work / "web.log")
                    )
                    for n in (1, 2):
                        processes.append(spawn([sys.executable, "manage.py", "qcluster"], env, work / f"worker{n}.log"))
                wait_http(f"{base}/api/products/", 180, processes[0])
                http = urllib3.PoolManager()
                listed = json.loads(http.request("GET", f"{base}/api/products/").data)["results"]
                product_ids = [product["id"] for product in listed]
                # One photo search first: the single layout's web processes warm their models in the background.
                http.request("POST", f"{base}/api/search/", fields={"image": ("q.jpg", photos[0], "image/jpeg")})
                time.sleep(5)
                print(f"{name}: {args.clients} clients for {args.seconds:.0f} s...", flush=True)
                records = run_load(base, args.clients, args.seconds, photos, product_ids)
                results.append(summary(name, records, args.seconds, args.throttle))
                results[-1]["web"] = f"{args.web_workers} gunicorn workers x {threads} threads"
                if service is not None:
                    results[-1]["inference_batch_sizes"] = service.info()["stats"]["batch_sizes"]
            finally:
                for process in processes:
                    stop(process)
                if service is not None:
                    service.stop()
                if redis is not None:
                    redis.__exit__(None, None, None)

    for result in results:
        print(
            f"\n== {result['layout']}, {result['web']} (throttle violations: {result['throttle_violations']}; "
            f"most searches allowed in any 60 s: {result['most_allowed_in_a_minute']})"
        )
        header = ("endpoint", "requests", "2xx", "429", "5xx", "other", "2xx/s", "p50 ms", "p95 ms")
        print("{:10} {:>8} {:>6} {:>6} {:>5} {:>5} {:>6} {:>8} {:>8}".format(*header))
        for kind, row in result["endpoints"].items():
            print(
                f"{kind:10} {row['requests']:8} {row['ok']:6} {row['429']:6} {row['5xx_or_none']:5} {row['other']:5} "
                f"{row['ok_per_s']:6} {row['p50_ms']:8} {row['p95_ms']:8}"
            )
        if "inference_batch_sizes" in result:
            print(f"inference service batch sizes {{size: batches}}: {result['inference_batch_sizes']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
