"""The CLI as a user runs it: its stdout, stderr and exit status (in this process; the
first tests as a real ``python -m core`` process)."""

import json
import sqlite3

import numpy as np
import pytest
from PIL import Image

from core.ml.images import encode_png
from tests.cli_runner import run_cli, run_cli_process, snapshot
from tests.conftest import FIXED_NOW, backends_of, copy_registry, fashion_test_images, salt_noise

pytestmark = pytest.mark.slow


@pytest.fixture
def image_files(tmp_path):
    images, labels = fashion_test_images(3)
    paths = []
    for index, image in enumerate(images):
        path = tmp_path / f"test{index}.png"
        path.write_bytes(encode_png(image))
        paths.append(path)
    return paths, labels


def test_versions_json(trained_registry):
    result = run_cli_process(trained_registry, "versions", "--json")
    assert result.returncode == 0
    (entry,) = json.loads(result.stdout)
    assert entry["version"] == 1 and isinstance(entry["version"], int)
    assert entry["status"] == "champion" and entry["parent"] is None
    assert entry["created_at"].endswith("+00:00")
    assert 0.6 < entry["metrics"]["test_accuracy"] <= 1
    assert 0.6 < entry["metrics"]["val_accuracy"] <= 1


def test_versions_table(trained_registry):
    result = run_cli(trained_registry, "versions")
    assert result.returncode == 0
    assert "champion" in result.stdout and "test_acc" in result.stdout


def test_predict_json_matches_the_library(registry_copy, image_files):
    trained_config, trained_registry = registry_copy, registry_copy.registry_dir
    paths, _ = image_files
    result = run_cli(trained_registry, "predict", *map(str, paths), "--json")
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert [a["file"] for a in answers] == [str(p) for p in paths]
    from core.app import predict_image
    for path, answer in zip(paths, answers):
        assert set(answer) == {"file", "label", "confidence", "probabilities", "version",
                               "latency_ms", "ood_score", "unfamiliar"}
        expected, _ = predict_image(backends_of(trained_config), path.read_bytes(),
                                    actor="anonymous", source="cli", now=FIXED_NOW)
        assert answer["label"] == expected.label
        assert answer["ood_score"] == pytest.approx(expected.ood_score, abs=1e-6)
        assert answer["version"] == 1
        assert answer["confidence"] == pytest.approx(max(answer["probabilities"].values()))


def test_predict_flags_an_image_unlike_the_training_images(registry_copy, image_files,
                                                           tmp_path):
    registry = registry_copy.registry_dir
    garment = image_files[0][0]
    noise = tmp_path / "noise.png"
    noise.write_bytes(encode_png(salt_noise()))
    answers = json.loads(run_cli(registry, "predict", str(garment), str(noise), "--json").stdout)
    assert [a["unfamiliar"] for a in answers] == [False, True]
    assert answers[1]["ood_score"] > answers[0]["ood_score"]
    logged = backends_of(registry_copy).prediction_log.window("classifier", 1, last=2)
    np.testing.assert_allclose(logged.ood_scores, [a["ood_score"] for a in answers], rtol=1e-5)
    text = run_cli(registry, "predict", str(garment), str(noise)).stdout.splitlines()
    assert text[0].startswith(f"{garment}: ") and text[1].startswith(f"{noise}: ")
    assert text[2].startswith("  warning: This image is unlike the training images")
    assert len(text) == 3  # the garment gets no warning


def test_profile_adds_the_ood_detector_to_a_version_registered_without_one(registry_copy,
                                                                           tmp_path):
    registry = registry_copy.registry_dir
    detector = registry / "classifier" / "1" / "ood.npz"
    detector.unlink()
    noise = tmp_path / "noise.png"
    noise.write_bytes(encode_png(salt_noise()))
    (before,) = json.loads(run_cli(registry, "predict", str(noise), "--json").stdout)
    assert before["ood_score"] is None and before["unfamiliar"] is None
    result = run_cli(registry, "profile", "--actor", "olga", "--version", "1")
    assert result.returncode == 0 and "ood.npz" in result.stdout
    assert "reference.npz" not in result.stdout  # a published file is never rewritten
    (after,) = json.loads(run_cli(registry, "predict", str(noise), "--json").stdout)
    assert after["unfamiliar"] is True


