"""Registering a model trained elsewhere: the notebook's nested MobileNetV2 (.keras,
pixels in [-1, 1]), a CNN with a Rescaling layer that takes 0-255 and outputs logits
(.keras and .h5); each answers through the product as the original Keras model does.
Refusals change nothing."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.app import (
    RetrainRequest,
    build_backends,
    explain_image,
    explain_side_by_side,
    model_card,
    predict_image,
    retrain,
    submit_retrain,
    top_losses,
    unpack_saved_model,
)
from core.app import register as register_module
from core.config import load_config
from core.errors import InvalidInput, NotAvailable
from core.ml.images import InputSpec, decode_image, resize_to_spec
from core.serving.api import create_app
from tests import imported_models
from tests.cli_runner import run_cli, snapshot
from tests.conftest import TEST_ENVIRONMENT, add_users
from tests.serving.clients import b64

pytestmark = pytest.mark.slow
MIN_AGREEMENT = 0.999


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The photo folder and the models trained on it, once for the module."""
    root = tmp_path_factory.mktemp("imported")
    folder = imported_models.colour_folder(root / "photos")
    return {"folder": folder,
            "mobilenet": imported_models.mobilenet(folder, root / "mobilenet.keras"),
            "rescaling": imported_models.rescaling(folder, root / "rescaling.keras"),
            "h5": root / "rescaling.h5",  # the same model, saved in the legacy format
            "saved_model": imported_models.saved_model(root / "rescaling.keras",
                                                       root / "exported" / "1"),
            "lambda": imported_models.with_lambda(root / "lambda.keras"),
            "not_an_image": imported_models.not_an_image(root / "vector.keras")}


@pytest.fixture
def empty_registry(tmp_path):
    """A registry with the usual users and no model yet."""
    config = load_config(TEST_ENVIRONMENT).with_overrides(registry_dir=tmp_path / "registry")
    add_users(config)
    return config


def register(config, path, *args):
    return run_cli(config.registry_dir, "register", str(path), "--actor", "olga",
                   "--reason", "the team's model", *args)


def registered_first(result, outputs: str) -> None:
    """``register --json`` made version 1, the champion, with ``outputs`` and a serving
    conversion that agrees with the model."""
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["version"], summary["status"], summary["outputs"]) == (1, "champion",
                                                                            outputs)
    assert summary["serving_agreement"] >= MIN_AGREEMENT


def drift_alert_fires(config) -> list[str]:
    """Inverted photos streamed through the champion, then a monitor pass: the subjects
    of the open drift alerts."""
    registry = config.registry_dir
    simulated = run_cli(registry, "simulate", "--scenario", "invert", "--n", "300",
                        "--actor", "olga")
    assert simulated.returncode == 0, simulated.stderr
    assert run_cli(registry, "monitor", "run", "--once").returncode == 0
    alerts = json.loads(run_cli(registry, "alerts", "list", "--json").stdout)
    return [a["subject"] for a in alerts if a["rule"] == "drift" and a["open"]]


def photos(folder):
    return sorted(folder.rglob("*.png"))


def original_labels(path, files, value_range):
    """What the original Keras model says of each file, from the same pixels the product
    feeds (decoded, resized to its input), scaled to the range it was trained on."""
    import keras

    model = keras.saving.load_model(path, compile=False)
    spec = InputSpec(imported_models.SIZE, imported_models.SIZE, 3)
    pixels = np.stack([resize_to_spec(decode_image(f.read_bytes(), max_bytes=1 << 24,
                                                   max_pixels=1 << 24).pixels, spec)
                       for f in files])
    low, high = value_range
    scores = model.predict(pixels.astype(np.float32) / 255.0 * (high - low) + low, verbose=0)
    return [imported_models.CLASSES[i] for i in scores.argmax(axis=1)]


