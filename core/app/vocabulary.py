"""The fixed choices and words front ends offer: decisions, roles, traffic modes, drift
scenarios and statistics, export and card formats, alert rules and the gate's sentences.

Each is defined by the domain package it belongs to; this module names them for the
front ends (which import only from ``core.app``), so that ``core.app`` itself exports the
use cases and their records, and a front end's options read ``vocabulary.ROLES``.
"""

from core.app.cards import CARD_FORMATS
from core.app.monitor_rules import RULES as ALERT_RULES
from core.app.predict import EMPTY_HEATMAP, NO_HEATMAP
from core.app.review_queue import NONE_OF_THESE_CLASSES
from core.governance.decisions import DECISIONS
from core.governance.gate import FAILED_CHECK as GATE_FAILED_CHECK
from core.governance.gate import SENTENCES as GATE_SENTENCES
from core.governance.traffic import MODES as TRAFFIC_MODES
from core.governance.users import ANONYMOUS, KEY_ROLES, ROLES
from core.jobs.records import FINISHED as JOB_FINISHED
from core.ml.comparison import PIXEL_SCENARIOS
from core.ml.exports import EXPORT_FORMATS
from core.ml.imported import INPUT_RANGES, OUTPUT_KINDS
from core.ml.params import ARCHITECTURES
from core.ml.scenarios import SCENARIOS
from core.monitoring.drift import STATISTICS
from core.monitoring.log_records import SOURCE_KINDS

__all__ = [
    "ALERT_RULES", "ANONYMOUS", "ARCHITECTURES", "CARD_FORMATS", "DECISIONS", "EMPTY_HEATMAP",
    "EXPORT_FORMATS", "GATE_FAILED_CHECK", "GATE_SENTENCES", "INPUT_RANGES", "JOB_FINISHED", "KEY_ROLES",
    "NO_HEATMAP", "NONE_OF_THESE_CLASSES", "OUTPUT_KINDS", "PIXEL_SCENARIOS", "ROLES",
    "SCENARIOS", "SOURCE_KINDS", "STATISTICS", "TRAFFIC_MODES",
]
