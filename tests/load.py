"""Many visitors predicting at once while an operator retrains: the load test's engine.

``run_load`` drives N websocket sessions (``tests.streamlit_client``) against a running
dashboard, each uploading a new Fashion-MNIST test image as soon as its previous answer
is drawn, and optionally submits a retraining job at the start. The suite runs it
briefly (tests/e2e/test_load.py); ``python -m bench --only load`` runs the minute-long
soak beside a one-visitor baseline (bench/load.py).
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.app import Job, build_backends  # noqa: E402
from core.config import Config
from core.ml.images import encode_png
from tests.streamlit_client import DashboardSession, timed_upload

ANSWER = "Answered by version"


@dataclass
class LoadResult:
    sessions: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # upload -> page drawn, answered
    problems: list[str] = field(default_factory=list)  # anything but a clean answer
    logged: int = 0  # prediction-log rows added meanwhile
    job: Job | None = None  # the retraining job, when one ran

    @property
    def answers(self) -> int:
        return len(self.latencies)

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict:
        return {"sessions": self.sessions, "seconds": round(self.seconds, 1),
                "answers": self.answers, "logged": self.logged,
                "problems": len(self.problems),
                "median_s": round(self.median, 3),
                "p95_s": round(self.percentile(0.95), 3),
                "max_s": round(max(self.latencies), 3),
                "job": None if self.job is None else self.job.status}


def run_load(url: str, config: Config, images, *, sessions: int, seconds: float,
             retrain_as: str | None = None, retrain_params: dict | None = None) -> LoadResult:
    """``sessions`` visitors upload for ``seconds`` (and until the retraining job, if
    ``retrain_as`` names an operator, has ended), after one untimed warm-up answer.
    ``images``: uint8 [N, 28, 28, 1]."""
    from core.app import RetrainRequest, submit_retrain
    from core.app.vocabulary import JOB_FINISHED

    backends = build_backends(config)
    log = backends.prediction_log
    result, lock = LoadResult(sessions, 0.0), threading.Lock()
    connected = [DashboardSession(url) for _ in range(sessions)]
    # One answer first, untimed: loading the model is the cold start (its own bench
    # row), not what twenty visitors of a running server wait for.
    connected[0].upload("warm-up.png", encode_png(images[-1]))
    logged_before = log.count(config.model_name)
    job = None
    if retrain_as is not None:
        job = submit_retrain(backends, RetrainRequest(**(retrain_params or {})),
                             actor=retrain_as, now=datetime.now(UTC))
    started = time.monotonic()

    def busy() -> bool:
        if time.monotonic() - started < seconds:
            return True
        return job is not None and backends.jobs.status(
            job.id, datetime.now(UTC)).status not in JOB_FINISHED

    def visitor(number: int, session: DashboardSession) -> None:
        index = number
        while busy():
            # Every upload a new picture: the page predicts (and logs) each image once.
            image = images[index % len(images)]
            index += sessions
            try:
                seconds_taken, page = timed_upload(session, f"upload{index}.png",
                                                   encode_png(image))
            except Exception as error:  # a dropped connection is a finding, not a crash
                with lock:
                    result.problems.append(f"session {number}: {type(error).__name__}: "
                                           f"{error}")
                return
            with lock:
                if page.exceptions or page.errors or page.find(ANSWER) is None:
                    result.problems.append(f"session {number}: {page.exceptions or page.errors}")
                else:
                    result.latencies.append(seconds_taken)

    threads = [threading.Thread(target=visitor, args=(n, s)) for n, s in enumerate(connected)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.monotonic() - started
    for session in connected:
        session.close()
    result.logged = log.count(config.model_name) - logged_before
    if job is not None:
        result.job = backends.jobs.status(job.id, datetime.now(UTC))
    return result
