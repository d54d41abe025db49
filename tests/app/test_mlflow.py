"""MLflow sync against a real ``mlflow server``: runs and registered model versions made once,
the champion alias and the decisions' audit hashes kept in step, a second sync a no-op."""

from __future__ import annotations

import json
import uuid

import pytest

from core.app import decide_version, mlflow_sync
from core.errors import ActionRefused, InvalidInput
from tests.cli_runner import run_cli
from tests.conftest import FIXED_NOW, backends_of

pytestmark = pytest.mark.slow


def sync(backends, uri, name):
    return mlflow_sync(backends, tracking_uri=uri, registered_model=name, actor="olga",
                       now=FIXED_NOW).as_dict()


def test_sync_mirrors_versions_and_follows_a_promotion(candidate_copy, mlflow_server):
    from mlflow import MlflowClient

    backends = backends_of(candidate_copy)
    registry, uri = candidate_copy.registry_dir, mlflow_server.url
    name = f"vision-{uuid.uuid4().hex[:8]}"
    printed = run_cli(registry, "mlflow", "sync", "--tracking-uri", uri,
                      "--registered-model", name, "--json", "--actor", "olga")
    assert printed.returncode == 0, printed.stderr
    first = json.loads(printed.stdout)  # the JSON alone: MLflow's own prints go elsewhere
    assert first["runs_created"] == [1, 2] and first["model_versions_created"] == [1, 2]
    assert first["alias_moved_to"] == 1
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.tags["registry.version"] == "1" and champion.tags["status"] == "champion"
    (run,) = client.search_runs([client.get_experiment_by_name(name).experiment_id],
                                filter_string="tags.`registry.version` = '2'")
    v2 = backends.registry.get_version(2)
    comparison = backends.registry.find_comparison(1, 2)
    assert run.data.params["learning_rate"] == str(v2.metadata.recipe.params["learning_rate"])
    assert run.data.metrics["test_accuracy"] == pytest.approx(
        v2.metadata.metrics["test"]["accuracy"])
    assert run.data.metrics["compare_clean_accuracy_diff"] == pytest.approx(
        comparison.holdouts["clean"].accuracy_diff)
    assert run.data.tags["parent"] == "1"
    assert run.data.tags["dataset.fingerprint"] == v2.metadata.dataset.fingerprint
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model_card.md", "metadata.json", "model"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} == {
        "model/model.keras", "model/model.tflite"}

    assert sync(backends, uri, name)["changed"] is False  # already in step

    promotion = decide_version(backends, "promote", 2, actor="rita", now=FIXED_NOW,
                               reason="fixes the brightness drift", override_gate=True)
    after = sync(backends, uri, name)
    assert after["alias_moved_to"] == 2 and not after["runs_created"]
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.tags["registry.version"] == "2"
    assert promotion.hash in champion.tags[f"decision.{promotion.seq}"]
    archived = next(mv for mv in client.search_model_versions(f"name = '{name}'")
                    if mv.tags["registry.version"] == "1")
    assert archived.tags["status"] == "archived"
    assert sync(backends, uri, name)["changed"] is False

    with pytest.raises(ActionRefused, match="operator"):
        mlflow_sync(backends, tracking_uri=uri, actor="vic", now=FIXED_NOW)
    with pytest.raises(InvalidInput, match="cannot reach the MLflow server"):
        mlflow_sync(backends, tracking_uri="http://127.0.0.1:9", actor="olga", now=FIXED_NOW)
    # Each sync is audited: who sent the versions' files where, and what changed there.
    synced = [e for e in backends.audit_log.read_entries() if e.action == "mlflow_sync"]
    assert [(e.actor, e.target) for e in synced] == [("olga", f"mlflow {uri}")] * 4
    assert synced[0].details["runs_created"] == [1, 2] and not synced[-1].details["changed"]
