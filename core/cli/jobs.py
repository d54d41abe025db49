"""Retraining jobs: retrain, jobs, cancel, start."""

from __future__ import annotations

import json
import sys
import time
from argparse import Namespace

from core.app import (
    Backends,
    Job,
    RetrainRequest,
    cancel_job,
    find_comparison,
    get_job,
    get_version,
    list_jobs,
    start_job,
    submit_retrain,
)
from core.app.vocabulary import JOB_FINISHED
from core.cli.common import Commands, actor, now


def register(commands: Commands) -> None:
    retrain = commands.add("retrain", cmd_retrain, json=True, help=(
        "queue a retraining job (fine-tunes the champion; the result is a candidate, "
        "never promoted)"))
    retrain.add_argument("--include", nargs="+", metavar="SCENARIO",
                         help="drift scenarios to learn from (default: those seen in traffic)")
    retrain.add_argument("--no-feedback", action="store_true",
                         help="leave out the images people labelled (corrections, review queue)")
    retrain.add_argument("--epochs", type=int, default=RetrainRequest.epochs,
                         help=f"default: {RetrainRequest.epochs}")
    retrain.add_argument("--learning-rate", type=float, default=RetrainRequest.learning_rate,
                         help=f"default: {RetrainRequest.learning_rate:g}")
    retrain.add_argument("--original-images", type=int, default=RetrainRequest.original_images,
                         metavar="N", help="original training images to fine-tune on "
                         f"(default: {RetrainRequest.original_images:,}; fewer: a quicker job)")
    retrain.add_argument("--augmented-per-scenario", type=int, metavar="N",
                         default=RetrainRequest.augmented_per_scenario,
                         help="training images copied with each drift learnt from "
                         f"(default: {RetrainRequest.augmented_per_scenario:,})")
    retrain.add_argument("--wait", action="store_true", help="follow the job until it ends")

    commands.add("jobs", cmd_jobs, json=True, help="list jobs with status and progress")

    cancel = commands.add("cancel", cmd_cancel,
                          help="cancel a queued or running job, or discard a suggested one")
    cancel.add_argument("job", type=int, metavar="JOB")

    start_one = commands.add("start", cmd_start,
                             help="start a retraining job the monitor suggested")
    start_one.add_argument("job", type=int, metavar="JOB")


def cmd_retrain(args: Namespace, backends: Backends) -> int:
    request = RetrainRequest(include=None if args.include is None else tuple(args.include),
                             use_feedback=not args.no_feedback, epochs=args.epochs,
                             learning_rate=args.learning_rate,
                             original_images=args.original_images,
                             augmented_per_scenario=args.augmented_per_scenario)
    job = submit_retrain(backends, request, actor=actor(args), now=now())
    if not args.wait:
        print(json.dumps({"job": job.id, "status": job.status}) if args.json
              else f"queued job {job.id}; follow it with 'python -m core jobs'")
        return 0
    job = _follow(backends, job.id, actor(args))
    summary = {"job": job.id, "status": job.status, "version": job.result_version,
               "error": job.error}
    if job.result_version is not None:
        candidate = get_version(backends, job.result_version, actor=actor(args), now=now())
        comparison = None if candidate.parent is None else find_comparison(
            backends, candidate.parent, candidate.version, actor=actor(args), now=now())
        summary["recommendation"] = comparison.recommendation if comparison else None
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"job {job.id} {job.status}" + (f": candidate version {job.result_version}, "
              f"gate recommends {summary['recommendation']}" if job.result_version else "")
              + (f" ({job.error})" if job.error else ""))
    return 0 if job.status == "succeeded" else 1


def _follow(backends: Backends, job_id: int, who: str) -> Job:
    """Polls a job, drawing its progress, until it ends."""
    from tqdm import tqdm

    with tqdm(total=1, unit="step", file=sys.stderr, desc=f"job {job_id}",
              dynamic_ncols=True) as bar:
        while True:
            job = get_job(backends, job_id, actor=who, now=now())
            progress = job.training
            if progress.started:
                bar.total, bar.n = progress.total_steps, progress.steps_done
                bar.set_postfix(epoch=progress.epoch, loss=progress.loss)
                bar.refresh()
            if job.status in JOB_FINISHED:
                return job
            bar.set_description(f"job {job_id} {job.status}")
            time.sleep(0.5)


def cmd_jobs(args: Namespace, backends: Backends) -> int:
    jobs = list_jobs(backends, actor=actor(args), now=now())
    if args.json:
        print(json.dumps([job.summary() for job in jobs], indent=2))
        return 0
    if not jobs:
        print("no jobs yet. Queue one with 'python -m core retrain'.")
    for job in jobs:
        progress = job.training
        where = (f"epoch {progress.epoch}/{progress.epochs}, step {progress.step}/"
                 f"{progress.steps}" if progress.started else "")
        outcome = (f"-> version {job.result_version}" if job.result_version
                   else job.error or where)
        print(f"{job.id:>4}  {job.status:<10} {job.submitted_at}  {job.submitted_by:<10} "
              f"{outcome}")
    return 0


def cmd_cancel(args: Namespace, backends: Backends) -> int:
    job = cancel_job(backends, args.job, actor=actor(args), now=now())
    print(f"job {job.id} cancelled" if job.status == "cancelled" else
          f"job {job.id} will stop at its next training step")
    return 0


def cmd_start(args: Namespace, backends: Backends) -> int:
    job = start_job(backends, args.job, actor=actor(args), now=now())
    print(f"job {job.id} queued; follow it with 'python -m core jobs'")
    return 0