def test_the_notebooks_nested_mobilenet_answers_as_the_original(made, empty_registry):
    registered_first(register(empty_registry, made["mobilenet"], "--dataset",
                              f"folder:{made['folder']}", "--input-range", "-1,1", "--json"),
                     "probabilities")
    backends = build_backends(empty_registry)
    version = backends.registry.get_version(1)
    assert version.metadata.class_names == list(imported_models.CLASSES)
    assert version.metadata.source["sha256"].startswith("sha256:")
    assert version.metadata.source["input_range"] == "-1,1"
    assert version.metadata.serving_runtime == "tflite"
    (entry,) = [e for e in backends.audit_log.read_entries() if e.action == "register"]
    assert (entry.actor, entry.reason) == ("olga", "the team's model")
    assert entry.details["source"]["file"] == "mobilenet.keras"

    # Every photo through the product's path (the CLI's), against the original model.
    files = photos(made["folder"])[::4]  # 30 photos, 10 of each class
    expected = original_labels(made["mobilenet"], files, (-1.0, 1.0))
    answered = json.loads(run_cli(empty_registry.registry_dir, "predict", *map(str, files[:5]),
                                  "--json").stdout)
    assert [a["label"] for a in answered] == expected[:5]
    now = datetime.now(UTC)
    labels = [predict_image(backends, f.read_bytes(), actor="olga", source="cli",
                            now=now)[0].label for f in files]
    assert np.mean(np.asarray(labels) == np.asarray(expected)) >= MIN_AGREEMENT
    # And through the API (TF Serving's protocol, the files as sent).
    with TestClient(create_app(empty_registry)) as client:
        reply = client.post("/v1/models/classifier:predict",
                            json={"instances": [b64(f.read_bytes()) for f in files]})
    assert reply.status_code == 200, reply.text
    served = [imported_models.CLASSES[int(np.argmax(p["probabilities"]))]
              for p in reply.json()["predictions"]]
    assert np.mean(np.asarray(served) == np.asarray(expected)) >= MIN_AGREEMENT
    # Grad-CAM through the nested backbone.
    explanation = explain_image(backends, files[0].read_bytes(), actor="olga", source="cli",
                                now=now)
    assert explanation.heatmap.shape == (imported_models.SIZE, imported_models.SIZE)
    assert explanation.heatmap.max() > 0


def test_a_later_model_is_a_candidate_compared_by_the_gate(made, empty_registry):
    dataset = f"folder:{made['folder']}"
    assert register(empty_registry, made["rescaling"], "--dataset", dataset,
                    "--input-range", "0,255").returncode == 0
    result = register(empty_registry, made["h5"], "--dataset", dataset, "--input-range",
                      "0,255", "--outputs", "logits", "--embedding-layer", "features", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["version"], summary["status"]) == (2, "candidate")
    assert summary["outputs"] == "logits" and summary["recommendation"] in (
        "promote", "review", "reject")
    backends = build_backends(empty_registry)
    assert backends.registry.get_champion().version == 1  # never promoted by registering
    assert backends.registry.get_version(2).metadata.architecture == "imported (h5)"
    files = photos(made["folder"])[::4]
    expected = original_labels(made["h5"], files, (0.0, 255.0))
    now = datetime.now(UTC)
    labels = [predict_image(backends, f.read_bytes(), actor="olga", source="cli", now=now,
                            version=2)[0].label for f in files]
    assert np.mean(np.asarray(labels) == np.asarray(expected)) >= MIN_AGREEMENT
    # Retraining fine-tunes the imported champion like any other; its card says where
    # it came from.
    candidate, comparison = retrain(backends, RetrainRequest(include=(), epochs=1,
                                                             original_images=100),
                                    actor="olga", now=now)
    assert (candidate.version, candidate.parent, candidate.status) == (3, 1, "candidate")
    assert candidate.metadata.hyperparameters["frozen"] == []  # no nested backbone
    assert comparison.recommendation in ("promote", "review", "reject")
    card = model_card(backends, 1, actor="vic", now=now).render("md")
    assert "| registered from | rescaling.keras (keras, Keras 3." in card
    assert backends.registry.get_version(1).metadata.source["sha256"] in card


