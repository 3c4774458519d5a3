"""LitServe vs BentoML vs Ray Serve for the inference service (issue 15): the same batched model, measured.

search/pipeline/service.py builds ``manage.py inference_server`` on LitServe; this measures that choice
instead of reasoning it. Each framework serves the same model with dynamic batching (max batch 8, ~20 ms
wait) in a subprocess on loopback; for each: seconds from start to the first answered request (model
loaded), RSS and PSS of the server's process tree after a warm-up, the installed size of the framework's
packages, p50/p95 latency and requests/s for 32 concurrent clients, and the mean batch size (counted by the
model itself, the same way for all three: requests / distinct batches).

Models: ``toy`` (5 ms sleep per batch + a 256x256 numpy layer per item: the framework's own overhead shows)
and ``effnet`` (the app's offline EfficientNet-Lite0 embedder on a 224x224 JPEG, torch on one thread).

BentoML and Ray pull packages the app pins differently (certifi, packaging), so they live in their own
venvs that see the app's site-packages (``--system-site-packages``); neither is in requirements.txt:

    python -m venv /tmp/venv-bento --system-site-packages && /tmp/venv-bento/bin/pip install bentoml==1.4.40
    python -m venv /tmp/venv-ray --system-site-packages && /tmp/venv-ray/bin/pip install "ray[serve]==2.60.0"
    nice -n 10 env OMP_NUM_THREADS=1 python bench/serving_frameworks.py
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MAX_BATCH = 8
WAIT_S = 0.020
FRAMEWORKS = {  # name: the requirement whose dependency closure is sized
    "litserve": "litserve",
    "bentoml": "bentoml",
    "ray": "ray[serve]",
}


# --- the model (runs inside each server) -------------------------------------------------------------


class Model:
    """One model for every framework; each answer says which batch it was in, so batching is observable."""

    def __init__(self, kind: str):
        self.kind = kind
        self.batches = 0
        self.lock = threading.Lock()
        if kind == "effnet":
            import torch

            torch.set_num_threads(1)
            # bench/search.py would shadow the app's search package when bench/ is on the path
            sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
            if not hasattr(sys.modules.get("search", sys), "__path__"):
                sys.modules.pop("search", None)
            from search.pipeline.embedders import EfficientNetLiteEmbedder

            self.embedder = EfficientNetLiteEmbedder.load()
        else:
            self.weights = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32) / 16

    def predict(self, items: list[dict]) -> list[dict]:
        with self.lock:
            self.batches += 1
            batch_id = f"{os.getpid()}:{self.batches}"
        if self.kind == "effnet":
            from PIL import Image

            images = [Image.open(io.BytesIO(base64.b64decode(item["image"]))) for item in items]
            values = [float(vector[0]) for vector in self.embedder.embed_images(images)]
        else:
            time.sleep(0.005)
            values = [float(np.tanh(self.weights @ np.asarray(item["x"], np.float32)).sum()) for item in items]
        return [{"value": value, "batch": batch_id, "batch_size": len(items)} for value in values]


# --- the three servers ---------------------------------------------------------------------------------


try:  # top level: LitServe spawns its inference worker and pickles the API by reference
    import litserve as ls

    class LitBench(ls.LitAPI):
        def __init__(self, kind: str):
            super().__init__(max_batch_size=MAX_BATCH, batch_timeout=WAIT_S, api_path="/predict")
            self.kind = kind

        def setup(self, device):
            self.model = Model(self.kind)

        def decode_request(self, request):
            return request

        def predict(self, batch):
            return self.model.predict(list(batch))

        def encode_response(self, output):
            return output

except ImportError:
    ls = None


def serve_litserve(kind: str, port: int) -> None:
    server = ls.LitServer(LitBench(kind), accelerator="cpu", devices=1, workers_per_device=1, timeout=120)
    server.run(host="127.0.0.1", port=port, num_api_servers=1, generate_client_file=False, log_level="warning")


def bento_service():
    """Defined only when bentoml serves this module (SERVING_BENCH_BENTO names the model)."""
    import bentoml

    kind = os.environ["SERVING_BENCH_BENTO"]

    @bentoml.service(workers=1, traffic={"timeout": 120, "max_concurrency": 256})
    class BentoBench:
        def __init__(self):
            self.model = Model(kind)

        # BentoML has no fixed wait: its adaptive dispatcher sizes the wait from observed latencies.
        @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=60_000)
        def predict(self, items: list[dict]) -> list[dict]:
            return self.model.predict(items)

    return BentoBench


if os.environ.get("SERVING_BENCH_BENTO"):
    BentoBench = bento_service()


def serve_ray(kind: str, port: int) -> None:
    import ray
    from ray import serve

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=100 * 2**20,
        _temp_dir=tempfile.mkdtemp(prefix="ray-bench-"),
        log_to_driver=False,
    )
    serve.start(http_options={"host": "127.0.0.1", "port": port})

    @serve.deployment(num_replicas=1, max_ongoing_requests=256, ray_actor_options={"num_cpus": 1})
    class RayBench:
        def __init__(self):
            self.model = Model(kind)

        @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=WAIT_S)
        async def batched(self, items: list[dict]) -> list[dict]:
            return self.model.predict(items)

        async def __call__(self, request):
            return await self.batched(await request.json())

    serve.run(RayBench.bind(), route_prefix="/predict")
    while True:
        time.sleep(3600)


# --- installed size ------------------------------------------------------------------------------------


def closure(requirements: list[str]) -> dict:
    """Distributions a list of requirements pulls in, transitively (markers and extras honoured)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: dict = {}
    stack = [Requirement(text) for text in requirements]
    while stack:
        req = stack.pop()
        name = canonicalize_name(req.name)
        extras = set(req.extras)
        if name in seen and extras <= seen[name][1]:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        extras |= seen.get(name, (None, set()))[1]
        seen[name] = (dist, extras)
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker and not any(sub.marker.evaluate({"extra": e}) for e in extras | {""}):
                continue
            stack.append(sub)
    return {name: dist for name, (dist, _) in seen.items()}


