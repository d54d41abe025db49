"""Pages through Streamlit's AppTest: no browser, real core underneath."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from core.app import predict_image
from core.app.vocabulary import EXPORT_FORMATS, NONE_OF_THESE_CLASSES
from core.ml.images import encode_png
from dashboard.state import SIGNED_IN
from tests.conftest import (
    FIXED_NOW,
    PASSWORD,
    PROJECT_ROOT,
    backends_of,
    fashion_test_images,
    salt_noise,
)

pytestmark = pytest.mark.slow

APP = str(PROJECT_ROOT / "dashboard" / "app.py")


def start(monkeypatch, registry, user=None):
    """The app on ``registry``; ``user`` starts signed in (sign-in itself is tested below)."""
    monkeypatch.setenv("MODEL_REGISTRY_DIR", str(registry))
    app = AppTest.from_file(APP, default_timeout=120)
    if user is not None:
        app.session_state[SIGNED_IN] = user
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
    from tests.cli_runner import run_cli
    cli_label = json.loads(run_cli(trained_registry, "predict", str(path), "--json").stdout)[0]["label"]
    assert app.subheader[0].value.startswith(cli_label + " · ")
    assert "Answered by version 1" in app.caption[1].value
    assert len(app.get("plotly_chart")) == 1
    assert len(app.get("image")) == 2  # the upload and the Grad-CAM overlay
    # Reruns (any widget change) show the same answer without predicting again.
    log = backends_of(registry_copy).prediction_log
    logged = log.count("classifier")
    app.toggle[0].set_value(False).run()
    app.run()
    assert log.count("classifier") == logged
    assert log.window("classifier", 1).sources.count("upload") == 1
    # The caption names the logged row, so an operator can find this prediction again.
    window = log.window("classifier", 1)
    upload_id = window.ids[window.sources.index("upload")]
    assert f"logged as prediction #{upload_id})" in app.caption[1].value


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
    downloads = [element.proto.label for element in app.get("download_button")]
    assert downloads == ["Model card (HTML)", "Model card (Markdown)"]
    app.radio[0].set_value("validation").run()
    assert not app.exception
    # The exports are not built; a viewer may not build them.
    assert any("not built yet" in i.value for i in app.info)
    assert button(app, "Build the exports").disabled
    assert any("TensorBoard run `1/tensorboard`" in m.value and "runFilter=%5E1%2F" in m.value
               for m in app.markdown)


def test_an_operator_sees_and_may_download_the_exports_on_the_versions_page(
        monkeypatch, exported_registry):
    app = start(monkeypatch, exported_registry, user="olga")
    app.switch_page("views/versions.py").run()
    assert not app.exception
    exports = next(d.value for d in app.dataframe if "format" in d.value.columns)
    assert list(exports["format"]) == list(EXPORT_FORMATS)
    assert exports.loc[exports["format"] == "tflite_int8", "vs float TFLite"].item().endswith(
        "× smaller")
    downloads = [element.proto.label for element in app.get("download_button")]
    assert sorted(downloads[2:]) == sorted(EXPORT_FORMATS)  # after the two model cards


def button(app, label):
    return next(b for b in app.button if b.label == label)


def test_drift_page_simulates_and_shows_the_alert(monkeypatch, registry_copy):
    downloads = deferred_downloads(monkeypatch)
    app = start(monkeypatch, registry_copy.registry_dir, user="olga")
    app.switch_page("views/drift.py").run()
    assert not app.exception
    assert "holds 0 prediction(s)" in app.info[0].value  # nothing logged yet: says what to do
    scenario = next(s for s in app.selectbox if s.label == "Scenario")
    scenario.set_value("invert").run()
    button(app, "Run simulation").click().run()
    assert not app.exception
    assert "Logged 500 predictions of version 1 (invert" in app.success[0].value
    assert app.error and "Drift alert" in app.error[0].value
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Predictions in window"] == "500"
    assert len(app.get("plotly_chart")) >= 4  # histograms, class mix, embeddings
    # The shareable report is drawn when its button is clicked (AppTest has no server to
    # click through: the callable the button was given is called as the server would).
    assert "Download the report (HTML)" in [e.proto.label for e in app.get("download_button")]
    html = downloads["Download the report (HTML)"]()
    assert html.startswith("<!DOCTYPE html>") and 'class="verdict alert"' in html
    assert "500 predictions of version 1" in html


def deferred_downloads(monkeypatch) -> dict:
    """Label -> the callable of each download button drawn only when clicked."""
    import streamlit

    found, original = {}, streamlit.download_button

    def recording(label, data, *args, **kwargs):
        if callable(data):
            found[label] = data
        return original(label, data, *args, **kwargs)

    monkeypatch.setattr(streamlit, "download_button", recording)
    return found


def test_retrain_page_queues_a_job_that_can_be_cancelled(monkeypatch, registry_copy):
    from tests.jobs.waiting import wait_for

    app = start(monkeypatch, registry_copy.registry_dir, user="olga")
    app.switch_page("views/retrain.py").run()
    assert not app.exception
    assert "No retraining jobs yet" in app.info[0].value
    app.number_input[0].set_value(30)  # epochs: long enough to cancel
    button(app, "Start retraining").click().run()
    assert not app.exception
    assert "Queued job 1" in app.success[0].value
    cancel = next(b for b in app.button if b.label == "Cancel job 1")
    cancel.click().run()
    runner = backends_of(registry_copy).jobs
    job = wait_for(runner, 1, lambda j: j.status in ("cancelled", "failed", "succeeded"),
                   timeout=90)
    assert job.status == "cancelled"
    assert job.submitted_by == "olga"


def test_feedback_from_the_predict_page(monkeypatch, registry_copy):

    app = start(monkeypatch, registry_copy.registry_dir, user="vic")  # a signed-in viewer
    upload(app, "boot.png", encode_png(fashion_test_images(1)[0][0]))
    chooser = next(s for s in app.selectbox if s.label == "The right class")
    chooser.set_value("Sandal")  # a form: the value and the submit go in one run
    button(app, "Save the correct class").click().run()
    assert not app.exception
    assert any("the right class is Sandal" in s.value for s in app.success)
    _, labels, sources = backends_of(registry_copy).prediction_log.labelled_images("classifier",
                                                                          ("upload",))
    assert labels.tolist() == [5] and sources == ["upload"]


def test_a_visitors_correction_is_kept_as_a_suggestion_only(monkeypatch, registry_copy):
    app = start(monkeypatch, registry_copy.registry_dir)  # not signed in
    upload(app, "boot.png", encode_png(fashion_test_images(1)[0][0]))
    next(s for s in app.selectbox if s.label == "The right class").set_value("Sandal")
    button(app, "Save the correct class").click().run()
    assert not app.exception
    assert any("kept as a suggestion" in s.value for s in app.success)
    log = backends_of(registry_copy).prediction_log
    assert log.labelled_images("classifier", ("upload",))[0] == []  # counts nowhere yet
    app.switch_page("views/review_queue.py").run()
    assert any("Sign in" in i.value for i in app.info) and not app.get("image")


def test_review_queue_page_labels_an_unfamiliar_upload_and_shows_top_losses(monkeypatch,
                                                                           registry_copy):
    log = backends_of(registry_copy).prediction_log
    prediction, _ = predict_image(backends_of(registry_copy), encode_png(salt_noise()),
                                  actor="vic", source="upload", now=FIXED_NOW)
    app = start(monkeypatch, registry_copy.registry_dir, user="vic")  # a signed-in viewer
    app.switch_page("views/review_queue.py").run()
    assert not app.exception and app.title[0].value == "Review queue"
    assert any(f"#{prediction.log_id} · upload" in c.value for c in app.caption)
    assert any("unfamiliar" in m.value for m in app.markdown)
    chooser = next(s for s in app.selectbox if s.label == "What is it?")
    chooser.set_value(NONE_OF_THESE_CLASSES)
    button(app, "Save the label").click().run()
    assert not app.exception
    assert log.none_of_these_scores("classifier", 1).size == 1
    assert any("Nothing to label" in i.value for i in app.info)  # the queue moved on
    assert any("People said 1 of this version's images" in c.value for c in app.caption)
    button(app, "Find the top losses").click().run()
    assert not app.exception
    assert len(app.get("image")) == 12
    assert any("labelled **" in c.value and "loss " in c.value for c in app.caption)


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


def test_viewers_see_the_controls_of_their_role_only(monkeypatch, registry_copy):
    app = start(monkeypatch, registry_copy.registry_dir)  # not signed in: a viewer
    app.switch_page("views/drift.py").run()
    assert button(app, "Run simulation").disabled
    app.switch_page("views/retrain.py").run()
    assert button(app, "Start retraining").disabled
    assert any("Operators start retraining" in c.value for c in app.caption)


def test_sign_in_with_a_wrong_then_the_right_password(monkeypatch, registry_copy):
    app = start(monkeypatch, registry_copy.registry_dir)
    app.sidebar.text_input[0].set_value("rita")
    app.sidebar.text_input[1].set_value("not her password")
    button(app, "Sign in").click().run()
    assert "wrong user name or password" in app.sidebar.error[0].value
    app.sidebar.text_input[1].set_value(PASSWORD)
    button(app, "Sign in").click().run()
    assert not app.exception
    assert "Signed in as **rita** (reviewer)" in app.sidebar.markdown[0].value
    logins = [(e.actor, e.outcome) for e in backends_of(registry_copy).audit_log.read_entries()
              if e.action == "login"]
    assert logins == [("rita", "refused"), ("rita", "done")]
    button(app, "Sign out").click().run()
    assert any(b.label == "Sign in" for b in app.button)


def test_governance_page_as_a_viewer_has_no_decision_controls(monkeypatch, candidate_copy):
    app = start(monkeypatch, candidate_copy.registry_dir, user="vic")
    app.switch_page("views/governance.py").run()
    assert not app.exception
    assert app.title[0].value == "Governance"
    assert "Candidate v2" in [h.value for h in app.subheader]
    assert "You are vic (viewer)" in app.info[0].value
    labels = [b.label for b in app.button]
    assert "Promote to champion" not in labels and "Reject" not in labels
    assert not any("Roll back" in label for label in labels)
    # The evidence is there for everyone: the gate's badges and the comparison.
    assert any("pass" in m.value and "gains on drifted:brightness" in m.value
               for m in app.markdown)
    assert app.success[0].value.startswith("The gate recommends **promote**")
    # 1 registration, 5 users, the candidate's registration: nothing refused or tampered.
    assert any(s.value.startswith("Chain verified: 7 entries") for s in app.success)


def test_governance_page_as_a_reviewer_promotes_with_a_reason(monkeypatch, candidate_copy):
    app = start(monkeypatch, candidate_copy.registry_dir, user="rita")
    app.switch_page("views/governance.py").run()
    assert not app.exception
    # Heatmaps of both versions on the same images: originals, then one row per version.
    assert len(app.get("image")) == 3
    button(app, "Promote to champion").click().run()  # no reason yet: refused, nothing changed
    assert "needs a written reason" in app.error[0].value
    app.text_area[0].set_value("fixes the brightness drift")
    button(app, "Promote to champion").click().run()
    assert not app.exception
    assert "Version 2: candidate → champion by rita" in app.success[0].value
    assert "No candidates are waiting" in app.info[0].value
    table = app.dataframe[-1].value
    assert table.iloc[0]["action"] == "archive" and table.iloc[1]["action"] == "promote"
    assert table.iloc[1]["reason"] == "fixes the brightness drift"
    app.switch_page("views/versions.py").run()
    statuses = dict(zip(app.dataframe[0].value["version"], app.dataframe[0].value["status"]))
    assert statuses == {2: "champion", 1: "archived"}
    # One-click rollback for reviewers.
    app.switch_page("views/governance.py").run()
    reason = next(t for t in app.text_input if t.label.startswith("Reason (required"))
    reason.set_value("customers report worse photos")
    button(app, "Roll back (replaces v2)").click().run()
    assert "Version 1: archived → champion by rita" in app.success[0].value


def test_traffic_page_shows_api_traffic_and_lets_a_reviewer_set_a_canary(monkeypatch,
                                                                        candidate_copy):
    from fastapi.testclient import TestClient

    from core.serving.api import create_app
    from tests.serving.clients import b64, png

    image = fashion_test_images(1)[0][0]
    with TestClient(create_app(candidate_copy)) as client:
        for _ in range(3):
            client.post("/v1/models/classifier:predict", json={"instances": [b64(png(image))]})
        client.post("/v1/models/classifier:predict", content=b"not json")
    viewer = start(monkeypatch, candidate_copy.registry_dir, user="vic")
    viewer.switch_page("views/traffic.py").run()
    assert not viewer.exception, viewer.exception[0].stack_trace
    assert viewer.title[0].value == "Traffic"
    assert not viewer.get("form")  # viewers see no policy control
    metrics = {m.label: m.value for m in viewer.metric}
    assert metrics["Requests"] == "4" and metrics["Error rate"] == "25.0%"
    assert len(viewer.get("plotly_chart")) == 3
    reviewer = start(monkeypatch, candidate_copy.registry_dir, user="rita")
    reviewer.switch_page("views/traffic.py").run()
    reviewer.selectbox[0].set_value("canary")
    reviewer.selectbox[1].set_value(2)
    reviewer.number_input[0].set_value(20)
    reviewer.text_input[0].set_value("a fifth to v2")
    reviewer.button[0].click().run()
    assert not reviewer.exception and not reviewer.error
    status = backends_of(candidate_copy).traffic.get().as_dict()
    assert (status["mode"], status["candidate"], status["percent"], status["set_by"]) == (
        "canary", 2, 20, "rita")


def test_governance_page_shows_live_evidence_for_a_shadowed_candidate(monkeypatch,
                                                                     candidate_copy):
    from core.app import live_evidence, set_traffic, simulate
    from tests.conftest import FIXED_NOW

    backends = backends_of(candidate_copy)
    set_traffic(backends, actor="rita", mode="shadow", candidate=2, percent=None,
                reason="watch v2 live", now=FIXED_NOW)
    simulate(backends, actor="olga", scenario="brightness", n=60, clock=lambda: FIXED_NOW)
    app = start(monkeypatch, candidate_copy.registry_dir, user="vic")
    app.switch_page("views/governance.py").run()
    assert not app.exception
    assert any("Live evidence" in m.value for m in app.markdown)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Requests seen by both"] == "60"
    assert metrics["Agreement"].endswith("%") and "McNemar p" in metrics
    assert any("200 shadowed requests" in c.value for c in app.caption)
    # Holdout heatmaps (3 rows) plus the disagreements' gallery (3 more) if any.
    live = live_evidence(backends, 1, 2, actor="vic", now=FIXED_NOW)
    assert len(app.get("image")) == (6 if live.disagreements else 3)


def test_drift_page_draws_snapshots_over_real_time(monkeypatch, registry_copy):
    from datetime import UTC, datetime, timedelta
    from itertools import count

    from core.app import monitor_pass, simulate
    from core.monitoring.snapshots import period_start

    backends = backends_of(registry_copy)
    start_at = period_start(datetime.now(UTC) - timedelta(hours=5), "hour")
    ticks = count()
    simulate(backends, actor="olga", scenario="none", n=120,
             clock=lambda: start_at + next(ticks) * timedelta(minutes=1))
    monitor_pass(backends, datetime.now(UTC))
    app = start(monkeypatch, registry_copy.registry_dir, user="vic")
    app.switch_page("views/drift.py").run()
    assert not app.exception
    assert "Over time" in [h.value for h in app.subheader]
    assert any("One point per hour" in c.value for c in app.caption)
    assert len(app.get("plotly_chart")) >= 6  # 4 of the window + statistics + accuracy
    app.segmented_control[0].set_value("30d").run()  # shown as "Last 30 days"
    assert not app.exception
    # Traffic from yesterday has a closed day; from today only: says so instead of a chart.
    closed = start_at.date() < datetime.now(UTC).date()
    expected = "One point per day" if closed else "No daily snapshots of v1"
    assert any(expected in c.value for c in app.caption)


def test_alerts_page_lists_an_open_episode_an_operator_acknowledges(monkeypatch, config):
    from datetime import UTC, datetime

    from core.app import add_alert_channel, monitor_pass
    from core.monitoring.log_records import FailedRequest
    from tests.conftest import FIXED_NOW, add_users
    from tests.monitoring.receivers import HttpReceiver

    add_users(config)
    backends = backends_of(config)
    receiver = HttpReceiver().start()
    try:
        add_alert_channel(backends, actor="ada", name="ops", webhook=receiver.url,
                          secret="k", now=FIXED_NOW)
        now = datetime.now(UTC)
        backends.prediction_log.append([], [FailedRequest(
            at=now.isoformat(), model="classifier", status=400, error_kind="invalid_input",
            latency_ms=1.0, client="t", request_id=f"r{i}") for i in range(25)])
        monitor_pass(backends, now)
    finally:
        receiver.stop()
    app = start(monkeypatch, config.registry_dir, user="olga")
    app.switch_page("views/alerts.py").run()
    assert not app.exception and app.title[0].value == "Alerts"
    assert any("**error_rate**" in m.value for m in app.markdown)
    assert app.dataframe[1].value.iloc[0]["status"] == "delivered"  # the messages table
    app.text_input[0].set_value("on it")
    button(app, "Acknowledge").click().run()
    assert not app.exception
    assert any("acknowledged by olga" in m.value for m in app.markdown)
    assert not [b for b in app.button if b.label.startswith("Send a test")]  # admins only


def test_alerts_page_lets_an_admin_add_and_test_a_channel(monkeypatch, config):
    from tests.conftest import add_users
    from tests.monitoring.receivers import HttpReceiver

    add_users(config)
    receiver = HttpReceiver().start()
    try:
        app = start(monkeypatch, config.registry_dir, user="ada")
        app.switch_page("views/alerts.py").run()
        fields = {t.label: t for t in app.text_input}
        fields["Name"].set_value("team")
        fields["URL, or e-mail address"].set_value(receiver.url)
        next(s for s in app.selectbox if s.label == "Kind").set_value("slack")
        button(app, "Add channel").click().run()
        assert not app.exception and not app.error
        button(app, "Send a test message to team").click().run()
        assert not app.exception
        assert app.success[-1].value == "Delivered to team."
    finally:
        receiver.stop()
    assert json.loads(receiver.received[0].body)["text"].startswith("[TEST]")
    [channel] = backends_of(config).alerts.channels.all()
    assert (channel.name, channel.kind, channel.created_by) == ("team", "slack", "ada")


def test_governance_lets_an_admin_disable_an_account_and_reset_a_password(monkeypatch,
                                                                          registry_copy):
    from core.app import sign_in
    from core.errors import ActionRefused
    from tests.conftest import FIXED_NOW

    app = start(monkeypatch, registry_copy.registry_dir, user="ada")
    app.switch_page("views/governance.py").run()
    assert not app.exception
    next(s for s in app.selectbox if s.label == "User").set_value("vic")
    next(t for t in app.text_input if t.label == "Reason (required; audited)").set_value(
        "left the team")
    next(b for b in app.button if b.label == "Disable").click().run()
    assert not app.exception and not app.error
    backends = backends_of(registry_copy)
    with pytest.raises(ActionRefused, match="disabled"):
        sign_in(backends, "vic", "correct horse battery", FIXED_NOW)
    viewer = start(monkeypatch, registry_copy.registry_dir, user="rita")
    viewer.switch_page("views/governance.py").run()
    assert not [b for b in viewer.button if b.label == "Disable"]  # admins only


def test_the_phone_app_is_linked_and_an_admin_enrols_a_phone(monkeypatch, registry_copy):
    monkeypatch.setenv("API_URL", "https://farm.example:8500")
    app = start(monkeypatch, registry_copy.registry_dir)
    assert "https://farm.example:8500/app/" in [c.value for c in app.code]
    app = start(monkeypatch, registry_copy.registry_dir, user="ada")
    app.switch_page("views/governance.py").run()
    next(t for t in app.text_input if t.label.startswith("The phone's name")).set_value(
        "farm-phone-3")
    next(b for b in app.button if b.label == "Create its key").click().run()
    assert not app.exception and not app.error
    (link,) = [c.value for c in app.code if "#key=" in c.value]
    assert link.startswith("https://farm.example:8500/app/#key=cmk_")
    (key,) = backends_of(registry_copy).keys.list_keys()
    assert (key.name, key.role) == ("farm-phone-3", "device")
    viewer = start(monkeypatch, registry_copy.registry_dir, user="rita")
    viewer.switch_page("views/governance.py").run()
    assert not [b for b in viewer.button if b.label == "Create its key"]  # admins only


@pytest.mark.parametrize("claims, name", [
    ({"email": "ann@example.com", "email_verified": True}, "ann@example.com"),
    ({"email": "ann@example.com", "email_verified": "true"}, "ann@example.com"),
    ({"email": "ann@example.com"}, None),  # a provider that does not say: not trusted
    ({"email": "ann@example.com", "email_verified": False}, None),
    ({"email_verified": True}, None)])
def test_an_identity_providers_email_names_a_user_only_when_verified(claims, name):
    from dashboard.state import verified_email

    assert verified_email(claims) == name


def test_text_people_typed_is_shown_as_text_not_markdown():
    from dashboard import i18n

    shown = i18n.core_sentence("rita promoted v2: see [the docs](https://evil.example) "
                               "**now** <img src=x onerror=alert(1)> $x$ :red[boo]")
    for markup in ("[the docs](", "**now**", "<img", "$x$", ":red["):
        assert markup not in shown
    assert "\\[the docs\\]" in shown and "&lt;img" in shown


def test_a_registry_with_two_models_works_on_the_one_chosen_in_the_sidebar(monkeypatch,
                                                                           registry_copy):
    from tests.cli_runner import run_cli

    registry = registry_copy.registry_dir
    made = run_cli(registry, "--model-name", "shoes", "bootstrap", "--actor", "olga",
                   "--limit", "300", "--eval-limit", "200", "--epochs", "1")
    assert made.returncode == 0, made.stderr
    app = start(monkeypatch, registry, user="vic")
    (chooser,) = [box for box in app.sidebar.selectbox if box.label == "Model"]
    assert chooser.options == ["classifier", "shoes"] and chooser.value == "classifier"
    chooser.set_value("shoes").run()
    assert not app.exception, app.exception
    assert app.query_params["model"] == ["shoes"] or app.query_params["model"] == "shoes"
    upload(app, "boot.png", encode_png(fashion_test_images(1)[0][0]))
    assert "Answered by version 1" in app.caption[1].value
    shoes = backends_of(registry_copy.with_overrides(model_name="shoes")).prediction_log
    assert shoes.count("shoes") == 1
    assert backends_of(registry_copy).prediction_log.count("classifier") == 0
    # A link names the model; a name no model can have is refused, the default kept.
    linked = AppTest.from_file(APP, default_timeout=120)
    linked.session_state[SIGNED_IN] = "vic"
    linked.query_params["model"] = "shoes"
    linked.run()
    assert [b.value for b in linked.sidebar.selectbox if b.label == "Model"] == ["shoes"]
    bad = AppTest.from_file(APP, default_timeout=120)
    bad.session_state[SIGNED_IN] = "vic"
    bad.query_params["model"] = "../etc"
    bad.run()
    assert not bad.exception, bad.exception
    assert any("model name" in e.value for e in bad.sidebar.error)
    assert [b.value for b in bad.sidebar.selectbox if b.label == "Model"] == ["classifier"]
