"""Model cards: one document a reviewer, an auditor or a new teammate reads about a version.

A card is built from what the registry already holds (metadata, the reference
profile, the OOD detector, the audit log) plus one measurement made when the card is
drawn: the version's accuracy on the comparison holdout under each drift scenario at
its default severity. It renders as Markdown or as one self-contained HTML file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from core.app.backends import Backends
from core.app.documents import FORMATS, Block, Bullets, Diagram, Document, Section, Table
from core.app.exports import stored_exports
from core.app.monitor import load_reference
from core.app.review import holdout_probabilities
from core.errors import RegistryError
from core.ml.comparison import PIXEL_SCENARIOS, build_holdouts, comparison_holdout
from core.ml.data import load_version_dataset
from core.ml.evaluation import ConfidenceBin, reliability
from core.ml.ood import QUANTILE, OodDetector
from core.ml.scenarios import SCENARIOS
from core.monitoring.report import ReferenceProfile
from core.registry.records import ModelVersion

CARD_FORMATS = FORMATS
RELIABILITY_BINS = 10


@dataclass(frozen=True)
class ModelCard:
    model: str
    version: int
    status: str
    sections: list[Section]

    @property
    def title(self) -> str:
        return f"Model card: {self.model} version {self.version} ({self.status})"

    def render(self, format_: str) -> str:
        return Document(self.title, self.sections).render(format_)


def model_card(backends: Backends, version: int, *, actor: str, now: datetime) -> ModelCard:
    """Builds the card of ``version`` (anyone who may view versions)."""
    backends.access.authorize(actor, "view", now, target=f"version {version}")
    model_version = backends.registry.get_version(version)
    meta = model_version.metadata
    test = meta.metrics["test"]
    try:
        reference = load_reference(backends, model_version)
    except RegistryError:
        reference = None
    robustness = _robustness(backends, model_version)
    sections = [
        _intended_use(model_version),
        _training_data(model_version),
        _lineage(model_version),
        _metrics(model_version),
        _calibration(test, reference),
        Section("Robustness to drift", [
            "Accuracy on the comparison holdout (the half of the test split never streamed "
            "as traffic) with each drift scenario applied at its default severity.",
            Table(["scenario", "severity", "accuracy", "change"], [
                [name, "—" if name == "clean" else f"{SCENARIOS[name].default_severity:g}",
                 f"{accuracy:.4f}",
                 "—" if name == "clean" else f"{accuracy - robustness['clean']:+.4f}"]
                for name, accuracy in robustness.items()])]),
        _ood(reference, backends.prediction_log.none_of_these_scores(
            backends.model, model_version.version)),
        _exports(backends, model_version),
        _known_limits(model_version, robustness, reference),
        _decisions(backends, model_version),
    ]
    return ModelCard(model_version.model, model_version.version, model_version.status,
                     sections)


def _intended_use(version: ModelVersion) -> Section:
    spec = version.metadata.input_spec
    colour = "greyscale" if spec["channels"] == 1 else "colour"
    return Section("Intended use and classes", [
        f"Classifies one image into one of {len(version.class_names)} classes, for the "
        "kind of images it was trained on (below). Images are resized to "
        f"{spec['width']}×{spec['height']} {colour} before the model sees them. Every "
        "answer carries an out-of-distribution score; treat answers flagged unfamiliar "
        "with caution. Not for decisions about people.",
        Table(["index", "class"], [[str(i), name] for i, name in
                                   enumerate(version.class_names)])])


def _training_data(version: ModelVersion) -> Section:
    data = version.metadata.dataset
    blocks: list[Block] = [
        f"Dataset `{data.name}`, split `{data.split_spec}`; content fingerprint "
        f"`{data.fingerprint}` (changes whenever any image or label does).",
        Table(["split", "images"], [[name, f"{count:,}"] for name, count in
                                    data.sizes.items()])]
    if data.retraining_data:
        blocks.append(Table(["retraining data", "images"], [
            [name, str(count)] for name, count in data.retraining_data.items()]))
    return Section("Training data", blocks)


def _lineage(version: ModelVersion) -> Section:
    meta = version.metadata
    rows = [["architecture", meta.architecture],
            ["parent version", "—" if meta.parent is None else str(meta.parent)],
            ["created", f"{meta.created_at} by {meta.created_by}"],
            ["epochs", str(meta.epochs)],
            ["training time", f"{meta.training_seconds:g} s"],
            ["hyperparameters", ", ".join(f"{k}={v}" for k, v in
                                          sorted(meta.hyperparameters.items()))]]
    if meta.recipe is not None:
        rows.append(["recipe", f"{meta.recipe.kind}; job {meta.recipe.job}; scenarios "
                               f"{', '.join(meta.recipe.include) or 'none'}"])
    if meta.source is not None:  # a model trained elsewhere: where it came from
        source = meta.source
        written_by = (f"TensorFlow {source.get('tensorflow_version') or 'unknown'}"
                      if source["format"] == "saved_model"
                      else f"Keras {source.get('keras_version') or 'unknown'}")
        rows += [["registered from", f"{source['file']} ({source['format']}, {written_by})"],
                 ["file hash", str(source["sha256"])],
                 ["takes pixels in", f"[{source['input_range']}]; outputs {source['outputs']}"],
                 ["serving (TFLite) agreement with Keras",
                  f"{source.get('serving_agreement', 0):.2%} of the test split"],
                 ["served by", "TFLite" if meta.serving_runtime == "tflite" else
                  "TensorFlow, from the SavedModel (the TFLite conversion changed answers)"]]
    if meta.environment.get("git_commit"):
        rows.append(["code (git commit)", str(meta.environment["git_commit"])])
    return Section("Lineage", [Table(["what", "value"], rows)])


def _metrics(version: ModelVersion) -> Section:
    metrics = version.metadata.metrics
    names = version.class_names
    test = metrics["test"]
    return Section("Metrics", [
        Table(["split", "images", "accuracy", "macro-F1", "ECE"], [
            [split, f"{m['n']:,}", f"{m['accuracy']:.4f}", f"{m['macro_f1']:.4f}",
             f"{m['ece']:.4f}"] for split, m in metrics.items()]),
        "Per class, on the test split:",
        Table(["class", "precision", "recall", "F1", "images"], [
            [name, f"{test['per_class'][name]['precision']:.3f}",
             f"{test['per_class'][name]['recall']:.3f}",
             f"{test['per_class'][name]['f1']:.3f}",
             str(test['per_class'][name]['support'])] for name in names]),
        "Confusion matrix on the test split (rows: true class; columns: predicted):",
        Table(["true \\ predicted", *[str(i) for i in range(len(names))]], [
            [f"{i} {name}", *[str(c) for c in row]]
            for i, (name, row) in enumerate(zip(names, test["confusion_matrix"]))]),
    ])


def _calibration(test: dict, reference: ReferenceProfile | None) -> Section:
    blocks: list[Block] = [f"Expected calibration error on the test split: {test['ece']:.4f} "
                           "(0 = confidences match accuracy)."]
    if reference is None:
        return Section("Calibration", blocks + [
            "No reference profile: the reliability diagram needs one "
            "(python -m core profile --version N)."])
    bins = reliability(reference.labels, reference.probabilities, RELIABILITY_BINS)
    blocks += [
        _reliability_svg(bins),
        Table(["confidence", "images", "mean confidence", "accuracy"], [
            [f"{b.low:.1f}–{b.high:.1f}", str(b.count),
             "—" if b.mean_confidence is None else f"{b.mean_confidence:.3f}",
             "—" if b.accuracy is None else f"{b.accuracy:.3f}"] for b in bins])]
    return Section("Calibration", blocks)


def _reliability_svg(bins: list[ConfidenceBin]) -> Diagram:
    """Accuracy per confidence bin as bars against the diagonal of perfect calibration."""
    size, pad = 240, 30
    plot = size - 2 * pad
    bars = []
    for b in bins:
        if b.accuracy is None:
            continue
        height = b.accuracy * plot
        bars.append(f"<rect x='{pad + b.low * plot:.1f}' y='{pad + plot - height:.1f}' "
                    f"width='{(b.high - b.low) * plot - 1:.1f}' height='{height:.1f}' "
                    f"fill='#4c78a8'><title>{b.low:.1f}–{b.high:.1f}: accuracy "
                    f"{b.accuracy:.3f}, {b.count} images</title></rect>")
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' width='{size}' height='{size}' "
           f"role='img' aria-label='reliability diagram'>"
           f"<rect x='{pad}' y='{pad}' width='{plot}' height='{plot}' fill='none' "
           f"stroke='#999'/>{''.join(bars)}"
           f"<line x1='{pad}' y1='{pad + plot}' x2='{pad + plot}' y2='{pad}' "
           f"stroke='#e45756' stroke-dasharray='4'/>"
           f"<text x='{size / 2}' y='{size - 8}' text-anchor='middle' font-size='11'>"
           f"confidence</text><text x='10' y='{size / 2}' font-size='11' "
           f"transform='rotate(-90 10 {size / 2})' text-anchor='middle'>accuracy</text></svg>")
    return Diagram(svg, "Reliability diagram on the validation split: accuracy per "
                        "confidence bin (bars) against perfect calibration (dashed).")


def _robustness(backends: Backends, version: ModelVersion) -> dict[str, float]:
    test = load_version_dataset(version.metadata, backends.config.fashion_mnist_dir).test
    holdouts = build_holdouts(comparison_holdout(test), list(PIXEL_SCENARIOS), seed=0)
    probabilities = holdout_probabilities(backends.models.predictor(version), holdouts)
    return {h.name.removeprefix("drifted:"):
            float(np.mean(probabilities[h.name].argmax(axis=1) == h.labels))
            for h in holdouts}


def _ood(reference: ReferenceProfile | None, none_of_these: np.ndarray) -> Section:
    """``none_of_these``: the OOD scores of live images people said fit no class."""
    detector = None if reference is None else reference.ood
    if detector is None:
        return Section("Out-of-distribution detection", [
            "This version has no OOD detector (registered before there were any): its "
            "answers carry no ood_score. Add one with python -m core profile --version N."])
    return Section("Out-of-distribution detection", [
        "Each answer's ood_score is the distance of its penultimate-layer embedding (unit "
        f"length) to its {detector.neighbours}th-nearest of {len(detector.bank):,} "
        "training images' embeddings; above the threshold the image is flagged "
        "unfamiliar.",
        Table(["what", "value"], [
            ["threshold", f"{detector.threshold:.4f} (the validation scores' "
                          f"{QUANTILE * 100:.0f}th percentile)"],
            ["validation images flagged", f"{detector.validation_rate:.2%} of "
                                          f"{len(detector.validation_scores):,}"],
            ["validation score median", f"{float(np.median(detector.validation_scores)):.4f}"],
            ["live images labelled 'none of these classes'", _none_of_these(
                detector, none_of_these)],
        ])])


def _exports(backends: Backends, version: ModelVersion) -> Section:
    table = stored_exports(backends, version.version)
    if table is None:
        return Section("Exports", [
            "The portable exports (quantized TFLite, ONNX) are not built yet: python -m core "
            f"exports {version.version} builds and measures them."])
    return Section("Exports", [
        "Each format measured on the clean comparison holdout: agreement with the float "
        "Keras model and median latency for one image on the machine that built them.",
        Table(["format", "size", "accuracy", "agreement", "max probability difference",
               "latency"], [
            [row["format"], f"{row['size_bytes'] / 1e6:.2f} MB", f"{row['accuracy']:.4f}",
             f"{row['agreement']:.4f}", f"{row['max_abs_diff']:.1e}",
             f"{row['latency_ms']:.3f} ms"] for row in table])])


def _none_of_these(detector: OodDetector, scores: np.ndarray) -> str:
    """How many images people put outside the classes, and how many of those the detector
    had flagged: the only live check of the flag against people's judgement."""
    if not len(scores):
        return "none yet (the review queue collects them)"
    return (f"{len(scores)}, of which the detector had flagged "
            f"{int(np.sum(detector.unfamiliar(scores)))}")


