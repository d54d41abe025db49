"""The application layer: the use cases every front end (CLI, dashboard, worker) calls.

Each use case takes the backends (built once by ``core.app.backends``), the acting
user's name and the time, authorizes, fetches, calls the domain and stores. Front
ends import from here, ``core.errors`` and ``core.config`` only.
"""

from core.app.access import (
    add_user,
    create_key,
    current_actor,
    enrol_url,
    has_users,
    list_keys,
    list_users,
    may,
    reset_password,
    revoke_key,
    set_role,
    set_user_disabled,
    sign_in,
)
from core.app.alerts import (
    PassResult,
    acknowledge_alert,
    add_alert_channel,
    alert_deliveries,
    alert_rules,
    database_reachable,
    list_alert_channels,
    list_alert_episodes,
    monitor_pass,
    monitor_problems,
    parse_duration,
    remove_alert_channel,
    send_test_alert,
    set_alert_rule,
)
from core.app.backends import Backends, backends_for_model, build_backends, every_model
from core.app.cards import ModelCard, model_card
from core.app.device import (
    DeviceAnswer,
    DeviceModel,
    DeviceModels,
    parse_time,
    sync_device_answers,
)
from core.app.drift_document import drift_document, drift_report_html
from core.app.evidence import decision_evidence
from core.app.exports import build_exports, export_file, export_table
from core.app.migrate import MigrationResult, migrate_registry
from core.app.mlflow import mlflow_sync
from core.app.monitor import (
    DriftView,
    SimulationResult,
    create_reference_profile,
    drift_for_version,
    drift_view,
    last_prediction_id,
    observed_scenarios,
    simulate,
)
from core.app.predict import (
    Explanation,
    SideBySide,
    explain_disagreements,
    explain_image,
    explain_side_by_side,
    predict_image,
    unfamiliar_warning,
)
from core.app.register import RegistrationResult, read_labels, register_model, unpack_saved_model
from core.app.review import (
    audit_entries,
    audit_head,
    check_audit_log,
    compare_versions,
    decide_version,
    export_audit_log,
    find_comparison,
    gate_advice,
    get_version,
    has_tensorboard_run,
    list_models,
    list_versions,
    live_evidence,
    seal_audit_log,
    status_history,
)
from core.app.review_queue import (
    LabelQueue,
    QueueItem,
    TopLoss,
    TopLosses,
    label_prediction,
    label_queue,
    top_losses,
)
from core.app.routing import Instance, decode_instances
from core.app.serving import ModelState, PredictRequest, ServingSession
from core.app.snapshots import Deployment, ModelHealth, Timeline, model_health, timeline
from core.app.traffic import (
    DeviceTraffic,
    TrafficBucket,
    TrafficStatus,
    device_traffic,
    set_traffic,
    traffic_over_time,
    traffic_status,
)
from core.app.train import (
    BootstrapResult,
    bootstrap,
    cancel_job,
    get_job,
    job_handlers,
    list_jobs,
    retrain,
    run_jobs,
    start_job,
    submit_retrain,
)
from core.app.uploads import RequestPixels
from core.audit import Actor, AuditEntry
from core.governance.decisions import DecisionDetails
from core.governance.keys import ApiKey
from core.governance.traffic import Assignment
from core.governance.users import validate_user_name
from core.jobs.records import Job
from core.ml.images import check_upload_size, encode_png
from core.ml.params import Progress, RetrainRequest
from core.ml.predictor import Prediction
from core.monitoring.alerts.records import Attempt, Channel, Delivery, Episode
from core.monitoring.drift import Thresholds
from core.monitoring.live import LiveEvidence
from core.monitoring.snapshots import Snapshot
from core.names import parse_version
from core.registry.records import Comparison, ModelVersion, StatusChange, find_champion_in

__all__ = [
    "Actor", "ApiKey", "Assignment", "Attempt", "AuditEntry", "Backends", "BootstrapResult",
    "Channel", "Comparison", "DecisionDetails", "Delivery", "Deployment", "DeviceAnswer",
    "DeviceModel", "DeviceTraffic", "device_traffic", "DeviceModels", "DriftView", "enrol_url", "parse_time",
    "sync_device_answers",
    "Episode", "Explanation", "Instance", "Job", "LabelQueue", "LiveEvidence",
    "MigrationResult", "ModelCard", "ModelState", "ModelVersion", "PassResult",
    "PredictRequest", "Prediction", "Progress", "QueueItem", "RegistrationResult",
    "RequestPixels", "RetrainRequest",
    "ServingSession", "SideBySide", "SimulationResult", "Snapshot", "StatusChange",
    "Thresholds", "Timeline", "TopLoss", "TopLosses", "TrafficBucket", "TrafficStatus", "acknowledge_alert",
    "add_alert_channel", "add_user", "alert_deliveries", "alert_rules", "audit_entries",
    "audit_head", "backends_for_model", "bootstrap", "build_backends", "build_exports", "cancel_job",
    "check_audit_log", "check_upload_size", "compare_versions", "create_key",
    "create_reference_profile", "current_actor", "database_reachable", "decide_version",
    "decision_evidence", "decode_instances", "drift_document", "drift_for_version",
    "drift_report_html", "drift_view", "encode_png",
    "every_model", "explain_disagreements", "explain_image", "explain_side_by_side", "export_audit_log",
    "export_file", "export_table", "find_champion_in", "find_comparison", "gate_advice",
    "get_job", "get_version", "has_tensorboard_run", "has_users", "job_handlers",
    "label_prediction", "label_queue", "last_prediction_id", "list_alert_channels",
    "list_alert_episodes", "list_jobs", "list_keys", "list_users", "list_models", "list_versions",
    "live_evidence", "may", "migrate_registry", "mlflow_sync", "model_card", "model_health", "ModelHealth",
    "monitor_pass",
    "monitor_problems", "observed_scenarios", "parse_duration", "parse_version",
    "predict_image", "read_labels", "register_model", "remove_alert_channel", "reset_password",
    "retrain", "revoke_key", "run_jobs", "seal_audit_log", "send_test_alert", "set_alert_rule",
    "set_role", "set_traffic", "set_user_disabled", "sign_in", "simulate", "start_job",
    "status_history", "submit_retrain", "timeline", "top_losses", "traffic_over_time",
    "traffic_status", "unfamiliar_warning", "unpack_saved_model", "validate_user_name",
]
