"""Mirroring the registry into an MLflow tracking server, so a team's MLflow sees our versions.

Each version becomes one MLflow run (params: its recipe; metrics: validation and test,
and its comparison with its parent per holdout; artifacts: metadata, model card,
models and exports; tags: parent, dataset fingerprint, git commit) and one version of
an MLflow registered model; the alias ``champion`` follows our champion. Statuses and
decisions stay ours, since MLflow keeps no audit trail: each decision is mirrored as a
tag holding its audit entry's hash. A sync only writes what differs, so a second sync
changes nothing.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.audit import AuditEntry
from core.registry.records import Comparison, ModelVersion

VERSION_TAG = "registry.version"  # our version number, on the run and the model version
CHAMPION_ALIAS = "champion"


@dataclass
class SyncResult:
    runs_created: list[int] = field(default_factory=list)  # our version numbers
    model_versions_created: list[int] = field(default_factory=list)
    tags_set: int = 0
    alias_moved_to: int | None = None  # our champion, when the alias had to move

    @property
    def changed(self) -> bool:
        return bool(self.runs_created or self.model_versions_created or self.tags_set
                    or self.alias_moved_to is not None)

    def as_dict(self) -> dict:
        return {"runs_created": self.runs_created,
                "model_versions_created": self.model_versions_created,
                "tags_set": self.tags_set, "alias_moved_to": self.alias_moved_to,
                "changed": self.changed}


@dataclass(frozen=True)
class VersionFacts:
    """What the sync mirrors of one version."""

    version: ModelVersion
    comparison: Comparison | None  # with its parent
    decisions: list[AuditEntry]  # done promotions, rejections and rollbacks
    models: list[Path]  # model files, logged under model/ (the registered version's source)
    exports: list[Path]  # built exports and their table, logged under exports/
    card: Callable[[], str]  # its model card, Markdown (drawn only for a new run)


def sync_versions(client: Any, experiment: str, registered_model: str,
                  facts: list[VersionFacts], champion: int | None,
                  on_version: Callable[[int], None] | None = None) -> SyncResult:
    """Brings the MLflow server behind ``client`` (an ``mlflow.MlflowClient``) in step."""
    from mlflow.exceptions import MlflowException

    result = SyncResult()
    found = client.get_experiment_by_name(experiment)
    experiment_id = (found.experiment_id if found is not None
                     else client.create_experiment(experiment))
    runs = {int(run.data.tags[VERSION_TAG]): run for run in client.search_runs(
        [experiment_id], filter_string=f"tags.`{VERSION_TAG}` != ''", max_results=10_000)}
    try:
        client.get_registered_model(registered_model)
    except MlflowException:
        client.create_registered_model(registered_model, description=(
            "Mirrored from the vision model registry: statuses and decisions live there "
            "(this model's tags carry the audit entry hashes)."))
    model_versions = {int(mv.tags[VERSION_TAG]): mv for mv in client.search_model_versions(
        f"name = '{registered_model}'") if VERSION_TAG in mv.tags}
    for fact in facts:
        number = fact.version.version
        run = runs.get(number)
        if run is None:
            run = _create_run(client, experiment_id, fact)
            result.runs_created.append(number)
        for key, value in _changed(run.data.tags, _status_tags(fact)).items():
            client.set_tag(run.info.run_id, key, value)
            result.tags_set += 1
        mv = model_versions.get(number)
        if mv is None:
            mv = client.create_model_version(
                registered_model, f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
                tags={VERSION_TAG: str(number)},
                description=f"version {number} of the vision model registry")
            result.model_versions_created.append(number)
            model_versions[number] = mv
        for key, value in _changed(mv.tags, _status_tags(fact)).items():
            client.set_model_version_tag(registered_model, mv.version, key, value)
            result.tags_set += 1
        if on_version:
            on_version(number)
    if champion is not None:
        target = str(model_versions[champion].version)
        aliases = client.get_registered_model(registered_model).aliases
        if aliases.get(CHAMPION_ALIAS) != target:
            client.set_registered_model_alias(registered_model, CHAMPION_ALIAS, target)
            result.alias_moved_to = champion
    return result


def _changed(current: dict, wanted: dict) -> dict[str, str]:
    """The tags of ``wanted`` that ``current`` lacks or holds another value for."""
    return {key: value for key, value in wanted.items() if current.get(key) != value}


def _status_tags(fact: VersionFacts) -> dict[str, str]:
    """Tags that change after registration: the status and each decision's entry hash."""
    tags = {"status": str(fact.version.status)}
    for entry in fact.decisions:
        tags[f"decision.{entry.seq}"] = (f"{entry.action} by {entry.actor} ({entry.role}) at "
                                         f"{entry.at}; audit entry hash {entry.hash}")
    return tags


def _create_run(client: Any, experiment_id: str, fact: VersionFacts) -> Any:
    meta = fact.version.metadata
    tags = {VERSION_TAG: str(fact.version.version), "mlflow.runName": f"v{fact.version.version}",
            "parent": str(fact.version.parent or ""), "dataset": meta.dataset.name,
            "dataset.fingerprint": meta.dataset.fingerprint,
            "git.commit": str(meta.environment.get("git_commit") or "unknown"),
            "created_by": fact.version.created_by}
    run = client.create_run(experiment_id, run_name=f"v{fact.version.version}", tags=tags)
    run_id = run.info.run_id
    params = (meta.recipe.params | {"include": ",".join(meta.recipe.include),
                                    "use_feedback": meta.recipe.use_feedback}
              if meta.recipe else dict(meta.hyperparameters))
    for key, value in sorted(params.items()):
        client.log_param(run_id, key, str(value)[:500])
    for split in ("validation", "test"):
        for name in ("accuracy", "macro_f1", "ece"):
            client.log_metric(run_id, f"{split}_{name}", float(meta.metrics[split][name]))
    for row in meta.history:
        for name, value in row.items():
            if name != "epoch":
                client.log_metric(run_id, f"epoch_{name}", float(value), step=row["epoch"])
    if fact.comparison is not None:
        for holdout, values in fact.comparison.holdouts.items():
            key = holdout.replace(":", "_")
            client.log_metric(run_id, f"compare_{key}_accuracy_diff", values.accuracy_diff)
            client.log_metric(run_id, f"compare_{key}_mcnemar_p", values.mcnemar_p)
    with tempfile.TemporaryDirectory() as scratch:
        card = Path(scratch) / "model_card.md"
        card.write_text(fact.card())
        client.log_artifact(run_id, str(card))
        metadata = Path(scratch) / "metadata.json"
        metadata.write_text(json.dumps(meta.as_dict(), indent=2))
        client.log_artifact(run_id, str(metadata))
    for path in fact.models:
        client.log_artifact(run_id, str(path), artifact_path="model")
    for path in fact.exports:
        client.log_artifact(run_id, str(path), artifact_path="exports")
    client.set_terminated(run_id)
    return client.get_run(run_id)