def test_predict_reports_bad_files_and_keeps_going(registry_copy, image_files, tmp_path):

    paths, _ = image_files
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    trained_registry = registry_copy.registry_dir
    log = backends_of(registry_copy).prediction_log
    logged = log.count("classifier")
    result = run_cli(trained_registry, "predict", str(paths[0]), str(text),
                     str(tmp_path / "missing.jpg"), "--json")
    assert result.returncode == 1
    good, bad, missing = json.loads(result.stdout)
    assert "label" in good
    assert set(bad) == {"file", "error"} and "not an image" in bad["error"]
    assert "\n" not in bad["error"]
    assert "is not a file" in missing["error"]
    assert log.count("classifier") == logged + 1  # only the good file was logged
    assert log.window("classifier", 1, last=1).sources == ["cli"]


def test_unknown_version_is_one_clear_error_and_writes_nothing(trained_registry, image_files,
                                                                tmp_path):
    paths, _ = image_files
    before = snapshot(trained_registry)
    result = run_cli_process(trained_registry, "predict", str(paths[0]), "--version", "7")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: model 'classifier' has no version 7 (versions: 1). To fix this, pick one of those.")
    out = tmp_path / "heat.png"
    result = run_cli_process(trained_registry, "explain", str(paths[0]), "--out", str(out), "--version", "7")
    assert result.returncode == 1 and "no version 7" in result.stderr
    assert not out.exists()
    assert snapshot(trained_registry) == before


