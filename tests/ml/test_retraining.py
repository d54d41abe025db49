"""The retraining recipe and its quality bar on real Fashion-MNIST."""

from datetime import UTC, datetime

import pytest

from core.app import (
    RetrainRequest,
    find_comparison,
    label_prediction,
    predict_image,
    retrain,
    simulate,
)
from core.ml.images import encode_png
from tests.conftest import FIXED_NOW, backends_of, fashion_test_images

pytestmark = pytest.mark.slow
# A demo visitor who has not signed in (the anonymous role is viewer by default).
VISITOR_FEEDBACK = dict(actor="anonymous", now=FIXED_NOW)
VISITOR = VISITOR_FEEDBACK | {"source": "upload"}
# Labels count when a signed-in user gives them (a visitor's are only suggestions).
SIGNED_IN_FEEDBACK = dict(actor="vic", now=FIXED_NOW)


def clock():
    return datetime.now(UTC)


def test_retrain_after_brightness_drift_beats_the_champion(registry_copy):
    backends = backends_of(registry_copy)
    simulate(backends, actor="olga", scenario="brightness", severity=0.3, n=500, clock=clock)
    # The default recipe but one epoch: the bench's retraining rows time the default.
    candidate, comparison = retrain(backends, RetrainRequest(epochs=1), actor="olga",
                                    now=FIXED_NOW)
    assert candidate.status == "candidate" and candidate.parent == 1
    assert candidate.metadata.recipe.kind == "fine-tune from the champion's weights"
    assert candidate.metadata.recipe.include == ["brightness"]  # seen in traffic
    composition = candidate.metadata.dataset.retraining_data
    assert composition["logged"] == {"simulation:brightness": 500}
    drifted = comparison.holdouts["drifted:brightness"]
    assert drifted.accuracy_diff > 0 and drifted.mcnemar_p < 0.05
    assert comparison.holdouts["clean"].accuracy_diff >= -0.005
    assert comparison.recommendation == "promote"
    assert find_comparison(backends, 1, candidate.version, actor="olga",
                           now=FIXED_NOW) == comparison  # stored
    assert backends.registry.get_champion().version == 1


def test_the_seed_notebooks_reinitialised_retrain_is_rejected(registry_copy):
    """clone_model without the weights (the seed's v2 scored 0.25): the gate says reject."""
    backends = backends_of(registry_copy)
    simulate(backends, actor="olga", scenario="brightness", n=300, clock=clock)
    broken = RetrainRequest(reinitialize=True, epochs=1, original_images=500,
                            augmented_per_scenario=100)
    candidate, comparison = retrain(backends, broken, actor="olga", now=FIXED_NOW)
    assert candidate.metadata.recipe.kind.startswith("reinitialized")
    assert comparison.holdouts["clean"].accuracy_diff < -0.02
    assert comparison.recommendation == "reject"


def test_feedback_joins_the_pool_and_the_realized_accuracy(registry_copy):
    backends = backends_of(registry_copy)
    images, _ = fashion_test_images(3)
    log = backends.prediction_log
    for image in images:
        prediction, _ = predict_image(backends, encode_png(image), **VISITOR)
        label_prediction(backends, prediction.log_id, prediction.label,  # "this is right"
                         **SIGNED_IN_FEEDBACK)
    label_prediction(backends, prediction.log_id, "Bag",  # a correction replaces the label
                     **SIGNED_IN_FEEDBACK)
    pngs, stored, sources = log.labelled_images("classifier", ("upload",))
    assert len(pngs) == 3 and sources == ["upload"] * 3
    assert stored[-1] == 8  # Bag
    request = RetrainRequest(include=(), epochs=1, original_images=500,
                             augmented_per_scenario=100)
    candidate, _ = retrain(backends, request, actor="olga", now=FIXED_NOW)
    assert candidate.metadata.dataset.retraining_data["feedback"] == {"train": 3,
                                                                            "holdout": 0}
    with pytest.raises(Exception, match="unknown class 'Hat'"):
        label_prediction(backends, prediction.log_id, "Hat", **SIGNED_IN_FEEDBACK)
