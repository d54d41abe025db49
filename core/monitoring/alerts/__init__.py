"""Alerts: episodes of rules' findings, the channels people are told through, and the
outbox of messages to them.

A rule's condition is checked on every monitor pass (the rules themselves are
``core.app.monitor_rules``). Episodes, not storms: when a condition starts, an episode
opens and one ``firing`` message goes to every channel; while it holds, nothing more is
sent unless the rule's reminder interval passes (and nobody acknowledged it); when it
stops, one ``resolved`` message. Event rules (a job failed, a decision made) open an
episode that is closed at once: one message each. An operator may acknowledge an episode
(no more reminders) or silence it until a time (no messages at all); both are audited.

Messages go through an outbox (``alert_deliveries``): written in the same transaction as
the episode change, then sent by the monitor and retried with exponential backoff while
the receiver is down, so none is lost to a crash or an outage. Every attempt is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.monitoring.alerts.channel_store import ChannelStore
from core.monitoring.alerts.episode_store import EpisodeStore
from core.monitoring.alerts.outbox import Outbox
from core.monitoring.alerts.settings_store import MonitorProblems, RuleSettingsStore
from core.storage.database import Database
from core.storage.secrets import SecretBox


@dataclass(frozen=True)
class AlertStore:
    """One model's alert stores: channels, rule settings, episodes, the outbox, and what
    failed in the monitor's last pass."""

    channels: ChannelStore
    rules: RuleSettingsStore
    episodes: EpisodeStore
    outbox: Outbox
    problems: MonitorProblems

    @classmethod
    def open(cls, database: Database, model: str, secrets: SecretBox | None = None
             ) -> AlertStore:
        """``secrets`` seals channels' targets and signing keys at rest (``SECRETS_KEY``)."""
        outbox = Outbox(database, model)
        return cls(ChannelStore(database, model, secrets or SecretBox()),
                   RuleSettingsStore(database, model), EpisodeStore(database, model, outbox),
                   outbox, MonitorProblems(database, model))