def test_explain_writes_an_overlay(registry_copy, image_files, tmp_path):
    trained_registry = registry_copy.registry_dir
    paths, _ = image_files
    out = tmp_path / "heat.png"
    result = run_cli(trained_registry, "explain", str(paths[0]), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Grad-CAM of" in result.stdout
    with Image.open(out) as image:
        assert image.size == (224, 224) and image.mode == "RGB"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_explain_says_when_the_map_is_empty(registry_copy, image_files, tmp_path):
    """A champion whose weights are all zero raises no class score anywhere: the CLI
    says the map is empty instead of handing over a picture without heat."""
    import keras

    backends = backends_of(registry_copy)
    path = backends.artifacts.local_path(registry_copy.model_name, 1) / "model.keras"
    model = keras.models.load_model(path)
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    model.save(path)
    paths, _ = image_files
    result = run_cli(registry_copy.registry_dir, "explain", str(paths[0]), "--out",
                     str(tmp_path / "heat.png"))
    assert result.returncode == 0, result.stderr
    assert "is empty: no region of this image raised" in result.stdout


def test_explain_refuses_a_non_image_without_writing(trained_registry, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "heat.png"
    result = run_cli(trained_registry, "explain", str(bad), "--out", str(out))
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "To fix this" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jpg"]


def test_empty_registry_commands_create_nothing(tmp_path):
    registry = tmp_path / "empty"
    result = run_cli(registry, "versions")
    assert result.returncode == 0 and "python -m core bootstrap" in result.stdout
    assert run_cli(registry, "versions", "--json").stdout.strip() == "[]"
    image = tmp_path / "x.png"
    image.write_bytes(encode_png(fashion_test_images(1)[0][0]))
    result = run_cli(registry, "predict", str(image))
    assert result.returncode == 1 and "no champion yet" in result.stderr
    assert not registry.exists()


def test_bootstrap_with_progress_then_idempotent(tmp_path):
    registry = tmp_path / "fresh"
    result = run_cli(registry, "bootstrap", "--epochs", "1", "--limit", "1000",
                     "--eval-limit", "500", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["created"] is True and summary["status"] == "champion"
    assert "training" in result.stderr and "epoch 1/1" in result.stderr  # the progress bar
    again = run_cli(registry, "bootstrap", "--epochs", "1")
    assert again.returncode == 0 and "nothing trained" in again.stdout
    assert len(backends_of(_config(registry)).registry.list_versions()) == 1


def test_bootstrap_refuses_bad_options(tmp_path):
    registry = tmp_path / "fresh"
    result = run_cli_process(registry, "bootstrap", "--dataset", "folder:/does/not/exist")
    assert result.returncode == 1 and "does not exist" in result.stderr
    result = run_cli_process(registry, "--model-name", "../escape", "versions")
    assert result.returncode == 1 and "invalid model name" in result.stderr
    assert not registry.exists()


def _config(registry):
    from core.config import load_config
    return load_config({}).with_overrides(registry_dir=registry)


def test_simulate_then_drift_json(registry_copy):
    registry = registry_copy.registry_dir
    result = run_cli(registry, "simulate", "--actor", "olga", "--scenario", "none", "--n", "300",
                     "--seed", "1", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary == summary | {"scenario": "none", "n": 300, "version": 1}
    assert "simulating none" in result.stderr  # the progress bar
    report = json.loads(run_cli(registry, "drift", "--window", "300", "--json").stdout)
    assert report["alert"] is False and report["n"] == 300 and report["reasons"] == []
    assert {s["name"] for s in report["statistics"]} >= {"prediction_kl", "prediction_psi",
                                                         "embedding_mmd"}
    for statistic in report["statistics"]:
        assert set(statistic) >= {"name", "value", "threshold", "status"}
    assert abs(report["estimated_accuracy"] - report["realized_accuracy"]) < 0.05
    run_cli(registry, "simulate", "--actor", "olga", "--scenario", "invert", "--n", "300")
    report = json.loads(run_cli(registry, "drift", "--window", "300", "--json").stdout)
    assert report["alert"] is True and report["reasons"]
    relaxed = run_cli(registry, "drift", "--window", "300", "--threshold",
                      "prediction_psi=100", "--json")
    psi = next(s for s in json.loads(relaxed.stdout)["statistics"]
               if s["name"] == "prediction_psi")
    assert psi["threshold"] == 100 and psi["status"] == "ok"
    written = run_cli(registry, "drift", "--window", "300", "--format", "html", "--out",
                      str(registry / "report.html"))
    assert written.returncode == 0 and "wrote the drift report" in written.stdout
    html = (registry / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and 'class="verdict alert"' in html


@pytest.mark.parametrize("args, message", [
    (["simulate", "--scenario", "fog"], "unknown scenario 'fog'"),
    (["simulate", "--scenario", "brightness", "--severity", "5"], "out of range for brightness"),
    (["simulate", "--scenario", "none", "--n", "0"], "--n must be between"),
    (["drift"], "holds 0 prediction(s) of version 1"),
    (["drift", "--window", "5"], "--window must be at least 30"),
    (["drift", "--out", "report.html"], "add --format html"),
    (["drift", "--version", "4"], "no version 4"),
    (["drift", "--threshold", "psi=1"], "unknown statistic 'psi'"),
    (["cancel", "5"], "no job 5"),
    (["retrain", "--include", "fog"], "unknown scenario 'fog'"),
    (["retrain", "--epochs", "0"], "epochs must be between"),
    (["retrain", "--learning-rate", "-1"], "learning rate must be in"),
    (["retrain", "--original-images", "1000000"], "original_images must be between 0 and"),
    (["retrain", "--augmented-per-scenario", "-1"], "augmented_per_scenario must be between"),
    (["compare", "1", "9"], "no version 9"),
])
def test_commands_refuse_bad_input_clearly_and_change_nothing(trained_registry, args, message):
    before = snapshot(trained_registry)
    result = run_cli(trained_registry, *args, "--actor", "olga")  # allowed: only input is bad
    assert result.returncode == 1
    assert message in result.stderr and "To fix this" in result.stderr
    assert snapshot(trained_registry) == before


def test_version_without_reference_profile(registry_copy):
    registry = registry_copy.registry_dir
    (registry / "classifier" / "1" / "reference.npz").unlink()
    run_cli(registry, "simulate", "--actor", "olga", "--scenario", "none", "--n", "100")
    result = run_cli(registry, "drift")
    assert result.returncode == 1
    assert "has no reference profile" in result.stderr and "profile --version 1" in result.stderr
    assert run_cli(registry, "profile", "--actor", "olga", "--version", "1").returncode == 0
    assert run_cli(registry, "drift", "--window", "100").returncode == 0
    again = run_cli(registry, "profile", "--actor", "olga", "--version", "1")
    assert "already has a complete reference profile" in again.stdout


def test_retrain_wait_json_then_jobs_and_compare(registry_copy):
    registry = registry_copy.registry_dir
    run_cli(registry, "simulate", "--actor", "olga", "--scenario", "blur", "--n", "200")
    result = run_cli(registry, "retrain", "--actor", "olga", "--epochs", "1", "--original-images",
                     "2000", "--augmented-per-scenario", "1000", "--wait", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "succeeded" and summary["version"] == 2
    assert summary["job"] == 1 and summary["recommendation"] in ("promote", "review", "reject")
    (job,) = json.loads(run_cli(registry, "jobs", "--json").stdout)
    assert job["job"] == 1 and job["status"] == "succeeded" and job["version"] == 2
    assert job["params"]["epochs"] == 1 and job["params"]["original_images"] == 2000
    assert job["params"]["augmented_per_scenario"] == 1000
    comparison = json.loads(run_cli(registry, "compare", "--actor", "olga", "1", "2",
                                    "--json").stdout)
    assert set(comparison["holdouts"]) == {"clean", "drifted:blur"}
    clean = comparison["holdouts"]["clean"]
    assert set(clean["accuracy"]) == {"1", "2"} and set(clean["macro_f1"]) == {"1", "2"}
    assert 0 <= clean["mcnemar_p"] <= 1 and len(clean["accuracy_diff_ci"]) == 2
    assert comparison["recommendation"] in ("promote", "review", "reject")
    assert comparison["reasons"]
    table = run_cli(registry, "compare", "--actor", "olga", "1", "2")
    assert "drifted:blur" in table.stdout and "gate:" in table.stdout


# --- governance -------------------------------------------------------------------------

def test_users_add_reads_the_password_from_stdin_and_list_hides_hashes(tmp_path):
    registry = tmp_path / "registry"
    first = run_cli_process(registry, "users", "add", "ann", "--role", "admin", "--actor", "root",
                    stdin="a long enough password\n")
    assert first.returncode == 0 and "added ann as admin" in first.stdout
    refused = run_cli_process(registry, "users", "add", "bob", "--role", "viewer", "--actor", "root",
                      stdin="a long enough password\n")
    assert refused.returncode == 1 and "there is no user 'root'" in refused.stderr
    assert run_cli_process(registry, "users", "add", "bob", "--role", "reviewer", "--actor", "ann",
                   stdin="another long password\n").returncode == 0
    assert run_cli_process(registry, "users", "set-role", "bob", "operator", "--actor", "ann",
                   "--reason", "moved team").returncode == 0
    listing = run_cli_process(registry, "users", "list", "--json")
    users = json.loads(listing.stdout)
    assert [(u["name"], u["role"]) for u in users] == [("ann", "admin"), ("bob", "operator")]
    assert "argon2" not in listing.stdout and "password" not in json.dumps(
        [u["name"] for u in users])


def test_promote_refusals_exit_1_change_nothing_and_are_logged(candidate_registry, tmp_path):
    registry = tmp_path / "registry"
    copy_registry(candidate_registry, registry)
    for args, message in [
        (["promote", "2", "--reason", "x", "--actor", "vic"], "vic is a viewer"),
        (["promote", "2", "--reason", "x", "--actor", "olga"], "olga is an operator"),
        (["promote", "2", "--reason", "x"], "signing in is required to promote"),
        (["rollback", "2", "--reason", "x", "--actor", "rita"], "version 2 is candidate"),
        (["reject", "2", "--reason", "x", "--actor", "rita"], "the gate recommends promote"),
        (["promote", "1", "--reason", "x", "--actor", "rita"], "version 1 is champion"),
    ]:
        before = json.loads(run_cli(registry, "versions", "--json").stdout)
        result = run_cli(registry, *args)
        assert result.returncode == 1, args
        assert message in result.stderr and "To fix this" in result.stderr, result.stderr
        assert json.loads(run_cli(registry, "versions", "--json").stdout) == before
        exported = json.loads(run_cli(registry, "audit", "export", "--format", "json").stdout)
        assert exported[-1]["outcome"] == "refused" and message in exported[-1]["reason"]
    result = run_cli(registry, "promote", "2", "--reason", "fixes brightness", "--actor",
                     "rita", "--json")
    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stdout)
    assert (entry["action"], entry["actor"], entry["version"]) == ("promote", "rita", 2)
    assert entry["details"]["gate"]["recommendation"] == "promote"
    statuses = {v["version"]: v["status"] for v in
                json.loads(run_cli(registry, "versions", "--json").stdout)}
    assert statuses == {1: "archived", 2: "champion"}
    text = run_cli(registry, "rollback", "1", "--reason", "real photos got worse",
                   "--actor", "rex")
    assert "version 1: archived -> champion by rex" in text.stdout
    assert "version 2 archived" in text.stdout


def test_audit_verify_and_export(registry_copy):
    registry = registry_copy.registry_dir
    verified = run_cli(registry, "audit", "verify", "--json")
    assert verified.returncode == 0
    result = json.loads(verified.stdout)
    assert result["ok"] is True and result["entries"] == 6
    head = f"6:{result['head_hash']}"
    assert run_cli(registry, "audit", "verify", "--anchor", head).returncode == 0
    csv_text = run_cli(registry, "audit", "export", "--format", "csv").stdout
    assert csv_text.splitlines()[0].startswith("seq,at,actor,role,action,outcome")
    assert len(csv_text.splitlines()) == 7
    with sqlite3.connect(registry / "registry.db") as db:
        db.execute("DROP TRIGGER audit_log_is_append_only_update")
        db.execute("UPDATE audit_log SET actor = 'eve' WHERE seq = 4")
    broken = run_cli(registry, "audit", "verify")
    assert broken.returncode == 1
    assert "entry 4 was edited" in broken.stdout
    bad_anchor = run_cli(registry, "audit", "verify", "--anchor", "6:abc")
    assert bad_anchor.returncode == 1 and "is not SEQ:HASH" in bad_anchor.stderr


def test_keys_commands_show_the_secret_once_and_audit(registry_copy):
    registry = registry_copy.registry_dir
    created = run_cli(registry, "keys", "create", "scanner", "--role", "viewer",
                      "--rate-limit", "20", "--actor", "ada", "--json")
    assert created.returncode == 0, created.stderr
    secret = json.loads(created.stdout)["key"]
    listed = run_cli(registry, "keys", "list", "--actor", "ada", "--json")
    assert json.loads(listed.stdout)[0] | {"key": None} == {
        "name": "scanner", "role": "viewer", "rate_limit": 20.0, "active": True,
        "revoked_at": None, "revoked_by": None, "created_by": "ada", "key": None,
        "created_at": json.loads(listed.stdout)[0]["created_at"]}
    assert secret not in listed.stdout
    refused = run_cli(registry, "keys", "list", "--actor", "vic")
    assert refused.returncode == 1 and "manage_users" in refused.stderr
    revoked = run_cli(registry, "keys", "revoke", "scanner", "--reason", "rotated",
                      "--actor", "ada")
    assert revoked.returncode == 0 and "revoked key scanner" in revoked.stdout
    again = run_cli(registry, "keys", "revoke", "scanner", "--actor", "ada")
    assert again.returncode == 1 and "no active key" in again.stderr


def test_traffic_commands_set_and_show_the_policy(candidate_copy):
    registry = candidate_copy.registry_dir
    shown = run_cli(registry, "traffic", "show", "--json")
    assert json.loads(shown.stdout)["mode"] == "off"
    canary = run_cli(registry, "traffic", "set", "--canary", "2:10", "--reason", "try v2",
                     "--actor", "rita", "--json")
    assert canary.returncode == 0, canary.stderr
    assert json.loads(run_cli(registry, "traffic", "show", "--json").stdout) | {
        "set_at": None} == {"mode": "canary", "candidate": 2, "percent": 10, "set_by": "rita",
                            "reason": "try v2", "champion": 1, "active": True, "set_at": None}
    bad = run_cli(registry, "traffic", "set", "--canary", "2", "--reason", "x", "--actor", "rita")
    assert bad.returncode == 1 and "N:PERCENT" in bad.stderr
    no_reason = run_cli(registry, "traffic", "set", "--off", "--actor", "rita")
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    shadow = run_cli(registry, "traffic", "set", "--shadow", "2", "--reason", "watch v2",
                     "--actor", "rex")
    assert shadow.returncode == 0 and "shadows every request" in shadow.stdout
    off = run_cli(registry, "traffic", "set", "--off", "--reason", "done", "--actor", "rex")
    assert off.returncode == 0 and "the champion answers every request" in off.stdout


def test_alert_commands(tmp_path):
    from core.config import load_config
    from tests.conftest import add_users

    registry = tmp_path / "registry"
    add_users(load_config({}).with_overrides(registry_dir=registry))
    added = run_cli(registry, "alerts", "add-channel", "ops", "--webhook",
                    "http://127.0.0.1:9/hook", "--secret", "topsecret", "--actor", "ada")
    assert added.returncode == 0 and "added webhook channel ops" in added.stdout
    listed = json.loads(run_cli(registry, "alerts", "channels", "--json").stdout)
    assert [(c["name"], c["kind"], c["signed"]) for c in listed] == [("ops", "webhook", True)]
    assert "topsecret" not in json.dumps(listed)
    refused = run_cli(registry, "alerts", "add-channel", "x", "--slack", "http://h/x",
                      "--actor", "rita")
    assert refused.returncode == 1 and "needs the role admin" in refused.stderr
    bad = run_cli(registry, "alerts", "silence", "1", "--for", "soon", "--reason", "r",
                  "--actor", "olga")
    assert bad.returncode == 1 and "not a duration" in bad.stderr
    # Port 9 (discard) refuses: the test message fails, is recorded, and exits 1.
    tested = run_cli(registry, "alerts", "test", "ops", "--json", "--actor", "ada")
    assert tested.returncode == 1
    assert json.loads(tested.stdout)["attempts"][0]["status"] == "unreachable"
    rule = run_cli(registry, "alerts", "set-rule", "error_rate", "max_rate=0.2",
                   "--reason", "noisy clients", "--actor", "ada")
    assert rule.returncode == 0 and "max_rate=0.2" in rule.stdout
    rules = json.loads(run_cli(registry, "alerts", "rules", "--json").stdout)
    assert rules["error_rate"]["settings"]["max_rate"] == 0.2
    once = run_cli(registry, "monitor", "run", "--once")
    assert once.returncode == 0 and "snapshots +0" in once.stdout
    assert json.loads(run_cli(registry, "alerts", "list", "--json").stdout) == []
