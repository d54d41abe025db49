"""The worker: claims queued jobs one after another and runs each with its kind's handler.

Job kinds are a registry ``{kind: handler}`` that the application passes in; an
unknown kind fails its job with a message listing the known ones. Finishing a
job and claiming the next happen in one transaction (``JobStore``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime

from core.errors import CoreError
from core.jobs.records import Job, JobStore
from core.ml.params import Progress

LOG_TAIL_LINES = 30
# A handler runs one job and returns the version it registered (or None).
ProgressCallback = Callable[[Progress], None]
JobHandler = Callable[[Job, ProgressCallback], "int | None"]


def run_worker(store: JobStore, handlers: Mapping[str, JobHandler],
               clock: Callable[[], datetime], runner: str | None = None) -> int:
    """Runs queued jobs one after another until none is left; returns how many ran.

    ``runner`` says where this worker runs, for the executor (e.g. its Ray job)."""
    finished: tuple[int, str, dict] | None = None
    ran = 0
    while (job := store.finish_and_claim_next(os.getpid(), clock(), finished,
                                              runner)) is not None:
        ran += 1
        try:
            if job.cancel_requested:
                raise JobCancelled()
            handler = handlers.get(job.kind)
            if handler is None:
                raise CoreError(f"unknown job kind {job.kind!r}. To fix this, submit one of: "
                                f"{', '.join(sorted(handlers))}.")
            version = handler(job, progress_tracker(store, job.id, clock))
            finished = (job.id, "succeeded", {"version": version})
        except JobCancelled:
            finished = (job.id, "cancelled", {})
        except CoreError as error:
            finished = (job.id, "failed", {"error": str(error)})
        except Exception as error:  # a worker must record every failure, not die silently
            finished = (job.id, "failed", {"error": f"{type(error).__name__}: {error}"})
    return ran


class JobCancelled(Exception):
    """Raised inside a worker when its job is cancelled."""


def progress_tracker(store: JobStore, job_id: int, clock: Callable[[], datetime],
                     min_interval: float = 0.5) -> ProgressCallback:
    """A training progress callback that writes to the job record (throttled).

    Raises JobCancelled from inside training when cancellation was requested.
    """
    history: list[dict] = []  # one entry per finished epoch
    lines: list[str] = []  # the log tail shown with the job
    last: list[datetime] = []  # when progress was last written

    def on_progress(progress: Progress) -> None:
        now = clock()
        if progress.epoch_done:
            history.append({"epoch": progress.epoch} | progress.logs)
            lines.append(f"epoch {progress.epoch}/{progress.epochs}: " + ", ".join(
                f"{k}={v:.4f}" for k, v in progress.logs.items()))
        elif last and (now - last[-1]).total_seconds() < min_interval:
            return
        last[:] = [now]
        record = {"epoch": progress.epoch, "epochs": progress.epochs, "step": progress.step,
                  "steps": progress.steps, "loss": progress.logs.get("loss"),
                  "accuracy": progress.logs.get("accuracy"), "history": history}
        tail = "\n".join(lines[-LOG_TAIL_LINES:])
        if store.update_progress(job_id, record, tail):
            raise JobCancelled()

    return on_progress
