"""The monitoring quality bar on real Fashion-MNIST traffic, n = 500 per window."""

import pytest

from tests.drift_detection import MUST_ALERT, run

pytestmark = pytest.mark.slow
N = 500


def test_clean_traffic_false_alarm_rate_is_at_most_5_percent(registry_copy):
    results = run(registry_copy.registry_dir, runs=20, n=N, scenarios=("none",),
                  actor="olga")["none"]
    assert results["alerts"] <= 1, results["fired"]
    # Label-free estimate within 5 points of the realized accuracy in every run.
    assert results["max_cbpe_gap"] <= 0.05


def test_documented_scenarios_alert_in_every_seeded_run(registry_copy):
    results = run(registry_copy.registry_dir, runs=3, n=N, scenarios=MUST_ALERT, actor="olga")
    for scenario in MUST_ALERT:
        assert results[scenario]["alerts"] == 3, (scenario, results[scenario]["fired"])
    assert results["brightness"]["max_cbpe_gap"] <= 0.05
