"""``python -m bench --only peers``: our API against the servers a team would run instead,
on both model sizes (the default 28x28 CNN and a 224x224 RGB MobileNetV2, ``weights=None``).

Each server gets the same model and the same image, as its documented interface takes it:

- **ours**: ``/v1/models/NAME:predict`` with ``{"instances": [{"b64": <the file>}]}``,
  default settings (``serve --workers 2``), every answer logged; also with the
  preprocessed tensor (``ours, tensor``), and with logging off (what logging costs);
- **MLflow** 3's scoring server (``mlflow models serve --env-manager local -w 2``) on the
  same Keras model saved with ``mlflow.keras``: the preprocessed tensor,
  ``{"inputs": [...]}`` (its Keras flavour takes tensors, not files);
- **BentoML** (``bench/peer_servers/bentoml_service.py``): the file as a multipart image,
  adaptive batching on, 2 workers;
- **Ray Serve** (``bench/peer_servers/ray_serve_app.py``): the file as the body,
  ``@serve.batch``, 2 replicas;
- **hello-world** on our stack (FastAPI on uvicorn, 2 workers): reads the body, answers
  a constant: the HTTP ceiling;
- **the bare runtime**: the TFLite file invoked in a loop by 2 processes (one thread
  each, the preprocessed image, no decode, no HTTP): the model's ceiling.

Servers run one at a time (an idle Ray cluster still takes CPU); throughput is ``wrk`` at
concurrency 1, 8 and 32; latency is ``hey`` at a fixed offered load, half our best
throughput; memory is the resident size of the server's processes after the load; cold
start is launch to the first answered prediction. The table goes to ``bench/peers.md``.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.http_serving import (
    WORKERS,
    _ours,
    _uvicorn,
    hey_counts,
    launched,
    resident_bytes,
    wrk_counts,
)
from bench.suite import Context, _test_images
from bench.timing import Row
from core.app import build_backends
from core.ml.images import encode_png, preprocess, resize_to_spec
from core.registry.records import InputSpec

CONCURRENCY = (1, 8, 32)
PEERS = ("MLflow", "BentoML", "Ray Serve")
TABLE = Path(__file__).resolve().parent / "peers.md"


@dataclass(frozen=True)
class Subject:
    """A model as every server gets it."""

    label: str
    name: str  # in our registry
    folder: Path  # the version's files
    spec: InputSpec
    image: bytes  # the file a client sends
    tensor: np.ndarray  # float32 [1, h, w, c], preprocessed as our API does


@dataclass
class Server:
    name: str
    command: list[str]
    env: dict
    path: str
    body: bytes
    content_type: str
    concurrency: tuple[int, ...] = CONCURRENCY
    version: str = ""
    throughput: dict[int, float] = field(default_factory=dict)  # answered 2xx per second
    failed: int = 0  # requests answered otherwise, or not at all (peers may shed load)
    latency: tuple[float, float] = (0.0, 0.0)  # p50, p99 ms
    rss: int = 0
    cold_start: float = 0.0


def peers_rows(context: Context) -> list[Row]:
    from bench.folder_training import make_photos
    from bench.own_model import mobilenet, register_own

    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    try:
        backends = build_backends(context.config)
        champion = backends.registry.get_champion()
        images, _ = _test_images(context, 1)
        small = _subject("28x28 CNN", context.config.model_name,
                         backends.registry.files(champion.version), champion.metadata.spec,
                         encode_png(images[0]))
        results = [(small, _measure(context, small, work / "small"))]
        photos = make_photos(work / "photos", 30)
        mobilenet(work / "mobilenet_v2.keras")
        own, registered = register_own(context, work / "mobilenet_v2.keras", photos)
        big = _subject("224x224 MobileNetV2", own.model,
                       own.registry.files(registered.version.version),
                       registered.version.metadata.spec, next(photos.rglob("*.jpg")).read_bytes())
        results.append((big, _measure(context, big, work / "big")))
        TABLE.write_text(_table(results, context.quick))
        print(TABLE.read_text())
        return [row for subject, measured in results for row in _rows(subject, *measured)]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _subject(label: str, name: str, folder: Path, spec: InputSpec, image: bytes) -> Subject:
    from core.ml.images import decode_image

    pixels = resize_to_spec(decode_image(image, max_bytes=1 << 24, max_pixels=1 << 24).pixels,
                            spec)
    return Subject(label, name, folder, spec, image, preprocess(pixels, spec)[None])


def _measure(context: Context, subject: Subject, work: Path
             ) -> tuple[list[Server], float]:
    """Every server's figures on ``subject``, and the bare runtime's images/s."""
    work.mkdir(parents=True)
    runs, seconds = (1, 4) if context.quick else (3, 8)
    servers = _servers(context, subject, work)
    ours = servers[0]
    for server in servers:
        _run(server, work, runs, seconds, rate=None if server is ours else _offered(ours))
        print(f"  {subject.label}, {server.name}: " + ", ".join(
            f"c={c} {r:.0f}/s" for c, r in server.throughput.items())
            + f"; p50/p99 {server.latency}; {server.rss / 2**20:.0f} MiB; cold "
              f"{server.cold_start:.1f} s", flush=True)
    return servers, _runtime_limit(subject, seconds)


def _offered(ours: Server) -> int:
    """The fixed load every server's latency is measured at: half our best throughput."""
    return max(8, int(0.5 * max(ours.throughput.values())))


