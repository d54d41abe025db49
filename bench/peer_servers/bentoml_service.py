"""BentoML 1.4: a service class, an image input, adaptive batching on (its docs' way).
``bentoml serve bench.peer_servers.bentoml_service:Classifier --port P``."""

from __future__ import annotations

import bentoml
from PIL.Image import Image

from bench.peer_servers.model import TFLiteClassifier


@bentoml.service(workers=2, traffic={"concurrency": 64})
class Classifier:
    def __init__(self) -> None:
        self.model = TFLiteClassifier()

    @bentoml.api(batchable=True, max_batch_size=16, max_latency_ms=100)
    def predict(self, images: list[Image]) -> list[list[float]]:
        return self.model.probabilities(images)
