"""Pages through Streamlit's AppTest: no browser, real core underneath."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from core.images import encode_png
from tests.conftest import PROJECT_ROOT, fashion_test_images

pytestmark = pytest.mark.slow

APP = str(PROJECT_ROOT / "dashboard" / "app.py")


def start(monkeypatch, registry):
    monkeypatch.setenv("MODEL_REGISTRY_DIR", str(registry))
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    assert not app.exception, app.exception
    return app


def upload(app, name, data, mime="image/png"):
    app.file_uploader[0].set_value((name, data, mime))
    app.run()
    assert not app.exception, app.exception


def test_predict_page_shows_label_probabilities_and_heatmap(monkeypatch, registry_copy,
                                                           tmp_path):
    trained_registry = registry_copy.registry_dir
    app = start(monkeypatch, trained_registry)
    assert app.title[0].value == "Predict"
    assert app.selectbox[0].value == 1  # the champion answers by default
    image = encode_png(fashion_test_images(1)[0][0])
    upload(app, "boot.png", image)
    assert not app.error
    # The label shown is the one the CLI gives for the same file.
    path = tmp_path / "boot.png"
    path.write_bytes(image)
    from tests.test_cli import run_cli
    cli_label = json.loads(run_cli(trained_registry, "predict", str(path), "--json").stdout)[0]["label"]
    assert app.subheader[0].value.startswith(cli_label + " · ")
    assert "Answered by version 1" in app.caption[1].value
    assert len(app.get("plotly_chart")) == 1
    assert len(app.get("image")) == 2  # the upload and the Grad-CAM overlay
    # Reruns (any widget change) show the same answer without predicting again.
    from core.lifecycle import open_prediction_log
    log = open_prediction_log(registry_copy)
    logged = log.count("classifier")
    app.toggle[0].set_value(False).run()
    app.run()
    assert log.count("classifier") == logged
    assert log.window("classifier", 1).sources.count("upload") == 1


def test_predict_page_explains_bad_uploads(monkeypatch, trained_registry):
    app = start(monkeypatch, trained_registry)
    upload(app, "fake.png", b"<html>not an image</html>")
    assert len(app.error) == 1
    assert "not an image" in app.error[0].value and "To fix this" in app.error[0].value
    assert not app.get("plotly_chart")


def test_pages_without_a_model_say_how_to_train_one(monkeypatch, tmp_path):
    app = start(monkeypatch, tmp_path / "empty")
    assert "python -m core bootstrap" in app.info[0].value
    app.switch_page("views/versions.py").run()
    assert "python -m core bootstrap" in app.info[0].value
    assert not (tmp_path / "empty").exists()


def test_versions_page_lists_versions_and_details(monkeypatch, trained_registry):
    app = start(monkeypatch, trained_registry)
    app.switch_page("views/versions.py").run()
    assert not app.exception
    assert app.title[0].value == "Versions"
    table = app.dataframe[0].value
    assert list(table["version"]) == [1] and list(table["status"]) == ["champion"]
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Status"] == "champion"
    assert 0.6 < float(metrics["Test accuracy"]) <= 1
    assert len(app.get("plotly_chart")) == 3  # confusion matrix, per-class bars, history
    app.radio[0].set_value("validation").run()
    assert not app.exception


def test_drift_page_simulates_and_shows_the_alert(monkeypatch, registry_copy):
    app = start(monkeypatch, registry_copy.registry_dir)
    app.switch_page("views/drift.py").run()
    assert not app.exception
    assert "holds 0 prediction(s)" in app.info[0].value  # nothing logged yet: says what to do
    scenario = next(s for s in app.selectbox if s.label == "Scenario")
    scenario.set_value("invert").run()
    app.button[0].click().run()
    assert not app.exception
    assert "Logged 500 predictions of version 1 (invert" in app.success[0].value
    assert app.error and "Drift alert" in app.error[0].value
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Predictions in window"] == "500"
    assert len(app.get("plotly_chart")) >= 4  # histograms, class mix, embeddings


def test_retrain_page_queues_a_job_that_can_be_cancelled(monkeypatch, registry_copy):
    from core.jobs import LocalProcessRunner
    from tests.core.test_jobs import now, wait_for

    app = start(monkeypatch, registry_copy.registry_dir)
    app.switch_page("views/retrain.py").run()
    assert not app.exception
    assert "No retraining jobs yet" in app.info[0].value
    app.number_input[0].set_value(30)  # epochs: long enough to cancel
    app.button[0].click().run()
    assert not app.exception
    assert "Queued job 1" in app.success[0].value
    cancel = next(b for b in app.button if b.label == "Cancel job 1")
    cancel.click().run()
    runner = LocalProcessRunner(registry_copy)
    job = wait_for(runner, 1, lambda j: j.status in ("cancelled", "failed", "succeeded"),
                   timeout=90)
    assert job.status == "cancelled"
    assert job.submitted_by == "dashboard"


def test_feedback_from_the_predict_page(monkeypatch, registry_copy):
    from core.lifecycle import open_prediction_log

    app = start(monkeypatch, registry_copy.registry_dir)
    upload(app, "boot.png", encode_png(fashion_test_images(1)[0][0]))
    chooser = next(s for s in app.selectbox if s.label == "The right class")
    chooser.set_value("Sandal")  # a form: the value and the submit go in one run
    app.button[0].click().run()
    assert not app.exception
    assert any("the right class is Sandal" in s.value for s in app.success)
    _, labels, sources = open_prediction_log(registry_copy).labelled_images("classifier",
                                                                          ("upload",))
    assert labels.tolist() == [5] and sources == ["upload"]


@pytest.mark.parametrize("url, blocked", [
    ("http://localhost:8501/", False), ("http://127.0.0.1:8501/", False),
    ("https://192.168.1.20:8501/", False), ("http://192.168.1.20:8501/", True),
    ("http://my-laptop.local:8501/predict", True), (None, False),
])
def test_camera_needs_a_secure_origin(url, blocked):
    from dashboard.state import camera_blocked_reason

    reason = camera_blocked_reason(url)
    assert (reason is not None) == blocked
    if blocked:
        assert "HTTPS" in reason and "make https" in reason