def _run(server: Server, work: Path, runs: int, seconds: float, rate: int | None) -> None:
    body = work / f"{server.name.replace(' ', '-').replace(',', '')}.body"
    body.write_bytes(server.body)
    with launched(server.command, server.env, server.path, "POST", server.body,
                  {"Content-Type": server.content_type}) as started:
        server.cold_start = started.cold_start
        url_of = f"{started.url}{server.path}"
        wrk_counts(url_of, body, server.content_type, 8, 2)  # warm-up
        for connections in server.concurrency:
            counted = [wrk_counts(url_of, body, server.content_type, connections, seconds)
                       for _ in range(runs)]
            server.throughput[connections] = statistics.median(rate for rate, _ in counted)
            server.failed += sum(failed for _, failed in counted)
        server.rss = resident_bytes(started.pid)
        latency_rate = rate if rate is not None else _offered(server)
        samples = [hey_counts(url_of, body, server.content_type, latency_rate, seconds, 8)
                   for _ in range(runs)]
        server.latency = (statistics.median(s[0] for s in samples),
                          statistics.median(s[1] for s in samples))
        server.failed += sum(s[2] for s in samples)
    if server.name in ("ours", "ours, logging off") and server.failed:
        raise RuntimeError(f"{server.name} failed {server.failed} requests")


def _servers(context: Context, subject: Subject, work: Path) -> list[Server]:
    import bentoml
    import mlflow
    import ray

    from tests.serving.clients import BOUNDARY, multipart

    registry = context.config.registry_dir
    ours_cmd, ours_env = _ours(registry)
    ours_env |= {"MODEL_NAME": subject.name}
    predict = f"/v1/models/{subject.name}:predict"
    b64 = json.dumps({"instances": [{"b64": base64.b64encode(subject.image).decode()}]})
    tensor = np.round(subject.tensor, 4)  # 4 decimals hold 255 levels: a shorter body
    peer_env = {"PEER_TFLITE": str(subject.folder / "model.tflite"),
                "PEER_HEIGHT": str(subject.spec.height), "PEER_WIDTH": str(subject.spec.width),
                "PEER_CHANNELS": str(subject.spec.channels), "TF_CPP_MIN_LOG_LEVEL": "2"}
    form = f"multipart/form-data; boundary={BOUNDARY}"
    return [
        Server("ours", ours_cmd, ours_env, predict, b64.encode(), "application/json"),
        Server("ours, tensor", ours_cmd, ours_env, predict,
               json.dumps({"instances": tensor.tolist()}).encode(), "application/json"),
        Server("ours, logging off", _uvicorn("bench.serving_apps:ours_without_log"),
               ours_env, predict, b64.encode(), "application/json", (8,)),
        Server("MLflow", [sys.executable, "-m", "mlflow", "models", "serve", "-m",
                          str(_mlflow_model(subject, work)), "--env-manager", "local",
                          "-w", str(WORKERS)], peer_env, "/invocations",
               json.dumps({"inputs": tensor.tolist()}).encode(), "application/json",
               version=mlflow.__version__),
        Server("BentoML", ["bentoml", "serve",
                           "bench.peer_servers.bentoml_service:Classifier"], peer_env,
               "/predict", multipart(subject.image, field="images"), form,
               version=bentoml.__version__),
        Server("Ray Serve", [sys.executable, "-m", "bench.peer_servers.ray_serve_app"],
               peer_env, "/predict", subject.image, "application/octet-stream",
               version=ray.__version__),
        Server("hello-world", _uvicorn("bench.serving_apps:hello_app"), {}, "/hello",
               subject.image, "application/octet-stream"),
    ]


