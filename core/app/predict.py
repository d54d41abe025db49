"""Use cases on one image: predict (and log) and explain with Grad-CAM (corrections go
through ``core.app.review_queue.label_prediction``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from core.app.backends import Backends
from core.app.routing import Instance, Origin, log_records, predict_routed
from core.app.uploads import RequestPixels
from core.errors import InvalidInput
from core.governance.traffic import Assignment
from core.ml.comparison import comparison_holdout
from core.ml.data import load_version_dataset
from core.ml.gradcam import fit_for_display, overlay
from core.ml.images import DecodedImage, decode_logged, preprocess, preprocess_batch
from core.ml.ood import QUANTILE
from core.ml.predictor import Prediction
from core.ml.scenarios import get_scenario
from core.monitoring.log_records import check_source
from core.registry.records import ModelVersion
from core.text import N_


@dataclass(frozen=True)
class Explanation:
    prediction: Prediction
    explained_class: str
    # float32 [h, w] in [0, 1] at the model's input size; None: the version's format has
    # no layers to look inside (a SavedModel), and front ends say so.
    heatmap: np.ndarray | None
    image: np.ndarray  # uint8 [H, W, 3]: the upload as decoded, sized like the overlay
    overlay: np.ndarray  # uint8 [H, W, 3] (the image itself when there is no heatmap)

    @property
    def heatmap_empty(self) -> bool:
        """No region raised the explained class's score: the overlay shows no heat, and
        front ends say so rather than draw a map that claims where the model looked."""
        return self.heatmap is not None and is_empty(self.heatmap)


def is_empty(heatmap: np.ndarray) -> bool:
    return not heatmap.any()


NO_HEATMAP = N_("Heatmaps are not available for this model format: this version was "
                "registered from a TF SavedModel, which has no layers to look inside.")
EMPTY_HEATMAP = N_("The heatmap for '{name}' is empty: no region of this image raised that "
                   "class's score, so there is nothing to highlight.")
UNFAMILIAR_WARNING = N_("This image is unlike the training images — it is farther from them "
                        "than {quantile} of the validation images (unfamiliarity {score}) "
                        "and the model only knows {classes}, so treat the answer with caution.")


def unfamiliar_warning(prediction: Prediction,
                       translate: Callable[[str], str] = lambda text: text,
                       class_name: Callable[[str], str] = lambda name: name) -> str | None:
    """What front ends say about an image the OOD detector flags (None: not flagged, or
    the version has no detector); ``translate`` and ``class_name`` put the sentence in the
    reader's language."""
    if not prediction.unfamiliar:
        return None
    return translate(UNFAMILIAR_WARNING).format(
        quantile=f"{QUANTILE:.0%}", score=f"{prediction.ood_score:.2f}",
        classes=", ".join(map(class_name, prediction.probabilities)))


# A person at the dashboard (or CLI) waits this long for the process's decoding budget
# before being told the server is busy; the API answers 503 at once instead.
INTERACTIVE_WAIT_SECONDS = 10


def predict_image(backends: Backends, data: bytes, *, actor: str, source: str,
                  now: datetime, version: int | None = None
                  ) -> tuple[Prediction, DecodedImage]:
    """Predicts one uploaded file with ``version`` (default: the champion) and logs it."""
    with backends.decoder.request(wait=INTERACTIVE_WAIT_SECONDS) as pixels:
        prediction, decoded, _ = _predict(backends, data, pixels, actor=actor, source=source,
                                          now=now, version=version)
    return prediction, decoded


def _predict(backends: Backends, data: bytes, pixels: RequestPixels, *, actor: str,
             source: str, now: datetime, version: int | None
             ) -> tuple[Prediction, DecodedImage, ModelVersion]:
    """``predict_image`` within a reservation of decoded pixels, also returning the
    version that answered."""
    started = time.perf_counter()
    check_source(source)
    backends.access.authorize(actor, "predict", now)
    model_version = backends.registry.resolve(version)
    # Validate the upload before loading any model: a bad file costs nothing.
    (decoded,) = backends.decoder.decode([data], pixels)
    instances = [Instance(image=decoded)]
    routed = predict_routed(lambda _: backends.models.predictor(model_version), instances,
                            Assignment(model_version.version, "direct"), started)
    (log_id,) = backends.prediction_log.append(
        log_records(routed, instances, backends.model, Origin(source, now)))
    return replace(routed.answers[0], log_id=log_id), decoded, model_version


def explain_image(backends: Backends, data: bytes, *, actor: str, source: str,
                  now: datetime, version: int | None = None, class_name: str | None = None,
                  wait: float = INTERACTIVE_WAIT_SECONDS,
                  heatmap_required: bool = False) -> Explanation:
    """Predicts (and logs) one uploaded file and explains a class (default: the predicted).

    Args:
        wait: seconds to wait for room in the process's decoding budget (the API: 0).
        heatmap_required: refuse (NotAvailable, nothing logged) a version without layers
            rather than answer without a heatmap (the API's and the CLI's explain).
    """
    if heatmap_required:
        backends.registry.resolve(version).metadata.require_layers("heatmaps are")
    if class_name is not None:  # an unknown class is refused before anything is logged
        names = backends.registry.resolve(version).class_names
        if class_name not in names:
            raise InvalidInput(f"unknown class {class_name!r}. To fix this, choose one of: "
                               f"{', '.join(names)}.")
    with backends.decoder.request(wait=wait) as pixels:
        prediction, decoded, model_version = _predict(backends, data, pixels, actor=actor,
                                                      source=source, now=now, version=version)
        return _explain(backends, prediction, decoded, model_version, class_name)