def _known_limits(version: ModelVersion, robustness: dict[str, float],
                  reference: ReferenceProfile | None) -> Section:
    test = version.metadata.metrics["test"]
    weakest = sorted(version.class_names, key=lambda name: test["per_class"][name]["f1"])[:2]
    worst = min((name for name in robustness if name != "clean"),
                key=lambda name: robustness[name], default=None)
    limits = [
        f"It only knows its {len(version.class_names)} classes: any other image still gets "
        "one of them, often with high confidence.",
        f"Weakest classes on the test split: {', '.join(weakest)} (lowest F1).",
    ]
    if worst is not None:
        limits.append(f"Most harmful drift measured: {worst} (accuracy "
                      f"{robustness[worst]:.4f} against {robustness['clean']:.4f} clean).")
    limits.append(f"Trained on {version.metadata.dataset.name} only: photos with other "
                  "backgrounds, framing or colours are out of distribution.")
    if reference is None or reference.ood is None:
        limits.append("No OOD detector: unfamiliar images are not flagged.")
    else:
        limits.append("The unfamiliar flag is strict (about 1 % of validation images): "
                      "many unlike images score high without crossing the threshold.")
    return Section("Known limits", [Bullets(limits)])


def _decisions(backends: Backends, version: ModelVersion) -> Section:
    entries = [e for e in backends.audit_log.read_entries(backends.model)
               if e.version == version.version and e.outcome == "done"]
    verification = backends.audit_log.verify()
    chain = (f"The audit chain verifies: {verification.entries} entries, head "
             f"{verification.head_hash}." if verification.ok else
             f"The audit chain does NOT verify: {verification.problem} (first bad entry "
             f"{verification.first_bad}).")
    return Section("Decision history", [
        chain,
        Table(["seq", "at", "who", "action", "reason", "entry hash"], [
            [str(e.seq), e.at, f"{e.actor} ({e.role})", e.action, e.reason or "—",
             e.hash or "—"] for e in entries])])