def test_a_saved_model_is_served_compared_and_governed_without_layers(made, empty_registry,
                                                                      tmp_path):
    """TF Serving's folder: answers as the original through the CLI and the API; what
    needs layers (heatmaps, OOD scores, retraining) says "not available", never fails."""
    dataset = f"folder:{made['folder']}"
    # As the dashboard receives it: the exported folder ("1/") zipped.
    archive = shutil.make_archive(str(tmp_path / "shapes"), "zip",
                                  made["saved_model"].parent)
    folder = unpack_saved_model(Path(archive).read_bytes(), "shapes.zip", tmp_path / "up")
    assert folder == tmp_path / "up" / "shapes" and (folder / "saved_model.pb").is_file()
    registered_first(register(empty_registry, folder, "--dataset", dataset, "--input-range",
                              "0,255", "--json"), "logits")
    backends = build_backends(empty_registry)
    meta = backends.registry.get_version(1).metadata
    assert not meta.has_layers and meta.architecture == "imported (saved_model)"
    assert meta.source["tensorflow_version"] and meta.source["sha256"].startswith("sha256:")
    files = photos(made["folder"])[::4]
    expected = original_labels(made["rescaling"], files, (0.0, 255.0))
    answered = json.loads(run_cli(empty_registry.registry_dir, "predict", *map(str, files),
                                  "--json").stdout)
    assert np.mean(np.asarray([a["label"] for a in answered]) == expected) >= MIN_AGREEMENT
    assert {a["ood_score"] for a in answered} == {None}  # no OOD score from class scores
    now = datetime.now(UTC)
    with TestClient(create_app(empty_registry)) as client:
        reply = client.post("/v1/models/classifier:predict",
                            json={"instances": [b64(f.read_bytes()) for f in files]})
        served = [imported_models.CLASSES[int(np.argmax(p["probabilities"]))]
                  for p in reply.json()["predictions"]]
        assert np.mean(np.asarray(served) == np.asarray(expected)) >= MIN_AGREEMENT
        logged = backends.prediction_log.count("classifier")
        refused = client.post("/v1/explain", files={"file": ("a.png", files[0].read_bytes(),
                                                             "image/png")})
        assert refused.status_code == 409
        assert "not available for this model format" in refused.json()["error"]
    assert backends.prediction_log.count("classifier") == logged  # refused before logging
    cli = run_cli(empty_registry.registry_dir, "explain", str(files[0]), "--out",
                  str(made["folder"].parent / "heat.png"))
    assert cli.returncode == 1 and "not available for this model format" in cli.stderr
    page = explain_image(backends, files[0].read_bytes(), actor="olga", source="cli", now=now)
    assert page.heatmap is None and page.prediction.label == expected[0]
    assert not top_losses(backends, 1, actor="olga", now=now).heatmaps
    with pytest.raises(NotAvailable, match="retraining is not available"):
        submit_retrain(backends, RetrainRequest(), actor="olga", now=now)

    # Its outputs are what drift watches; the .keras file is a candidate the gate compares.
    assert drift_alert_fires(empty_registry) == ["version 1"]
    assert register(empty_registry, made["rescaling"], "--dataset", dataset,
                    "--input-range", "0,255").returncode == 0
    backends = build_backends(empty_registry)
    comparison = backends.registry.find_comparison(1, 2)
    assert comparison is not None and comparison.recommendation in ("promote", "review",
                                                                     "reject")
    (sample, *_) = explain_side_by_side(backends, [1, 2], actor="olga", now=now)
    assert sample.no_heatmaps == {1} and set(sample.predicted) == {1, 2}
    card = model_card(backends, 1, actor="vic", now=now).render("md")
    assert "saved_model" in card


