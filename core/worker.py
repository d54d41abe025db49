"""The job worker's entry point: ``python -m core.worker [--registry DIR] [--model-name M]``.

Started by the local job executor (``core.jobs.executor``); runs queued jobs one
after another with the application's job kinds, then exits.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

# The worker's own start-up setting, before TensorFlow is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def now() -> datetime:
    return datetime.now(UTC)


def main(argv: list[str] | None = None) -> int:
    from core.app import build_backends, run_jobs, tracing
    from core.config import load_config
    from core.errors import CoreError

    parser = argparse.ArgumentParser(prog="python -m core.worker",
                                     description="Run queued jobs until none is left.")
    parser.add_argument("--registry", type=Path)
    parser.add_argument("--model-name")
    args = parser.parse_args(argv)
    try:
        config = load_config().with_overrides(registry_dir=args.registry,
                                              model_name=args.model_name)
        tracing.start_tracing(config, "vision-worker")
        ran = run_jobs(build_backends(config), now)
    except CoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{now().isoformat(timespec='seconds')} worker {os.getpid()}: ran {ran} job(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