def dist_bytes(dist) -> int:
    total = 0
    for file in dist.files or []:
        path = Path(dist.locate_file(file))
        if path.is_file():
            total += path.stat().st_size
    return total


def sizes(framework: str) -> dict:
    """MB of everything the framework pulls, and of what it adds over the app's other requirements."""
    app = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("litserve"):
            app.append(line)
    pulled = closure([FRAMEWORKS[framework]])
    base = closure(app)
    added = {name: dist for name, dist in pulled.items() if name not in base}
    venv = 0  # what pip put into the framework's own venv (0: it lives in the app's environment)
    if sys.prefix != sys.base_prefix:
        venv = sum(f.stat().st_size for f in Path(sys.prefix).rglob("*") if f.is_file() and not f.is_symlink())
    return {
        "venv_mb": venv / 2**20,
        "total_mb": sum(map(dist_bytes, pulled.values())) / 2**20,
        "total_n": len(pulled),
        "added_mb": sum(map(dist_bytes, added.values())) / 2**20,
        "added_n": len(added),
    }


# --- the harness ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def payload(kind: str, framework: str, rng: np.random.Generator) -> bytes:
    if kind == "effnet":
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray((rng.random((224, 224, 3)) * 255).astype("uint8")).save(buffer, "JPEG", quality=90)
        item = {"image": base64.b64encode(buffer.getvalue()).decode()}
    else:
        item = {"x": rng.standard_normal(256).round(4).tolist()}
    return json.dumps({"items": [item]} if framework == "bentoml" else item).encode()


def post(conn: http.client.HTTPConnection, body: bytes) -> dict:
    conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")
    answer = json.loads(data)
    return answer[0] if isinstance(answer, list) else answer


def tree(pid: int) -> list:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def memory(pid: int) -> tuple[float, float, int]:
    rss = pss = 0
    procs = tree(pid)
    for proc in procs:
        try:
            info = proc.memory_full_info()
            rss += info.rss
            pss += info.pss
        except Exception:
            pass
    return rss / 2**20, pss / 2**20, len(procs)


def load(port: int, bodies: list[bytes], clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    batches: set = set()
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(index: int):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        mine, seen, n = [], set(), 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                answer = post(conn, bodies[(index + n) % len(bodies)])
            except Exception as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                time.sleep(0.05)
                continue
            mine.append(time.perf_counter() - started)
            seen.add(answer["batch"])
            n += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            batches.update(seen)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "rps": len(latencies) / elapsed,
        "p50": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
        "p95": float(np.percentile(ms, 95)) if len(ms) else float("nan"),
        "mean_batch": len(latencies) / len(batches) if batches else float("nan"),
    }


def command(framework: str, kind: str, port: int) -> tuple[list[str], dict]:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "bench")]),
        "BENTOML_DO_NOT_TRACK": "True",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
    }
    python = INTERPRETERS[framework]
    if framework == "bentoml":
        env["SERVING_BENCH_BENTO"] = kind
        env["BENTOML_HOME"] = tempfile.mkdtemp(prefix="bentoml-home-")
        bentoml = str(Path(python).with_name("bentoml"))
        return [bentoml, "serve", "serving_frameworks:BentoBench", "--host", "127.0.0.1", "--port", str(port),
                "--working-dir", str(ROOT / "bench")], env  # fmt: skip
    return [python, str(Path(__file__).resolve()), "--serve", framework, "--model", kind, "--port", str(port)], env


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's own session (start_new_session), then SIGKILL what is left of its tree."""
    procs = tree(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=20)
    for p in procs:
        with contextlib.suppress(Exception):
            p.kill()
    proc.wait()


