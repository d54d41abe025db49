"""The Open Inference Protocol (V2) through its real client, ``tritonclient[http]``, against
the API served by uvicorn in this process: health, metadata, readiness, inference in JSON
and in Triton's binary extension, routing like ``:predict``, and the protocol's errors."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from core.app import set_traffic
from core.ml.data import FASHION_MNIST_CLASSES
from tests.conftest import FIXED_NOW, backends_of, fashion_test_images
from tests.serving.clients import api_on_a_copy, b64, listening, png

IMAGES, LABELS = fashion_test_images(6)
MODEL = "classifier"


@pytest.fixture(scope="module")
def served(candidate_registry, tmp_path_factory):
    """A copy of the candidate registry (v1 champion, v2 candidate) behind uvicorn on a free
    port: (config, TestClient, session, tritonclient)."""
    with api_on_a_copy(candidate_registry, tmp_path_factory.mktemp("v2")) as (
            config, client, session), listening(client.app) as address:
        triton_client = triton.InferenceServerClient(address)
        try:
            yield config, client, session, triton_client
        finally:
            triton_client.close()


def rows(config, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(config.registry_dir / "registry.db")) as db:
        return db.execute(sql).fetchall()


def floats(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255


def image_input(images: np.ndarray, *, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(floats(images), binary_data=binary)
    return tensor


def file_input(images: np.ndarray) -> triton.InferInput:
    tensor = triton.InferInput("image", [len(images)], "BYTES")
    tensor.set_data_from_numpy(np.array([png(i) for i in images], dtype=object))
    return tensor


def tf_serving_probabilities(client, images: np.ndarray, version: int) -> np.ndarray:
    reply = client.post(f"/v1/models/{MODEL}/versions/{version}:predict",
                        json={"instances": [b64(png(i)) for i in images]})
    return np.array([p["probabilities"] for p in reply.json()["predictions"]])


def test_health_server_and_model_metadata_and_readiness(served):
    _, _, _, client = served
    assert client.is_server_live() and client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "2")
    assert not client.is_model_ready(MODEL, "9") and not client.is_model_ready("nobody")
    metadata = client.get_model_metadata(MODEL)
    assert metadata["versions"] == ["1", "2"] and metadata["parameters"]["version"] == "1"
    assert metadata["inputs"] == [{"name": "image", "datatype": "FP32",
                                   "shape": [-1, 28, 28, 1]}]
    outputs = {o["name"]: (o["datatype"], o["shape"]) for o in metadata["outputs"]}
    assert outputs["probabilities"] == ("FP32", [-1, 10]) and outputs["label"] == (
        "BYTES", [-1])
    assert len(metadata["parameters"]["class_names"]) == 10
    assert client.get_model_metadata(MODEL, "2")["versions"] == ["2"]


@pytest.mark.parametrize("how", ["json", "binary", "image-files"])
def test_infer_answers_like_tf_servings_predict_and_is_logged(served, how):
    config, http, _, client = served
    images = IMAGES[:3]
    given = file_input(images) if how == "image-files" else image_input(
        images, binary=how == "binary")
    asked = [triton.InferRequestedOutput(name, binary_data=how != "json")
             for name in ("probabilities", "label", "ood_score")]
    result = client.infer(MODEL, [given], outputs=asked, request_id=f"oip-{how}",
                          headers={"X-Request-ID": f"v2-{how}"})
    reply = result.get_response()
    assert reply["model_name"] == MODEL and reply["model_version"] == "1"
    assert reply["id"] == f"oip-{how}"
    assert [o["name"] for o in reply["outputs"]] == ["probabilities", "label", "ood_score"]
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities, tf_serving_probabilities(http, images, 1),
                               atol=1e-5)
    labels = [label if isinstance(label, str) else label.decode()  # JSON: str; binary: bytes
              for label in result.as_numpy("label")]
    assert labels == [FASHION_MNIST_CLASSES[i] for i in probabilities.argmax(1)]
    assert result.as_numpy("ood_score").shape == (3,)
    assert rows(config, f"SELECT COUNT(*), MIN(version), MIN(source) FROM predictions "
                        f"WHERE request_id = 'v2-{how}'") == [(3, 1, "api")]


def test_all_outputs_by_default_and_a_version_path_answers_with_that_version(served):
    _, _, _, client = served
    result = client.infer(MODEL, [image_input(IMAGES[:1], binary=True)], model_version="2")
    assert result.get_response()["model_version"] == "2"
    assert {o["name"] for o in result.get_response()["outputs"]} == {
        "probabilities", "label", "embedding", "ood_score", "unfamiliar"}
    assert result.as_numpy("unfamiliar").dtype == np.bool_
    assert result.as_numpy("embedding").shape[0] == 1


def test_shadow_routing_answers_with_the_champion_and_logs_both(served):
    config, _, session, client = served
    backends = backends_of(config)
    set_traffic(backends, actor="rita", mode="shadow", candidate=2, percent=None,
                reason="v2 in the shadow", now=FIXED_NOW)
    session.refresh()
    try:
        result = client.infer(MODEL, [file_input(IMAGES[4:5])],
                              headers={"X-Request-ID": "v2-shadowed"})
    finally:
        set_traffic(backends, actor="rita", mode="off", candidate=None, percent=None,
                    reason="done", now=FIXED_NOW)
        session.refresh()
    assert result.get_response()["model_version"] == "1"
    assert result.get_response()["parameters"]["variant"] == "champion"
    assert rows(config, "SELECT version, variant FROM predictions WHERE request_id = "
                        "'v2-shadowed' ORDER BY version") == [(1, "champion"), (2, "shadow")]


def raised(call) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value


def test_errors_come_in_the_protocols_shape_with_a_4xx(served):
    config, http, _, client = served
    wrong_shape = triton.InferInput("image", [1, 28, 28], "FP32")
    wrong_shape.set_data_from_numpy(floats(IMAGES[:1])[..., 0], binary_data=False)
    unknown = raised(lambda: client.infer("nobody", [image_input(IMAGES[:1], binary=False)]))
    assert unknown.status() == "404" and "no model 'nobody'" in unknown.message()
    shape = raised(lambda: client.infer(MODEL, [wrong_shape]))
    assert shape.status() == "400" and "[N, height, width, channels]" in shape.message()
    ints = triton.InferInput("image", [1, 28, 28, 1], "INT32")
    ints.set_data_from_numpy(IMAGES[:1].astype(np.int32))
    assert "unsupported datatype 'INT32'" in raised(lambda: client.infer(MODEL, [ints])).message()
    not_image = triton.InferInput("image", [1], "BYTES")
    not_image.set_data_from_numpy(np.array([b"not an image"], dtype=object))
    assert raised(lambda: client.infer(MODEL, [not_image])).status() == "400"
    output = raised(lambda: client.infer(MODEL, [image_input(IMAGES[:1], binary=False)],
                                         outputs=[triton.InferRequestedOutput("logits")]))
    assert "unknown output(s) ['logits']" in output.message()
    top3 = raised(lambda: client.infer(MODEL, [image_input(IMAGES[:1], binary=False)], outputs=[
        triton.InferRequestedOutput("probabilities", class_count=3)]))
    assert "classification extension is not offered" in top3.message()
    empties = b"\0" * 4 * 1_000_000  # a million empty BYTES elements for a shape of [1]
    header = b'{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], ' \
        b'"parameters": {"binary_data_size": 4000000}}]}'
    many = http.post(f"/v2/models/{MODEL}/infer", content=header + empties,
                     headers={"Inference-Header-Content-Length": str(len(header))})
    assert many.status_code == 400 and "holds 1 image files, but 2 were sent" in \
        many.json()["error"]
    before = rows(config, "SELECT COUNT(*) FROM predictions")
    for body, headers in [(b"{nope", {}), (b"[]", {}),
                          (b'{"inputs": []}', {}),
                          (b'{"inputs": [{"name": "image"}]}', {"Inference-Header-Content-"
                                                                 "Length": "999"})]:
        reply = http.post(f"/v2/models/{MODEL}/infer", content=body, headers=headers)
        assert reply.status_code == 400 and set(reply.json()) == {"error"}
        assert "To fix this" in reply.json()["error"]
    assert rows(config, "SELECT COUNT(*) FROM predictions") == before

