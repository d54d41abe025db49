"""Labels with provenance: who said what a logged image is, and when. A visitor's label is
a suggestion that reaches nothing (retraining, realized accuracy, the gate) until a
signed-in user confirms it; people's uploads are shown to signed-in users only."""

from __future__ import annotations

import pytest

from core.app import (
    explain_disagreements,
    label_prediction,
    label_queue,
    predict_image,
)
from core.app.train import feedback_split
from core.errors import ActionRefused
from core.ml.images import encode_png
from tests.conftest import FIXED_NOW, backends_of, fashion_test_images

NOW = dict(now=FIXED_NOW)


@pytest.fixture
def uploaded(registry_copy):
    """Three uploads by visitors: (backends, their log ids, the version's class names)."""
    backends = backends_of(registry_copy)
    images, _ = fashion_test_images(3)
    ids = [predict_image(backends, encode_png(image), actor="anonymous", source="upload",
                         **NOW)[0].log_id for image in images]
    return backends, ids, backends.registry.get_version(1).class_names


def feedback_sizes(backends) -> int:
    spec = backends.registry.get_version(1).metadata.spec
    train, holdout = feedback_split(backends, spec)
    return len(train) + len(holdout)


def test_an_anonymous_label_never_reaches_retraining_or_accuracy(uploaded):
    backends, ids, names = uploaded
    audit_before = len(backends.audit_log.read_entries())
    for _ in range(50):  # a visitor insisting: one pending suggestion, no audit flood
        kept = label_prediction(backends, ids[0], names[3], actor="anonymous", **NOW)
    assert not kept.counted and kept.by == "anonymous"
    assert feedback_sizes(backends) == 0  # what the next retraining would learn from
    assert backends.prediction_log.labelled_images("classifier", ("upload",))[0] == []
    # What realized accuracy (and the gate's McNemar test) reads: no true class.
    assert (backends.prediction_log.window("classifier", 1).true_labels == -1).all()
    assert len(backends.audit_log.read_entries()) == audit_before
    assert len(backends.prediction_log.labels("classifier", [ids[0]])) == 1
    # The queue shows it to a signed-in user, who confirms it: now it counts, audited.
    queue = label_queue(backends, 1, actor="vic", **NOW)
    assert [i.suggestion for i in queue.items if i.log_id == ids[0]] in ([names[3]], [])
    confirmed = label_prediction(backends, ids[0], names[3], actor="vic", **NOW)
    assert confirmed.counted and feedback_sizes(backends) == 1
    entry = backends.audit_log.read_entries()[-1]
    assert (entry.action, entry.actor, entry.target) == ("label", "vic", f"prediction {ids[0]}")
    assert entry.details["confirms"]["by"] == "anonymous" and entry.details["previous"] is None


def test_each_label_keeps_who_and_when_and_a_later_one_replaces_it(uploaded):
    backends, ids, names = uploaded
    label_prediction(backends, ids[1], names[0], actor="vic", **NOW)
    label_prediction(backends, ids[1], names[6], actor="rita", **NOW)
    history = backends.prediction_log.labels("classifier", [ids[1]])
    assert [(h.by, h.label, h.counted) for h in history] == [("vic", 0, True),
                                                            ("rita", 6, True)]
    _, stored, _ = backends.prediction_log.labelled_images("classifier", ("upload",))
    assert stored.tolist() == [6]
    last = backends.audit_log.read_entries()[-1]
    assert (last.actor, last.details["previous"], last.details["class"]) == (
        "rita", 0, names[6])


def test_uploaded_images_are_shown_to_signed_in_users_only(uploaded):
    backends, ids, _ = uploaded
    for show in (lambda: label_queue(backends, 1, actor="anonymous", **NOW),
                 lambda: explain_disagreements(backends, 1, 1, ids, actor="anonymous",
                                               **NOW)):
        with pytest.raises(ActionRefused, match="signing in is required"):
            show()
    assert label_queue(backends, 1, actor="vic", **NOW).version == 1
