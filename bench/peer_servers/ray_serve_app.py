"""Ray Serve: a deployment with two replicas, ``@serve.batch`` as its docs recommend; the
body is the image file. ``python -m bench.peer_servers.ray_serve_app --port P``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time

import ray
from ray import serve
from starlette.requests import Request

from bench.peer_servers.model import TFLiteClassifier


@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 1})
class Classifier:
    def __init__(self) -> None:
        self.model = TFLiteClassifier()

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def predict(self, files: list[bytes]) -> list[list[float]]:
        return self.model.probabilities_of_files(files)

    async def __call__(self, request: Request) -> list[float]:
        return await self.predict(await request.body())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    # A cluster of its own, stopped with this process (SIGTERM from the bench), without
    # token auth: ray.init() would otherwise write ~/.ray/auth_token, which later local
    # clusters (the test suite's) pick up.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="ray-"))
    signal.signal(signal.SIGTERM, lambda *_: (serve.shutdown(), ray.shutdown(), sys.exit(0)))
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(Classifier.bind(), route_prefix="/predict")  # type: ignore[attr-defined]
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
