"""Twenty visitors predicting at once while an operator retrains, against a real server.

Websocket sessions speak Streamlit's protocol as the browser does (bench/streamlit_client),
so twenty fit on two cores. The minute-long soak is ``python -m bench --only load``.
"""

import json

import pytest

from core.config import load_config
from tests.browser import running_dashboard
from tests.conftest import backends_of, copy_registry, fashion_test_images
from tests.e2e.conftest import SCREENSHOTS
from tests.load import run_load

pytestmark = pytest.mark.slow
SESSIONS, SECONDS = 20, 10
QUICK_RETRAIN = dict(epochs=1, original_images=1000, augmented_per_scenario=200)


def test_twenty_sessions_predict_while_an_operator_retrains(trained_registry, tmp_path):
    root = tmp_path / "registry"
    copy_registry(trained_registry, root)
    config = load_config({}).with_overrides(registry_dir=root)
    images, _ = fashion_test_images(2000)
    with running_dashboard(config) as (url, _):
        result = run_load(url, config, images, sessions=SESSIONS, seconds=SECONDS,
                          retrain_as="olga", retrain_params=QUICK_RETRAIN)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "load.json").write_text(json.dumps(result.summary(), indent=2))
    print(f"load: {result.summary()}")  # latencies, in the test log
    assert result.problems == []  # every upload answered; no error, no exception
    assert result.answers >= SESSIONS * 3  # each session really kept predicting
    assert result.logged == result.answers  # exactly one log row per prediction
    assert result.job.status == "succeeded", result.job.error  # retrained meanwhile
    assert backends_of(config).registry.get_version(result.job.result_version).status == "candidate"
