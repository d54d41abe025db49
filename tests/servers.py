"""Throw-away servers on free local ports, in temporary folders: the real engines a
team runs (PostgreSQL, an S3 stand-in, a Ray head), started and stopped by the tests,
the benchmarks and the multi-machine rehearsal.

Each is a context manager; leaving it stops the server and removes its folder.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None,
                  log: Path | None = None) -> None:
    """Until something accepts connections on ``port`` (or the process exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    detail = log.read_text()[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"nothing answered on port {port} within {timeout:.0f} s\n{detail}")


def _postgres_bin(program: str) -> str:
    """A PostgreSQL server program: on PATH, or where Debian's package puts it."""
    found = shutil.which(program) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"), reverse=True)), None)
    if not found:
        raise RuntimeError(f"{program} not found. To fix this, install Debian's postgresql "
                           "package (make test does).")
    return found


class PostgresServer:
    """A PostgreSQL cluster made by ``initdb`` in a temporary folder.

    PostgreSQL refuses to run as root, so under root it runs as the ``postgres`` user
    (which Debian's package creates). Trust authentication on 127.0.0.1 only.

    Args:
        durable: ``fsync`` on (benchmarks measure real commits); the tests switch it
            off, since they kill clients, never the machine.
    """

    def __init__(self, durable: bool = False):
        self.durable = durable
        self.port = 0
        self.folder: Path | None = None

    def _as_owner(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def __enter__(self) -> "PostgresServer":
        self.folder = Path(tempfile.mkdtemp(prefix="pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        data = self.folder / "data"
        subprocess.run([*self._as_owner(), _postgres_bin("initdb"), "-D", str(data), "-U",
                        "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        self.port = free_port()
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   f"-c max_connections=400 -c fsync={'on' if self.durable else 'off'}")
        subprocess.run([*self._as_owner(), _postgres_bin("pg_ctl"), "-D", str(data), "-o",
                        options, "-l", str(self.folder / "server.log"), "-w", "start"],
                       check=True, capture_output=True, timeout=120)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.folder is None:
            return
        subprocess.run([*self._as_owner(), _postgres_bin("pg_ctl"), "-D",
                        str(self.folder / "data"), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Creates an empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _ServerProcess:
    """A server process on a free port, logging into a temporary folder; subclasses say
    what to run (``command``) and how long it may take to answer."""

    prefix = "server-"
    start_timeout = 60.0

    def __init__(self):
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.folder: Path | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def __enter__(self):
        self.folder = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.port = free_port()
        log = self.folder / "server.log"
        self.process = subprocess.Popen(self.command(), stdout=log.open("w"),
                                        stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, self.start_timeout, self.process, log)
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


class MotoServer(_ServerProcess):
    """moto's S3 stand-in (``moto_server``) on a free port; ``environment`` holds the
    settings a client needs (endpoint, region, made-up credentials)."""

    prefix = "moto-"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def environment(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

    def create_bucket(self, name: str) -> None:
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        urllib.request.urlopen(request, timeout=30).close()


class MlflowServer(_ServerProcess):
    """``mlflow server`` on a free port with a SQLite backend and its artifacts in the
    temporary folder; ``url`` is the tracking URI."""

    prefix = "mlflow-"
    start_timeout = 180.0  # it creates its database schema first

    def command(self) -> list[str]:
        assert self.folder is not None
        return [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", "1",
                "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
                "--artifacts-destination", str(self.folder / "artifacts")]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class RayHead:
    """A local Ray head node (``ray start --head``, CPU only) with its job server;
    ``address`` is what ``JOB_EXECUTOR=ray://...`` names."""

    def __init__(self, cpus: int = 2):
        self.cpus = cpus
        self.folder: Path | None = None
        self.dashboard_port = 0

    def _ray(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        ray = Path(sys.executable).with_name("ray")
        return subprocess.run([str(ray) if ray.exists() else "ray", *args],
                              capture_output=True, text=True, timeout=timeout,
                              # A throw-away head on 127.0.0.1 without token auth, even
                              # where a ray.init() elsewhere left ~/.ray/auth_token.
                              env=os.environ | {"RAY_USAGE_STATS_ENABLED": "0",
                                                "RAY_AUTH_MODE": "disabled"})

    def __enter__(self) -> "RayHead":
        # Ray's socket paths must stay short (107 bytes): a short folder under /tmp.
        self.folder = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
        self.port, self.dashboard_port = free_port(), free_port()
        # Every port Ray would otherwise take at a fixed default (its job agent's 52365
        # among them) is a free one: another test's server may hold the default.
        agent_ports = {option: free_port() for option in (
            "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
            "runtime-env-agent-port", "metrics-export-port", "ray-client-server-port",
            "node-manager-port", "object-manager-port")}
        started = self._ray("start", "--head", f"--port={self.port}",
                            f"--num-cpus={self.cpus}", "--num-gpus=0",
                            "--dashboard-host=127.0.0.1",
                            f"--dashboard-port={self.dashboard_port}",
                            *(f"--{option}={port}" for option, port in agent_ports.items()),
                            f"--temp-dir={self.folder}", "--include-dashboard=true",
                            "--disable-usage-stats")
        if started.returncode != 0:
            raise RuntimeError(f"ray start failed:\n{started.stdout}\n{started.stderr}")
        wait_for_port(self.dashboard_port, 120)
        self._wait_for_job_agent(120)
        return self

    def _wait_for_job_agent(self, timeout: float) -> None:
        """The dashboard answers before its job agent does ("No available agent to submit
        job"): a head is ready once a job runs on it."""
        from ray.job_submission import JobStatus, JobSubmissionClient

        client = JobSubmissionClient(f"http://127.0.0.1:{self.dashboard_port}")
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                job = client.submit_job(entrypoint="true")
                while time.monotonic() < deadline:
                    if client.get_job_status(job) in {JobStatus.SUCCEEDED, JobStatus.FAILED,
                                                      JobStatus.STOPPED}:
                        return
                    time.sleep(0.2)
            except RuntimeError as error:
                last = error
                time.sleep(0.5)
        raise RuntimeError(f"Ray's job agent did not start within {timeout:.0f} s: {last}")

    def __exit__(self, *exc) -> None:
        self._ray("stop", "--force", timeout=120)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def address(self) -> str:
        """What ``JOB_EXECUTOR`` names: the job server on the dashboard's port."""
        return f"ray://127.0.0.1:{self.dashboard_port}"
