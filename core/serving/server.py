"""``python -m core serve``: uvicorn running ``create_app`` in one or more worker processes."""

from __future__ import annotations

import os
import shutil
import tempfile

from core.config import Config


def serve(config: Config, *, host: str, port: int, workers: int,
          certfile: str | None = None, keyfile: str | None = None) -> None:
    """Runs the API until interrupted. Each worker builds its own ServingSession."""
    import uvicorn

    from core.errors import InvalidInput

    if workers < 1:
        raise InvalidInput(f"--workers {workers} is not a number of processes. To fix this, "
                           "give 1 or more (about one per CPU core).")
    created = None
    if workers > 1 and config.metrics_dir is None:
        # Several processes: /metrics must add up all of them (prometheus_client's
        # multiprocess mode). The folder must be set before the workers start and
        # emptied between runs, so each run gets a fresh one.
        created = tempfile.mkdtemp(prefix="vision-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = created
    # The workers read their configuration from the environment, like every command.
    os.environ["MODEL_REGISTRY_DIR"] = str(config.registry_dir)
    os.environ["MODEL_NAME"] = config.model_name
    try:
        uvicorn.run("core.serving.api:create_app", factory=True, host=host, port=port,
                    workers=workers, log_level="warning", access_log=False,
                    ssl_certfile=certfile, ssl_keyfile=keyfile)
    finally:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