def test_a_model_its_conversion_changes_is_served_by_tensorflow(made, empty_registry,
                                                                monkeypatch):
    """Below the agreement bar (forced here: no conversion agrees on more than 100 %), the
    version is registered and served from its SavedModel, and says so."""
    monkeypatch.setattr(register_module, "MIN_SERVING_AGREEMENT", 1.01)
    result = register(empty_registry, made["rescaling"], "--dataset",
                      f"folder:{made['folder']}", "--input-range", "0,255")
    assert result.returncode == 0, result.stderr
    assert "served from its SavedModel by TensorFlow" in result.stdout
    backends = build_backends(empty_registry)
    version = backends.registry.get_version(1)
    assert version.metadata.serving_runtime == "tensorflow"
    assert backends.models.predictor(version).runtime == "tensorflow"
    files = photos(made["folder"])[::4]
    expected = original_labels(made["rescaling"], files, (0.0, 255.0))
    now = datetime.now(UTC)
    labels = [predict_image(backends, f.read_bytes(), actor="olga", source="cli",
                            now=now)[0].label for f in files]
    assert np.mean(np.asarray(labels) == np.asarray(expected)) >= MIN_AGREEMENT
    card = model_card(backends, 1, actor="vic", now=now).render("md")
    assert "| served by | TensorFlow, from the SavedModel" in card


