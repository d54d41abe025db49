"""HTTP serving rows of ``python -m bench --only serving``: our API against the seed
chapter's pattern and a hello-world ceiling, driven by compiled load generators.

All servers run at once (on their own ports, same worker count) and are measured in
turns, run after run, so that every ratio compares figures taken side by side; each
figure is the median over the runs. ``wrk`` measures throughput at a concurrency;
``hey -q`` offers a fixed rate and reports latency percentiles.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.drift_detection import BENCH_ACTOR
from bench.timing import Row
from core.config import PROJECT_ROOT, Config
from tests.servers import free_port
from tests.serving.clients import BOUNDARY, multipart

WORKERS = 2  # one per core of the reference machine


@dataclass(frozen=True)
class Launched:
    url: str
    pid: int  # the server's first process (its session's leader)
    cold_start: float  # seconds from launch to the probe's first 200


@contextmanager
def launched(command: list[str], env: dict, probe_path: str, method: str = "GET",
             body: bytes = b"", headers: dict | None = None):
    """A server started with ``--port`` on a free port, once ``probe_path`` answers 200;
    stopped (SIGTERM, then SIGKILL) with every process it started."""
    port = free_port()
    started = time.perf_counter()
    errors = tempfile.TemporaryFile()  # what it said, shown if it does not start
    process = subprocess.Popen([*command, "--port", str(port)], cwd=PROJECT_ROOT,
                               env=os.environ | env, stdout=subprocess.DEVNULL,
                               stderr=errors, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request(method, probe_path, body=body, headers=headers or {})
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                errors.seek(0)
                said = errors.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"{command} did not start (exit {process.poll()}):\n{said}")
            time.sleep(0.1)
        yield Launched(f"http://127.0.0.1:{port}", process.pid,
                       time.perf_counter() - started)
    finally:
        errors.close()
        family = descendants(process.pid)
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        for pid in descendants(process.pid) | family:  # any that left the process group
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def descendants(pid: int) -> set[int]:
    """Every living process started by ``pid``, however deep."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def resident_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and every process it started."""
    total = 0
    for each in {pid} | descendants(pid):
        try:
            status = Path(f"/proc/{each}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) * 1024 for line in status.splitlines()
                       if line.startswith("VmRSS:")), 0)
    return total


def _uvicorn(factory: str) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--factory", factory, "--workers", str(WORKERS),
            "--log-level", "warning", "--no-access-log"]


def _ours(registry: Path) -> tuple[list[str], dict]:
    return ([sys.executable, "-m", "core", "--registry", str(registry), "serve", "--workers",
             str(WORKERS)], {"MODEL_REGISTRY_DIR": str(registry)})


def wrk(url: str, body_file: Path, content_type: str, connections: int,
        seconds: float) -> float:
    """Requests per second answered 2xx (a run with any other answer raises)."""
    answered, failed = wrk_counts(url, body_file, content_type, connections, seconds)
    if failed:
        raise RuntimeError(f"wrk saw {failed} failed requests against {url}")
    return answered


