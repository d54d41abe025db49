"""The application layer: the use cases every front end (CLI, dashboard, worker) calls.

Each use case takes the backends (built once by ``core.app.backends``), the acting
user's name and the time, authorizes, fetches, calls the domain and stores. Front
ends import from here, ``core.errors`` and ``core.config`` only.
"""

from core.app.access import (
                            add_user,
                            create_key,
                            current_actor,
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
from core.app.backends import Backends, build_backends
from core.app.cards import CARD_FORMATS, ModelCard, model_card
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
from core.app.monitor_rules import RULES as ALERT_RULES
from core.app.predict import (
                            EMPTY_HEATMAP,
                            Explanation,
                            SideBySide,
                            explain_disagreements,
                            explain_image,
                            explain_side_by_side,
                            predict_image,
                            unfamiliar_warning,
)
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
                            list_versions,
                            live_evidence,
                            seal_audit_log,
                            status_history,
)
from core.app.review_queue import (
                            NONE_OF_THESE_CLASSES,
                            LabelQueue,
                            QueueItem,
                            TopLoss,
                            TopLosses,
                            label_prediction,
                            label_queue,
                            top_losses,
)
from core.app.routing import Instance, decode_instances
from core.app.serving import ServingSession
from core.app.snapshots import RANGES, Deployment, Timeline, timeline
from core.app.traffic import (
                            TrafficBucket,
                            TrafficStatus,
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
from core.governance.decisions import DECISIONS
from core.governance.gate import FAILED_CHECK as GATE_FAILED_CHECK
from core.governance.gate import SENTENCES as GATE_SENTENCES
from core.governance.keys import ApiKey
from core.governance.traffic import MODES as TRAFFIC_MODES
from core.governance.traffic import Assignment
from core.governance.users import ANONYMOUS, ROLE_PERMISSIONS, ROLES, validate_user_name
from core.jobs.records import FINISHED as JOB_FINISHED
from core.jobs.records import Job
from core.ml.comparison import PIXEL_SCENARIOS
from core.ml.exports import EXPORT_FORMATS
from core.ml.images import check_upload_size, encode_png
from core.ml.params import ARCHITECTURES, Progress, RetrainRequest
from core.ml.predictor import Prediction
from core.ml.scenarios import SCENARIOS
from core.monitoring.alerts.records import Attempt, Channel, Delivery, Episode
from core.monitoring.drift import STATISTICS, Thresholds
from core.monitoring.live import LiveEvidence
from core.monitoring.log_records import SOURCE_KINDS, SOURCES, VARIANTS
from core.monitoring.snapshots import PERIODS, Snapshot
from core.names import parse_version
from core.registry.records import Comparison, ModelVersion, StatusChange, find_champion_in

__all__ = [
    "GATE_FAILED_CHECK", "GATE_SENTENCES",
    "ALERT_RULES", "Attempt", "Channel", "Delivery", "Deployment", "Episode", "PERIODS",
    "PassResult", "RANGES", "Snapshot", "Timeline", "acknowledge_alert", "add_alert_channel",
    "alert_deliveries", "alert_rules", "database_reachable", "list_alert_channels",
    "list_alert_episodes", "monitor_pass", "monitor_problems", "parse_duration",
    "remove_alert_channel", "send_test_alert",
    "set_alert_rule", "start_job", "timeline", "gate_advice", "live_evidence",
    "explain_disagreements",
    "LiveEvidence", "MigrationResult", "migrate_registry",
    "ANONYMOUS", "ARCHITECTURES", "Actor", "ApiKey", "Assignment", "AuditEntry", "Backends",
    "BootstrapResult", "Comparison", "Instance", "decode_instances", "RequestPixels", "SOURCES",
    "SOURCE_KINDS",
    "ServingSession", "TRAFFIC_MODES",
    "TrafficBucket", "TrafficStatus", "VARIANTS", "create_key", "list_keys", "revoke_key",
    "set_traffic", "traffic_over_time", "traffic_status",
    "DECISIONS", "DriftView", "Explanation", "JOB_FINISHED", "Job", "ModelVersion",
    "PIXEL_SCENARIOS", "Prediction", "Progress", "ROLES", "ROLE_PERMISSIONS", "RetrainRequest",
    "SCENARIOS", "STATISTICS", "SideBySide", "SimulationResult", "StatusChange", "Thresholds",
    "add_user", "audit_entries", "audit_head", "seal_audit_log", "bootstrap", "build_backends", "cancel_job",
    "check_audit_log", "check_upload_size", "compare_versions", "create_reference_profile",
    "current_actor", "decide_version", "drift_for_version", "drift_view", "encode_png",
    "CARD_FORMATS", "ModelCard", "model_card", "decision_evidence", "build_exports", "export_file",
    "export_table", "EXPORT_FORMATS", "has_tensorboard_run", "mlflow_sync", "EMPTY_HEATMAP", "explain_image",
    "explain_side_by_side", "export_audit_log", "find_comparison", "unfamiliar_warning",
    "get_job", "get_version", "has_users", "job_handlers", "list_jobs", "list_users",
    "list_versions", "may", "observed_scenarios", "parse_version", "predict_image",
    "last_prediction_id", "label_prediction", "label_queue", "top_losses",
    "NONE_OF_THESE_CLASSES", "LabelQueue", "QueueItem", "TopLoss", "TopLosses",
    "find_champion_in", "retrain", "run_jobs", "set_role", "sign_in", "simulate", "reset_password",
    "set_user_disabled",
    "status_history", "submit_retrain", "validate_user_name",
]