def test_a_saved_model_that_touches_files_is_refused_before_it_runs(empty_registry, tmp_path):
    """A graph is not code, but it runs what its author put in it: a signature that
    writes a file is refused by its operations' names, never called."""
    import tensorflow as tf

    target = tmp_path / "written.txt"

    class Writes(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
        def serve(self, x):
            tf.io.write_file(str(target), "pwned")
            return {"scores": tf.nn.softmax(tf.reduce_mean(x, axis=[1, 2]))}

    module = Writes()
    tf.saved_model.save(module, str(tmp_path / "writes"),
                        signatures={"serving_default": module.serve})
    before = snapshot(empty_registry.registry_dir)
    result = register(empty_registry, tmp_path / "writes", "--dataset", "fashion_mnist")
    assert result.returncode == 1 and "runs WriteFile" in result.stderr, result.stderr
    assert not target.exists() and snapshot(empty_registry.registry_dir) == before


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("data, message", [
    (b"not a zip", "is not a readable zip file"),
    (zipped({"model/variables/x": b"1"}), "holds 0 saved_model.pb files"),
    (zipped({"a/saved_model.pb": b"1", "b/saved_model.pb": b"2"}), "holds 2 saved_model.pb files"),
    (zipped({"saved_model.pb": b"1", "../outside.txt": b"2"}), "would land outside"),
    (zipped({"saved_model.pb": b"1", "variables/big": bytes(4096)}), "unpacks to over"),
    (zipped({"saved_model.pb": b"1"} | {f"x/{i}": b"" for i in range(12)}), "holds 13 entries"),
], ids=["not a zip", "no SavedModel", "two SavedModels", "an entry outside", "a zip bomb",
        "too many entries"])
def test_a_zipped_saved_model_is_refused_when_it_is_not_one_safe_folder(
        tmp_path, monkeypatch, data, message):
    monkeypatch.setattr(register_module, "MAX_UNPACKED_BYTES", 1024)
    monkeypatch.setattr(register_module, "MAX_ZIP_ENTRIES", 12)
    with pytest.raises(InvalidInput, match=message):
        unpack_saved_model(data, "model.zip", tmp_path / "up")
    assert not (tmp_path / "outside.txt").exists()


@pytest.mark.parametrize("model, args, message", [
    ("mobilenet", ["--labels", "two_labels.txt"], "outputs 3 class scores but 2 labels"),
    ("lambda", [], "could not be loaded in Keras' safe mode"),
    ("mobilenet", ["--input-range", "0,100"], "unknown input range '0,100'"),
    ("not_an_image", [], "not an image of a fixed size"),
    ("rescaling", ["--outputs", "probabilities"], "outputs logits"),
    ("rescaling", ["--embedding-layer", "conv"], "has no layer 'conv'"),
])
def test_refusals_name_the_problem_and_change_nothing(made, empty_registry, tmp_path, model,
                                                      args, message):
    (tmp_path / "two_labels.txt").write_text("circle\nsquare\n")
    args = [str(tmp_path / a) if a.endswith(".txt") else a for a in args]
    before = snapshot(empty_registry.registry_dir)
    result = register(empty_registry, made[model], "--dataset", f"folder:{made['folder']}",
                      *args)
    assert result.returncode == 1
    assert message in result.stderr and "To fix this" in result.stderr, result.stderr
    assert snapshot(empty_registry.registry_dir) == before


def test_labels_are_the_outputs_names_in_order(made, empty_registry, tmp_path):
    """The same model registered twice (two models in one registry), once with its labels
    in output order, once reversed: the product names each output as told, so the
    reversed one calls circles "stripes" and measures a low accuracy, as it should."""
    for name, order in (("right", imported_models.CLASSES),
                        ("reversed", imported_models.CLASSES[::-1])):
        (tmp_path / f"{name}.txt").write_text("\n".join(order) + "\n")
        result = run_cli(empty_registry.registry_dir, "--model-name", name, "register",
                         str(made["rescaling"]), "--actor", "olga", "--reason", "order",
                         "--dataset", f"folder:{made['folder']}", "--input-range", "0,255",
                         "--labels", str(tmp_path / f"{name}.txt"), "--json")
        assert result.returncode == 0, result.stderr
    listed = json.loads(run_cli(empty_registry.registry_dir, "versions", "--all-models",
                                "--json").stdout)
    assert [(v["model"], v["version"]) for v in listed] == [("reversed", 1), ("right", 1)]
    accuracy = {}
    for name in ("right", "reversed"):
        backends = build_backends(empty_registry.with_overrides(model_name=name))
        accuracy[name] = backends.registry.get_version(1).metadata.metric("test", "accuracy")
    assert accuracy["right"] >= accuracy["reversed"] + 0.3
    circles = photos(made["folder"] / "circle")
    known = original_labels(made["rescaling"], circles, (0.0, 255.0)).index("circle")
    circle = circles[known].read_bytes()  # a circle the model itself gets right
    said = {name: predict_image(build_backends(empty_registry.with_overrides(model_name=name)),
                                circle, actor="olga", source="cli",
                                now=datetime.now(UTC))[0].label
            for name in ("right", "reversed")}
    assert said == {"right": "circle", "reversed": "stripes"}

    # One API process serves both, each with its own champion, classes, rows and metrics.
    with TestClient(create_app(empty_registry.with_overrides(model_name="right"))) as client:
        listed = client.get("/v1/models").json()["models"]
        assert [(m["name"], m["champion"]) for m in listed] == [("reversed", 1), ("right", 1)]
        for name, expected in said.items():
            reply = client.post(f"/v1/models/{name}:predict", json={"instances": [b64(circle)]})
            classes = client.get(f"/v1/models/{name}/metadata").json()["metadata"][
                "signature_def"]["class_names"]
            probabilities = reply.json()["predictions"][0]["probabilities"]
            assert classes[int(np.argmax(probabilities))] == expected
            plain = client.post("/v1/predict", params={"model": name},
                                files={"file": ("circle.png", circle, "image/png")}).json()
            assert plain["label"] == expected
        default = client.post("/v1/predict", files={"file": ("c.png", circle, "image/png")})
        assert default.json()["label"] == "circle"  # MODEL_NAME's
        unknown = client.post("/v1/models/shoes:predict", json={"instances": [b64(circle)]})
        assert unknown.status_code == 404
        assert "use one of: reversed, right" in unknown.json()["error"]
        metrics = client.get("/metrics").text
    assert 'vision_predictions_total{class_name="stripes",model="reversed"' in metrics
    for name, count in (("right", 4), ("reversed", 3)):
        log = build_backends(empty_registry.with_overrides(model_name=name)).prediction_log
        assert log.count(name) == count  # the CLI's one, then the API's (right: and the default)
    # One monitor covers every model: a pass each.
    once = run_cli(empty_registry.registry_dir, "monitor", "run", "--once")
    assert once.returncode == 0, once.stderr
    assert [line.split()[1] for line in once.stdout.splitlines()] == [
        "classifier:", "reversed:", "right:"]
