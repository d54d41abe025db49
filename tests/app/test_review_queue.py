"""The review queue on real models and real API traffic: which live images it asks about,
where people's labels go, and a version's top losses on the holdout."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.app import drift_for_version, label_prediction, label_queue, model_card, set_traffic, top_losses
from core.app.review_queue import LOW_CONFIDENCE, REASONS
from core.app.train import feedback_split
from core.app.vocabulary import NONE_OF_THESE_CLASSES
from core.errors import InvalidInput
from core.ml.comparison import comparison_holdout
from core.ml.data import load_version_dataset
from core.ml.images import InputSpec, encode_png, preprocess_batch
from core.serving.api import create_app
from tests.cli_runner import run_cli
from tests.conftest import FIXED_NOW, backends_of, fashion_test_images, salt_noise

pytestmark = pytest.mark.slow
MODEL = "/v1/models/classifier"


def predict_all(backends, version: int, images: np.ndarray):
    """(probabilities, OOD flags) of ``version`` on uint8 images, straight from its predictor."""
    predictor = backends.models.predictor(backends.registry.get_version(version))
    probabilities, embeddings = predictor.predict_batch(
        preprocess_batch(images, predictor.input_spec))
    return probabilities, predictor.ood.unfamiliar(predictor.ood.scores(embeddings))


def pick_traffic(backends):
    """Test images chosen by what v1 and v2 do with them: some they answer differently, some
    v1 answers with low confidence, some confidently alike (nothing to ask), and noise."""
    images, labels = fashion_test_images(600)
    v1, familiar = predict_all(backends, 1, images)
    v2, _ = predict_all(backends, 2, images)
    differ = v1.argmax(1) != v2.argmax(1)
    unsure = (v1.max(1) < LOW_CONFIDENCE) & ~differ & ~familiar
    sure = (v1.max(1) > 0.99) & ~differ & ~familiar
    picks = {"disputed": np.flatnonzero(differ)[:4], "unsure": np.flatnonzero(unsure)[:4],
             "sure": np.flatnonzero(sure)[:25]}
    assert [len(p) for p in picks.values()] == [4, 4, 25]
    return images, labels, picks, v2.argmax(1)


def send(client, image: np.ndarray, request_id: str) -> None:
    reply = client.post(f"{MODEL}:predict", headers={"X-Request-ID": request_id}, json={
        "instances": [{"b64": base64.b64encode(encode_png(image)).decode()}]})
    assert reply.status_code == 200, reply.text


def test_the_queue_asks_about_unfamiliar_disputed_and_unsure_images_and_labels_count(
        candidate_copy):
    backends = backends_of(candidate_copy)
    images, labels, picks, v2_answers = pick_traffic(backends)
    set_traffic(backends, actor="rita", mode="shadow", candidate=2, percent=None,
                reason="see v2 on live traffic", now=FIXED_NOW)
    ids = {}
    with TestClient(create_app(candidate_copy)) as client:
        for kind, indices in picks.items():
            for i in indices:
                send(client, images[i], f"{kind}-{i}")
        for seed in range(3):
            send(client, salt_noise(seed), f"noise-{seed}")
    for request_id, row_id in backends.prediction_log.database.read(
            "SELECT request_id, id FROM predictions WHERE version = 1"):
        ids[request_id] = row_id

    queue = label_queue(backends, None, actor="vic", now=FIXED_NOW, n=50)
    assert queue.version == 1 and queue.scanned == 36  # every row, none labelled yet
    by_id = {item.log_id: item for item in queue.items}
    for seed in range(3):
        assert "unfamiliar" in by_id[ids[f"noise-{seed}"]].reasons
    for i in picks["disputed"]:
        item = by_id[ids[f"disputed-{i}"]]
        assert "disagreement" in item.reasons and item.candidate == 2
        assert item.candidate_label == backends.registry.get_version(2).class_names[
            v2_answers[i]]
    for i in picks["unsure"]:
        item = by_id[ids[f"unsure-{i}"]]
        assert item.reasons == ("low confidence",) and item.confidence < LOW_CONFIDENCE
    assert not {ids[f"sure-{i}"] for i in picks["sure"]} & set(by_id)  # nothing to ask
    # Every flagged row fits in 50 items, so the counts are those of the items.
    assert queue.counts == {r: sum(r in item.reasons for item in queue.items) for r in REASONS}
    assert queue.counts["disagreement"] >= 4 and queue.counts["unfamiliar"] >= 3
    order = [(-len(item.reasons), item.confidence) for item in queue.items]
    assert order == sorted(order)  # more reasons first, then the least sure
    assert all(set(item.reasons) <= set(REASONS) for item in queue.items)
    assert queue.items[0].image.shape[2] == 3

    # Labels: two classes and one "none of these classes" (by a viewer).
    names = backends.registry.get_version(1).class_names
    disputed, unsure = picks["disputed"][0], picks["unsure"][0]
    label_prediction(backends, ids[f"disputed-{disputed}"], names[labels[disputed]],
                     actor="vic", now=FIXED_NOW)
    label_prediction(backends, ids[f"unsure-{unsure}"], names[labels[unsure]],
                     actor="vic", now=FIXED_NOW)
    label_prediction(backends, ids["noise-0"], NONE_OF_THESE_CLASSES, actor="vic",
                     now=FIXED_NOW)

    # Realized accuracy counts the two class labels, not the noise.
    report = drift_for_version(backends, actor="vic", now=FIXED_NOW, version=1,
                               sources=["api"])
    v1_answers = predict_all(backends, 1, images[[disputed, unsure]])[0].argmax(1)
    assert report.labelled == 2 and report.details["none_of_these"] == 1
    assert report.realized_accuracy == np.mean(v1_answers == labels[[disputed, unsure]])
    # The next retraining learns from the two, never from the noise.
    train, holdout = feedback_split(backends, InputSpec.from_dict(
        backends.registry.get_version(1).metadata.input_spec))
    assert sorted(train.labels.tolist()) == sorted([labels[disputed], labels[unsure]])
    assert len(holdout) == 0
    # The queue no longer asks about them, and counts the noise as OOD evidence.
    after = label_queue(backends, None, actor="vic", now=FIXED_NOW, n=50)
    assert after.scanned == 33
    assert not {ids[f"disputed-{disputed}"], ids["noise-0"]} & {
        item.log_id for item in after.items}
    assert (after.none_of_these, after.none_of_these_flagged) == (1, 1)
    card = model_card(backends, 1, actor="vic", now=FIXED_NOW).render("md")
    assert ("| live images labelled 'none of these classes' | 1, of which the detector had "
            "flagged 1 |") in card

    with pytest.raises(InvalidInput, match="unknown class 'Hat'.*none of these classes"):
        label_prediction(backends, ids["noise-1"], "Hat", actor="vic", now=FIXED_NOW)
    with pytest.raises(InvalidInput, match="there is no prediction 999999"):
        label_prediction(backends, 999_999, "Bag", actor="vic", now=FIXED_NOW)

    # The CLI: the same queue as JSON, and labelling by id.
    registry = candidate_copy.registry_dir
    printed = json.loads(run_cli(registry, "review", "queue", "--n", "50", "--json",
                                 "--actor", "vic").stdout)  # uploads: for signed-in users
    assert [item["id"] for item in printed["items"]] == [item.log_id for item in after.items]
    assert printed["none_of_these"] == 1
    result = run_cli(registry, "review", "label", str(ids["noise-1"]), "--none-of-these",
                     "--actor", "vic")
    assert result.returncode == 0 and "none of these classes" in result.stdout
    wrong = run_cli(registry, "review", "label", str(ids["noise-2"]), "--class", "Hat",
                    "--actor", "vic")
    assert wrong.returncode == 1 and "unknown class 'Hat'" in wrong.stderr
    assert backends.prediction_log.none_of_these_scores("classifier", 1).size == 2


def test_top_losses_are_the_holdout_mistakes_with_the_highest_loss(trained_config, tmp_path):
    backends = backends_of(trained_config)
    result = top_losses(backends, None, actor="vic", now=FIXED_NOW, n=5)
    version = backends.registry.get_version(1)
    holdout = comparison_holdout(load_version_dataset(
        version.metadata, trained_config.fashion_mnist_dir).test)
    probabilities, _ = predict_all(backends, 1, holdout.images)
    wrong = probabilities.argmax(1) != holdout.labels
    loss = -np.log(probabilities[np.arange(len(holdout)), holdout.labels])
    assert result.holdout == len(holdout) and result.mistakes == int(wrong.sum())
    assert [x.index for x in result.losses] == list(np.argsort(-np.where(wrong, loss, -1))[:5])
    for x in result.losses:
        assert x.true_class == version.class_names[holdout.labels[x.index]]
        assert x.predicted_class != x.true_class
        assert x.loss == pytest.approx(loss[x.index], rel=1e-4)
        assert x.side_by_side.shape[1] == 2 * x.image.shape[1]

    printed = run_cli(trained_config.registry_dir, "review", "losses", "--n", "3", "--json",
                      "--out", str(tmp_path))
    assert [x["index"] for x in json.loads(printed.stdout)["losses"]] == [
        x.index for x in result.losses[:3]]
    assert len(list(tmp_path.glob("loss-*.png"))) == 3
    missing = run_cli(trained_config.registry_dir, "review", "losses", "--n", "0")
    assert missing.returncode == 1 and "between 1 and 200" in missing.stderr