def _mlflow_model(subject: Subject, work: Path) -> Path:
    """The version's Keras model saved as an MLflow model (what ``mlflow.keras.log_model``
    stores), in a fresh process: this one need not import TensorFlow."""
    import subprocess

    path = work / "mlflow-model"
    subprocess.run([sys.executable, "-c", (
        "import sys, keras, mlflow.keras; "
        "mlflow.keras.save_model(keras.models.load_model(sys.argv[1]), sys.argv[2])"),
        str(subject.folder / "model.keras"), str(path)], check=True, capture_output=True)
    return path


def _invoke_for(path: str, x: np.ndarray, seconds: float, counts) -> None:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=path, num_threads=1).get_signature_runner("serving_default")
    runner(image=x)
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        runner(image=x)
        n += 1
    counts.put(n / seconds)


def _runtime_limit(subject: Subject, seconds: float) -> float:
    """Images per second of the TFLite file invoked by WORKERS processes at once."""
    spawn = multiprocessing.get_context("spawn")
    counts = spawn.Queue()
    processes = [spawn.Process(target=_invoke_for, args=(
        str(subject.folder / "model.tflite"), subject.tensor, seconds, counts))
        for _ in range(WORKERS)]
    for process in processes:
        process.start()
    total = sum(counts.get(timeout=seconds + 60) for _ in processes)
    for process in processes:
        process.join()
    return total


def _best_peer(servers: list[Server], connections: int) -> Server:
    return max((s for s in servers if s.name in PEERS),
               key=lambda s: s.throughput[connections])


def _rows(subject: Subject, servers: list[Server], limit: float) -> list[Row]:
    by_name = {s.name: s for s in servers}
    ours = by_name["ours"]
    rows = []
    for connections in (8, 32):
        best = _best_peer(servers, connections)
        ratio = ours.throughput[connections] / best.throughput[connections]
        rows.append(Row(f"{subject.label}: API throughput against the best peer, c="
                        f"{connections} (every answer logged)", ours.throughput[connections],
                        "req/s", best.name, best.throughput[connections], ratio,
                        "≥ 1.5× the best peer", ratio >= 1.5, "bench/peers.md has every server"))
    lowest = min((s for s in servers if s.name in PEERS), key=lambda s: s.latency[1])
    rows.append(Row(f"{subject.label}: API p99 at {_offered(ours)} req/s offered (half our "
                    "best)", ours.latency[1], "ms", f"{lowest.name}'s p99",
                    lowest.latency[1], lowest.latency[1] / ours.latency[1],
                    "≤ the best peer's p99", ours.latency[1] <= lowest.latency[1],
                    f"p50 {ours.latency[0]:.1f} ms against {lowest.latency[0]:.1f} ms"))
    best_ours = max(ours.throughput.values())
    rows.append(Row(f"{subject.label}: API throughput against the bare runtime (logged)",
                    best_ours, "req/s", f"TFLite invoke × {WORKERS} processes", limit,
                    best_ours / limit, "≥ 80 % (224 px model)" if "224" in subject.label
                    else "informational", best_ours >= 0.8 * limit or "224" not in
                    subject.label))
    off = by_name["ours, logging off"].throughput[8]
    rows.append(Row(f"{subject.label}: API throughput with logging on (c=8)",
                    ours.throughput[8], "req/s", "logging off", off, ours.throughput[8] / off,
                    "≥ 70 % of logging off (28 px model)" if "28x28" in subject.label
                    else "informational", ours.throughput[8] >= 0.7 * off or "28x28" not in
                    subject.label))
    return rows


def _table(results: list[tuple[Subject, tuple[list[Server], float]]], quick: bool) -> str:
    lines = [f"`python -m bench --only peers{' --quick' if quick else ''}`: req/s by "
             "concurrency (wrk), p50/p99 at a fixed offered load (hey), resident memory after "
             "the load, launch to first answer.", ""]
    for subject, (servers, limit) in results:
        rate = _offered(servers[0])
        lines += [f"**{subject.label}** (bare runtime: {limit:,.0f} images/s; latency at "
                  f"{rate} req/s offered)", "",
                  "| server | c=1 | c=8 | c=32 | p50 / p99 ms | memory MiB | cold start s |",
                  "|---|---|---|---|---|---|---|"]
        for s in servers:
            cells = [f"{s.throughput[c]:,.0f}" if c in s.throughput else "—"
                     for c in CONCURRENCY]
            latency = f"{s.latency[0]:.1f} / {s.latency[1]:.1f}"
            name = f"{s.name} {s.version}".strip()
            failed = f" ({s.failed:,} requests failed)" if s.failed else ""
            lines.append(f"| {name}{failed} | {' | '.join(cells)} | {latency} | "
                         f"{s.rss / 2**20:,.0f} | {s.cold_start:.1f} |")
        lines.append("")
    return "\n".join(lines)

