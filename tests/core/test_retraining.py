"""The retraining recipe and its quality bar on real Fashion-MNIST."""

from datetime import datetime, timezone

import pytest

from core.lifecycle import (find_comparison, open_prediction_log, open_registry, predict_image,
                            record_feedback, retrain, simulate)
from core.images import encode_png
from core.retraining import RetrainParams
from core.serving import ModelCache
from tests.conftest import FIXED_NOW, fashion_test_images

pytestmark = pytest.mark.slow
# A demo visitor who has not signed in (the anonymous role is viewer by default).
VISITOR_FEEDBACK = dict(actor="anonymous", now=FIXED_NOW)
VISITOR = VISITOR_FEEDBACK | {"source": "upload"}


def clock():
    return datetime.now(timezone.utc)


def test_retrain_after_brightness_drift_beats_the_champion(registry_copy):
    cache = ModelCache()
    simulate(registry_copy, cache, actor="olga", scenario="brightness", severity=0.3, n=500, clock=clock)
    candidate, comparison = retrain(registry_copy, cache, actor="olga", now=FIXED_NOW)
    assert candidate.status == "candidate" and candidate.parent == 1
    assert candidate.metadata["recipe"]["kind"] == "fine-tune from the champion's weights"
    assert candidate.metadata["recipe"]["include"] == ["brightness"]  # seen in traffic
    composition = candidate.metadata["dataset"]["retraining_data"]
    assert composition["logged"] == {"simulation:brightness": 500}
    drifted = comparison["holdouts"]["drifted:brightness"]
    assert drifted["accuracy_diff"] > 0 and drifted["mcnemar_p"] < 0.05
    assert comparison["holdouts"]["clean"]["accuracy_diff"] >= -0.005
    assert comparison["recommendation"] == "promote"
    assert find_comparison(registry_copy, 1, candidate.version) == comparison  # stored
    assert open_registry(registry_copy).get_champion().version == 1


def test_the_seed_notebooks_reinitialised_retrain_is_rejected(registry_copy):
    """clone_model without the weights (the seed's v2 scored 0.25): the gate says reject."""
    cache = ModelCache()
    simulate(registry_copy, cache, actor="olga", scenario="brightness", n=300, clock=clock)
    broken = RetrainParams(reinitialize=True, epochs=1, original_images=500,
                           augmented_per_scenario=100)
    candidate, comparison = retrain(registry_copy, cache, actor="olga", now=FIXED_NOW,
                                    params=broken)
    assert candidate.metadata["recipe"]["kind"].startswith("reinitialized")
    assert comparison["holdouts"]["clean"]["accuracy_diff"] < -0.02
    assert comparison["recommendation"] == "reject"


def test_feedback_joins_the_pool_and_the_realized_accuracy(registry_copy):
    cache = ModelCache()
    images, labels = fashion_test_images(3)
    log = open_prediction_log(registry_copy)
    for image, label in zip(images, labels):
        prediction, _ = predict_image(registry_copy, cache, encode_png(image), **VISITOR)
        record_feedback(registry_copy, prediction, prediction.label,  # "this is right"
                        **VISITOR_FEEDBACK)
    record_feedback(registry_copy, prediction, "Bag",  # a correction replaces the label
                    **VISITOR_FEEDBACK)
    pngs, stored, sources = log.labelled_images("classifier", ("upload",))
    assert len(pngs) == 3 and sources == ["upload"] * 3
    assert stored[-1] == 8  # Bag
    params = RetrainParams(epochs=1, original_images=500, augmented_per_scenario=100)
    candidate, _ = retrain(registry_copy, cache, actor="olga", now=FIXED_NOW, include=[],
                           params=params)
    assert candidate.metadata["dataset"]["retraining_data"]["feedback"] == {"train": 3,
                                                                            "holdout": 0}
    with pytest.raises(Exception, match="unknown class 'Hat'"):
        record_feedback(registry_copy, prediction, "Hat", **VISITOR_FEEDBACK)