def bench_one(framework: str, kind: str, clients: int, seconds: float, warmup: float, log_dir: Path) -> dict:
    port = free_port()
    argv, env = command(framework, kind, port)
    log = open(log_dir / f"{framework}-{kind}.log", "wb")  # noqa: SIM115 (closed in finally, after the server)
    rng = np.random.default_rng(1)
    bodies = [payload(kind, framework, rng) for _ in range(16)]
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    row = {"framework": framework, "model": kind}
    try:
        while True:
            if proc.poll() is not None:
                tail = (log_dir / f"{framework}-{kind}.log").read_text(errors="replace")[-1500:]
                return {**row, "failed": f"exited {proc.returncode} before healthy:\n{tail}"}
            if time.monotonic() - started > 300:
                return {**row, "failed": "not healthy after 300 s"}
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                post(conn, bodies[0])
                conn.close()
                break
            except (OSError, RuntimeError, http.client.HTTPException, ValueError):
                time.sleep(0.1)
        row["healthy_s"] = time.monotonic() - started
        load(port, bodies, clients, warmup)
        row["rss_mb"], row["pss_mb"], row["processes"] = memory(proc.pid)
        row.update(load(port, bodies, clients, seconds))
        return row
    finally:
        stop(proc)
        log.close()


INTERPRETERS = {"litserve": sys.executable, "bentoml": "/tmp/venv-bento/bin/python", "ray": "/tmp/venv-ray/bin/python"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frameworks", default="litserve,bentoml,ray")
    parser.add_argument("--models", default="toy,effnet")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--bento-python", default=INTERPRETERS["bentoml"])
    parser.add_argument("--ray-python", default=INTERPRETERS["ray"])
    parser.add_argument("--serve", choices=["litserve", "ray"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "litserve":
        return serve_litserve(args.model, args.port)
    if args.serve == "ray":
        return serve_ray(args.model, args.port)
    if args.sizes:
        return print(json.dumps(sizes(args.sizes)))
    INTERPRETERS.update(bentoml=args.bento_python, ray=args.ray_python)

    frameworks = args.frameworks.split(",")
    size_rows, version = {}, {}
    for framework in frameworks:
        python = INTERPRETERS[framework]
        if not Path(python).exists():
            size_rows[framework] = None
            continue
        out = subprocess.run([python, __file__, "--sizes", framework], capture_output=True, text=True, cwd=ROOT)
        size_rows[framework] = json.loads(out.stdout) if out.returncode == 0 else None
        check = f"import {framework}; print({framework}.__version__)"
        out = subprocess.run([python, "-c", check], capture_output=True, text=True)
        version[framework] = out.stdout.strip() or "?"

    log_dir = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    rows = []
    for kind in args.models.split(","):
        for framework in frameworks:
            if not Path(INTERPRETERS[framework]).exists():
                rows.append({"framework": framework, "model": kind, "failed": "not installed"})
                continue
            print(f"... {framework} / {kind}", file=sys.stderr, flush=True)
            rows.append(bench_one(framework, kind, args.clients, args.seconds, args.warmup, log_dir))

    print(f"\n{args.clients} clients x {args.seconds:g} s after {args.warmup:g} s warm-up; max batch {MAX_BATCH}, "
          f"wait {WAIT_S * 1000:g} ms; server logs in {log_dir}\n")  # fmt: skip
    print("| framework | installed (all deps) | added over the app | model | start to first answer s | processes |"
          " RSS MB | PSS MB | req/s | p50 ms | p95 ms | mean batch | errors |")  # fmt: skip
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        framework = row["framework"]
        size = size_rows.get(framework)
        installed = f"{size['total_mb']:.0f} MB / {size['total_n']} pkgs" if size else "?"
        added = f"{size['added_mb']:.0f} MB / {size['added_n']} pkgs" if size else "?"
        if size and size["venv_mb"]:
            added += f" (venv {size['venv_mb']:.0f} MB)"
        label = f"{framework} {version.get(framework, '')}".strip()
        if "failed" in row:
            first = re.sub(r"\s+", " ", row["failed"])[-300:]
            print(f"| {label} | {installed} | {added} | {row['model']} | FAILED: {first} |")
            continue
        print(f"| {label} | {installed} | {added} | {row['model']} | {row['healthy_s']:.1f} | {row['processes']} | "
              f"{row['rss_mb']:.0f} | {row['pss_mb']:.0f} | {row['rps']:.1f} | {row['p50']:.0f} | {row['p95']:.0f} | "
              f"{row['mean_batch']:.2f} | {row['errors']} |")  # fmt: skip
    for row in rows:
        if row.get("first_error"):
            print(f"\n{row['framework']}/{row['model']} first error: {row['first_error']}")


if __name__ == "__main__":
    main()