def _explain(backends: Backends, prediction: Prediction, decoded: DecodedImage,
             model_version: ModelVersion, class_name: str | None) -> Explanation:
    class_names = model_version.class_names
    if not model_version.metadata.has_layers:
        shown = fit_for_display(decoded.pixels)
        return Explanation(prediction, prediction.label, None, shown, shown)
    class_index = None if class_name is None else class_names.index(class_name)
    gradcam = backends.models.gradcam(model_version)
    predictor = backends.models.predictor(model_version)
    heatmap, explained = gradcam.heatmap(preprocess(decoded.pixels, predictor.input_spec),
                                         class_index)
    return Explanation(prediction, class_names[explained], heatmap,
                       fit_for_display(decoded.pixels), overlay(decoded.pixels, heatmap))


@dataclass(frozen=True)
class SideBySide:
    """One image explained by several versions (the Governance page's heatmaps)."""

    true_class: str
    image: np.ndarray  # uint8 [H, W, 3], sized like the overlays
    predicted: dict[int, str]  # version -> predicted class
    overlays: dict[int, np.ndarray]  # version -> uint8 [H, W, 3] Grad-CAM overlay
    empty_maps: set[int]  # versions whose heatmap is empty (nothing raised the score)
    # versions whose format has no heatmaps (a SavedModel): their overlay is the image
    no_heatmaps: set[int] = field(default_factory=set)


def explain_side_by_side(backends: Backends, versions: list[int], *, actor: str,
                         now: datetime, n: int = 4, scenario: str | None = None,
                         seed: int = 0) -> list[SideBySide]:
    """Grad-CAM of each version on the same ``n`` comparison-holdout images.

    The images come from the holdout comparisons use (never traffic), drifted by
    ``scenario`` at its default severity if given, so heatmaps show what each version
    looks at on the data the decision is about.
    """
    backends.access.authorize(actor, "view", now, target="heatmaps")
    chosen = [backends.registry.get_version(v) for v in versions]
    holdout = comparison_holdout(load_version_dataset(
        chosen[0].metadata, backends.config.fashion_mnist_dir).test)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(holdout), min(n, len(holdout)), replace=False)
    images = np.asarray(holdout.images[picks])
    if scenario is not None:
        transform = get_scenario(scenario)
        images = np.stack([transform.transform(image, transform.default_severity, rng)
                           for image in images])
    class_names = chosen[0].class_names
    return _side_by_side(backends, chosen, images,
                         [class_names[holdout.labels[i]] for i in picks])


def explain_disagreements(backends: Backends, champion: int, candidate: int,
                          prediction_ids: list[int], *, actor: str,
                          now: datetime) -> list[SideBySide]:
    """Grad-CAM of both versions on logged live images they disagreed on (the ids of the
    candidate's shadow rows, as ``LiveEvidence.disagreements`` lists them). People's
    uploads: for signed-in users only."""
    backends.access.authorize_signed_in(actor, "view", now, target="uploaded images")
    chosen = [backends.registry.get_version(v) for v in (champion, candidate)]
    logged = backends.prediction_log.images(backends.model, prediction_ids)
    if not logged:
        return []
    class_names = chosen[0].class_names
    images = decode_logged([png for png, _ in logged],
                           chosen[0].metadata.spec)
    return _side_by_side(backends, chosen, images,
                         [class_names[label] if label >= 0 else "unknown"
                          for _, label in logged])


def _side_by_side(backends: Backends, chosen: list[ModelVersion], images: np.ndarray,
                  true_classes: list[str]) -> list[SideBySide]:
    class_names = chosen[0].class_names
    results = [SideBySide(true_class, fit_for_display(image), {}, {}, set())
               for true_class, image in zip(true_classes, images)]
    for version in chosen:
        spec = version.metadata.spec
        if not version.metadata.has_layers:
            predictor = backends.models.predictor(version)
            predicted = predictor.predict_batch(preprocess_batch(images, spec))[0].argmax(axis=1)
            for result, index in zip(results, predicted):
                result.predicted[version.version] = class_names[int(index)]
                result.overlays[version.version] = result.image
                result.no_heatmaps.add(version.version)
            continue
        gradcam = backends.models.gradcam(version)
        for result, image in zip(results, images):
            heatmap, predicted = gradcam.heatmap(preprocess(image, spec))
            result.predicted[version.version] = class_names[predicted]
            result.overlays[version.version] = overlay(image, heatmap)
            if is_empty(heatmap):
                result.empty_maps.add(version.version)
    return results