def wrk_counts(url: str, body_file: Path, content_type: str, connections: int,
               seconds: float) -> tuple[float, int]:
    """Requests per second answered 2xx, and how many requests failed (another status, a
    socket error or a timeout)."""
    script = body_file.with_suffix(".lua")
    script.write_text(f'wrk.method = "POST"\nlocal f = io.open("{body_file}", "rb")\n'
                      'wrk.body = f:read("*all")\nf:close()\n'
                      f'wrk.headers["Content-Type"] = "{content_type}"\n')
    # A 10 s timeout (wrk's default: 2 s): a slow answer counts as slow, not failed.
    out = subprocess.run(["wrk", f"-t{min(2, connections)}", f"-c{connections}",
                          f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    requests = _number(r"(\d+) requests in", out)
    failed = _optional(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    if errors:
        failed += sum(int(n) for n in errors.groups())
    seconds_taken = requests / _number(r"Requests/sec:\s+([\d.]+)", out)
    return (requests - _optional(r"Non-2xx or 3xx responses:\s+(\d+)", out)) / seconds_taken, \
        int(failed)


def _optional(pattern: str, output: str) -> float:
    found = re.search(pattern, output)
    return float(found.group(1)) if found else 0.0


def hey_latency(url: str, body_file: Path, content_type: str, rate: int,
                seconds: float, clients: int = 4) -> tuple[float, float]:
    """p50 and p99 in ms at a fixed offered ``rate`` (requests/s) from ``clients`` (a run
    with an answer other than 200 raises)."""
    p50, p99, failed = hey_counts(url, body_file, content_type, rate, seconds, clients)
    if failed:
        raise RuntimeError(f"hey saw {failed} failed requests against {url}")
    return p50, p99


def hey_counts(url: str, body_file: Path, content_type: str, rate: int, seconds: float,
               clients: int) -> tuple[float, float, int]:
    """p50 and p99 in ms of the requests answered 200, and how many were not. Computed
    from every request's time: hey's own percentiles print 0 when it saw few answers."""
    out = subprocess.run(["hey", "-z", f"{seconds}s", "-c", str(clients), "-q",
                          str(max(1, rate // clients)), "-m", "POST", "-T", content_type,
                          "-D", str(body_file), "-o", "csv", url], capture_output=True,
                         text=True, check=True).stdout
    times, failed = [], 0
    for line in out.splitlines()[1:]:  # response-time,DNS+dialup,...,status-code,offset
        fields = line.split(",")
        if len(fields) < 7 or fields[6] != "200":
            failed += 1
        else:
            times.append(float(fields[0]) * 1000)
    if not times:
        raise RuntimeError(f"hey saw no answer from {url}:\n{out[-2000:]}")
    return float(np.percentile(times, 50)), float(np.percentile(times, 99)), failed


def _number(pattern: str, output: str) -> float:
    """The number ``pattern``'s group finds in a load generator's output."""
    found = re.search(pattern, output)
    if found is None:
        raise RuntimeError(f"no {pattern!r} in the load generator's output:\n{output}")
    return float(found.group(1))


def _with_shadow_version(registry: Path, model: str) -> Path:
    """A copy of ``registry`` whose champion is shadowed by an identical candidate."""
    from datetime import UTC, datetime

    from core.app import build_backends, set_traffic
    from core.audit import Actor
    from core.config import load_config

    copy = Path(tempfile.mkdtemp(prefix="bench-shadow-")) / "registry"
    shutil.copytree(registry, copy)
    backends = build_backends(load_config().with_overrides(registry_dir=copy, model_name=model))
    champion = backends.registry.get_champion()
    files = backends.registry.files(champion.version)
    def write(folder: Path) -> None:
        shutil.copytree(files, folder, dirs_exist_ok=True)

    candidate = backends.registry.register_version(
        write, champion.metadata,
        actor=Actor(BENCH_ACTOR, "admin"), now=datetime.now(UTC), parent=champion.version)
    set_traffic(backends, actor=BENCH_ACTOR, mode="shadow", candidate=candidate.version,
                percent=None, reason="benchmark: what shadowing costs", now=datetime.now(UTC))
    return copy


def http_rows(config: Config, png: bytes, quick: bool) -> list[Row]:
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed. To fix this, run 'make bench' "
                               "(it installs Debian's wrk and hey).")
    from core.app import build_backends

    backends = build_backends(config)
    champion = backends.registry.get_champion()
    spec = champion.metadata.input_spec
    runs, seconds = (3, 4) if quick else (5, 8)
    folder = Path(tempfile.mkdtemp(prefix="bench-http-"))
    upload = folder / "upload.bin"
    upload.write_bytes(multipart(png))
    import base64

    tf_body = folder / "predict.json"
    tf_body.write_text(json.dumps({"instances": [{"b64": base64.b64encode(png).decode()}]}))
    form = f"multipart/form-data; boundary={BOUNDARY}"
    shadow_registry = _with_shadow_version(config.registry_dir, config.model_name)
    seed_env = {"SEED_SAVED_MODEL": str(backends.registry.files(champion.version)
                                        / "saved_model"),
                "SEED_CLASS_NAMES": json.dumps(champion.class_names),
                "SEED_HEIGHT": str(spec["height"]), "SEED_WIDTH": str(spec["width"]),
                "TF_CPP_MIN_LOG_LEVEL": "2"}
    ours_cmd, ours_env = _ours(config.registry_dir)
    shadow_cmd, shadow_env = _ours(shadow_registry)
    probe: dict[str, Any] = {"method": "POST", "body": upload.read_bytes(),
                             "headers": {"Content-Type": form}}
    samples: dict[str, list[float]] = {}
    with ExitStack() as stack:
        hello = stack.enter_context(launched(_uvicorn("bench.serving_apps:hello_app"), {},
                                             "/hello", **probe)).url
        seed = stack.enter_context(launched(_uvicorn("bench.serving_apps:seed_app"), seed_env,
                                            "/predict", **probe)).url
        ours = stack.enter_context(launched(ours_cmd, ours_env, "/readyz")).url
        nolog = stack.enter_context(launched(
            _uvicorn("bench.serving_apps:ours_without_log"), ours_env, "/readyz")).url
        shadow = stack.enter_context(launched(shadow_cmd, shadow_env, "/readyz")).url
        cases = {
            "hello c=8": (f"{hello}/hello", upload, form, 8),
            "seed c=8": (f"{seed}/predict", upload, form, 8),
            "ours c=1": (f"{ours}/v1/predict", upload, form, 1),
            "ours c=8": (f"{ours}/v1/predict", upload, form, 8),
            "ours c=32": (f"{ours}/v1/predict", upload, form, 32),
            "ours :predict c=8": (f"{ours}/v1/models/{config.model_name}:predict", tf_body,
                                  "application/json", 8),
            "no log c=8": (f"{nolog}/v1/predict", upload, form, 8),
            "shadow c=8": (f"{shadow}/v1/predict", upload, form, 8),
        }
        for run in range(runs):
            for name, (url, body, content_type, connections) in cases.items():
                samples.setdefault(name, []).append(
                    wrk(url, body, content_type, connections, seconds))
            print(f"  serving run {run + 1}/{runs}: " + ", ".join(
                f"{k} {v[-1]:.0f}/s" for k, v in samples.items()), flush=True)
        latencies = [hey_latency(f"{ours}/v1/predict", upload, form, 200, seconds * 2)
                     for _ in range(runs)]
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(shadow_registry.parent, ignore_errors=True)
    median = {name: statistics.median(values) for name, values in samples.items()}
    p50 = statistics.median(p for p, _ in latencies)
    p99 = statistics.median(p for _, p in latencies)
    ours8 = median["ours c=8"]
    setup = (f"{WORKERS} server processes each, {runs} runs of {seconds} s, median; "
             "28×28 PNG uploaded as multipart")
    return [
        Row("API throughput at concurrency 8 (/v1/predict, logged)", ours8, "requests/s",
            "seed pattern (SavedModel signature per request)", median["seed c=8"],
            ours8 / median["seed c=8"], "≥ 10× the seed pattern",
            ours8 >= 10 * median["seed c=8"], setup),
        Row("API throughput against the HTTP ceiling (c=8)", ours8, "requests/s",
            "hello-world on the same stack", median["hello c=8"], ours8 / median["hello c=8"],
            "≥ 50 % of hello-world", ours8 >= 0.5 * median["hello c=8"], setup),
        Row("API throughput at concurrency 1 / 32", median["ours c=1"], "requests/s",
            "same at c=32", median["ours c=32"], None, "—", True,
            f"c=32: {median['ours c=32']:.0f} requests/s; TF Serving's :predict with a b64 "
            f"instance at c=8: {median['ours :predict c=8']:.0f} requests/s"),
        Row("API latency p99 at 200 requests/s offered", p99, "ms", "p50", p50, None,
            "p99 ≤ 20 ms", p99 <= 20, f"hey -q, 4 clients, {seconds * 2} s, median of {runs}"),
        Row("API throughput with logging (c=8)", ours8, "requests/s", "logging off",
            median["no log c=8"], ours8 / median["no log c=8"], "≥ 70 % of logging off",
            ours8 >= 0.7 * median["no log c=8"], "every answer committed before it is sent"),
        Row("API throughput with shadow on (c=8)", median["shadow c=8"], "requests/s",
            "shadow off", ours8, median["shadow c=8"] / ours8, "≥ 70 % of shadow off",
            median["shadow c=8"] >= 0.7 * ours8, "the candidate is a copy of the champion"),
    ]
