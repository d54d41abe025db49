"""Dynamic batching (``core.serving.batching``) over real sockets: requests sent at once are
predicted in shared batches, and each still gets, and logs, its own answer; one request's
bad input fails only that request."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import httpx2 as httpx
import numpy as np
import pytest

from tests.conftest import fashion_test_images
from tests.serving.clients import api_on_a_copy, b64, listening, png

IMAGES, _ = fashion_test_images(24)
PREDICT = "/v1/models/classifier/versions/1:predict"


@pytest.fixture(scope="module")
def served(trained_registry, tmp_path_factory):
    # Batching on whatever the model's measured gain (a busy machine measures noise), and
    # a long wait: the requests below, sent together, surely meet in batches.
    with api_on_a_copy(trained_registry, tmp_path_factory.mktemp("batching"),
                       batching="on", batch_wait_ms=200) as (config, client, _), \
            listening(client.app) as address:
        yield config, client, f"http://{address}"


def send_together(url: str, bodies: list[dict]) -> list[httpx.Response]:
    def send(index: int) -> httpx.Response:
        with httpx.Client(timeout=30) as client:
            return client.post(f"{url}{PREDICT}", json=bodies[index],
                               headers={"X-Request-ID": f"together-{index}"})

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(send, range(len(bodies))))


def test_concurrent_requests_share_batches_and_each_gets_its_own_answer(served):
    config, client, url = served
    alone = [client.post(PREDICT, json={"instances": [b64(png(image))]}).json()[
        "predictions"][0]["probabilities"] for image in IMAGES]
    session = client.app.state.session
    batches: list[int] = []  # requests per batch the session was asked to predict
    predict_together = session.predict_together

    def counted(model, assignment, requests):
        batches.append(len(requests))
        return predict_together(model, assignment, requests)

    session.predict_together = counted
    try:
        answers = send_together(url, [{"instances": [b64(png(image))]} for image in IMAGES])
    finally:
        del session.predict_together
    assert [a.status_code for a in answers] == [200] * len(IMAGES)
    assert sum(batches) == len(IMAGES) and max(batches) > 1  # some requests shared a batch
    for answer, expected in zip(answers, alone):
        np.testing.assert_allclose(answer.json()["predictions"][0]["probabilities"], expected,
                                   atol=1e-6)
    with closing(sqlite3.connect(config.registry_dir / "registry.db")) as db:
        logged = dict(db.execute("SELECT request_id, predicted FROM predictions WHERE "
                                 "request_id LIKE 'together-%'").fetchall())
    assert logged == {f"together-{i}": int(np.argmax(expected))
                      for i, expected in enumerate(alone)}
    assert "vision_prediction_batch_instances_bucket" in client.get("/metrics").text


def test_one_bad_request_in_a_batch_fails_alone(served):
    _, _, url = served
    good = [{"instances": [b64(png(image))]} for image in IMAGES[:7]]
    wrong_shape = {"instances": [np.zeros((5, 5, 1)).tolist()]}
    answers = send_together(url, [*good[:3], wrong_shape, *good[3:]])
    assert [a.status_code for a in answers] == [200, 200, 200, 400, 200, 200, 200, 200]
    assert "has shape [5, 5, 1]" in answers[3].json()["error"]


def test_an_unknown_batching_mode_is_refused_with_the_fix(config):
    from core.errors import InvalidInput
    from core.serving.api import create_app

    with pytest.raises(InvalidInput, match="BATCHING to one of auto, on, off"):
        create_app(config.with_overrides(batching="sometimes"))
