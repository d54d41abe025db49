"""make image-test: checks the built image from the inside (``buildah run``, chroot
isolation: what runs on these machines; Docker and podman do not).

1. it runs as a user other than root, with a HEALTHCHECK configured;
2. it holds none of the tests' tools (pytest, Playwright, moto, ruff, mypy, ...);
3. ``vision bootstrap`` trains and registers a model into the /data volume (Fashion-MNIST
   mounted read-only from Debian's package, a short training);
4. ``vision serve`` answers /readyz and a prediction on that model, and the image's
   health check says healthy;
5. ``vision dashboard`` answers Streamlit's health endpoint, and so does the check;
6. the image's size.

Run from the project's folder: ``python deploy/image/check.py [IMAGE]``.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

IMAGE = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("IMAGE", "localhost/vision:latest")
DATASET = Path("/usr/share/datasets/fashion-mnist")
TEST_TOOLS = ("pytest", "xdist", "playwright", "moto", "ruff", "mypy", "schemathesis",
              "tritonclient", "aiosmtpd")
USER_ID = 10001  # the image's user (Dockerfile)


def step(message: str) -> None:
    print(f"image-test: {message}", flush=True)


def buildah(*args: str, capture: bool = True) -> str:
    done = subprocess.run(["buildah", *args], check=True, text=True,
                          stdout=subprocess.PIPE if capture else None)
    return (done.stdout or "").strip()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Container:
    """A working container of the image; commands run in it as the image's user, with
    the host's network (chroot isolation has no network namespace of its own)."""

    def __init__(self, image: str, data: Path):
        self.name = buildah("from", "--quiet", image)
        self.volumes = ["--volume", f"{data}:/data",
                        "--volume", f"{DATASET}:{DATASET}:ro"]

    def command(self, *argv: str, env: dict[str, str] | None = None) -> list[str]:
        settings = [f"--env={k}={v}" for k, v in (env or {}).items()]
        return ["buildah", "run", "--isolation", "chroot", *self.volumes, *settings,
                self.name, "--", *argv]

    def run(self, *argv: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(self.command(*argv, env=env), text=True, capture_output=True,
                              timeout=900)
        if done.returncode != 0:
            raise SystemExit(f"image-test: {' '.join(argv)} failed:\n{done.stdout}\n"
                             f"{done.stderr}")
        return done.stdout.strip()

    @contextmanager
    def background(self, *argv: str, env: dict[str, str] | None = None):
        log = tempfile.TemporaryFile()
        process = subprocess.Popen(self.command(*argv, env=env), stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield process
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-4000:])
            raise
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def remove(self) -> None:
        buildah("rm", self.name)


def wait_for(url: str, process: subprocess.Popen, timeout: float = 180) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"image-test: the process serving {url} exited "
                                 f"({process.returncode})") from None
            if time.monotonic() > deadline:
                raise SystemExit(f"image-test: {url} did not answer in {timeout:.0f} s") from None
            time.sleep(1)


def service_pid(process: subprocess.Popen, marker: str) -> int:
    """The PID of the container's process (a child of ``buildah run``) whose command
    line holds ``marker``: the health check is asked about it."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            group = os.getpgid(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
        if group == process.pid and marker in command and "buildah" not in command:
            return int(entry.name)
    raise SystemExit(f"image-test: no process running {marker!r}")


def test_image_instances() -> list:
    """The first Fashion-MNIST test image as TF Serving's instances (28x28x1, 0..1)."""
    with gzip.open(DATASET / "t10k-images-idx3-ubyte.gz") as file:
        pixels = file.read(16 + 28 * 28)[16:]
    return [[[[value / 255] for value in pixels[row * 28:(row + 1) * 28]]
             for row in range(28)]]


def main() -> int:
    started = time.monotonic()
    data = Path(tempfile.mkdtemp(prefix="image-test-"))
    os.chown(data, USER_ID, USER_ID)
    container = Container(IMAGE, data)
    try:
        user = container.run("id", "-u")
        assert user != "0", "the image runs as root"
        health = buildah("inspect", "--format", "{{.Docker.Config.Healthcheck}}", IMAGE)
        assert "vision-healthcheck" in health, f"no HEALTHCHECK: {health}"
        step(f"runs as uid {user}; HEALTHCHECK {health}")

        found = container.run("python", "-c", "import importlib.util as u; print(' '.join("
                              f"m for m in {TEST_TOOLS!r} if u.find_spec(m)))")
        assert not found, f"the image holds test tools: {found}"
        step("no test tools (" + ", ".join(TEST_TOOLS) + ")")

        boot = json.loads(container.run("vision", "bootstrap", "--epochs", "1", "--limit",
                                        "3000", "--eval-limit", "500", "--json"))
        step(f"bootstrap registered v{boot['version']} into /data")

        port = free_port()
        with container.background("vision", "serve", "--port", str(port)) as server:
            ready = json.loads(wait_for(f"http://127.0.0.1:{port}/readyz", server))
            assert ready["status"] == "ready", ready
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/models/classifier:predict",
                data=json.dumps({"instances": test_image_instances()}).encode(),
                headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
            assert len(answer["predictions"]) == 1, answer
            pid = service_pid(server, "core serve")
            container.run("python", "/usr/local/bin/vision-healthcheck", str(pid),
                          env={"PORT": str(port)})
            step(f"serve: /readyz ready, a prediction answered, healthy (port {port})")

        port = free_port()
        with container.background("vision", "dashboard", "--server.port", str(port)) as dash:
            health_page = wait_for(f"http://127.0.0.1:{port}/_stcore/health", dash)
            assert health_page.strip() == b"ok", health_page
            pid = service_pid(dash, "streamlit")
            container.run("python", "/usr/local/bin/vision-healthcheck", str(pid),
                          env={"PORT": str(port)})
            step(f"dashboard: /_stcore/health ok, healthy (port {port})")
    finally:
        container.remove()
        shutil.rmtree(data, ignore_errors=True)
    size = buildah("images", "--format", "{{.Size}}", IMAGE)
    step(f"passed in {time.monotonic() - started:.0f} s; {IMAGE} is {size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
