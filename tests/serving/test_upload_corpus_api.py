"""The awkward-upload corpus through the API: /v1/predict and TF Serving's :predict with
the file as a b64 instance. Each gets an answer or a 4xx naming the fix, never a 5xx,
and the server stays healthy."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from core.config import load_config
from core.serving.api import create_app
from tests import upload_corpus
from tests.conftest import copy_registry

pytestmark = pytest.mark.slow
CASES = upload_corpus.build(upload_corpus.fashion_base())


@pytest.fixture(scope="module")
def client(trained_registry, tmp_path_factory):
    root = tmp_path_factory.mktemp("api-corpus") / "registry"
    copy_registry(trained_registry, root)
    with TestClient(create_app(load_config({}).with_overrides(registry_dir=root))) as client:
        yield client


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_upload_gets_an_answer_or_a_clear_4xx(client, case):
    plain = client.post("/v1/predict", files={"file": (case.filename, case.data)})
    tf_serving = client.post("/v1/models/classifier:predict", json={
        "instances": [{"b64": base64.b64encode(case.data).decode()}]})
    for reply in (plain, tf_serving):
        if case.expect == "error":
            assert 400 <= reply.status_code < 500, reply.text
            message = reply.json()["error"]
            assert "To fix this" in message and "\n" not in message
            if reply.status_code != 413:  # over the body limit: refused before reading
                assert case.message in message
        else:
            assert reply.status_code == 200, reply.text
    if case.expect != "error":
        assert plain.json()["label"] in plain.json()["probabilities"]
        assert len(tf_serving.json()["predictions"]) == 1
    assert client.get("/healthz").status_code == 200
