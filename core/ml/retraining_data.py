"""What a retraining learns from: the mix of original, augmented, logged and corrected images.

Pure numpy; the application gathers the logged images and feedback from the
prediction log and passes them in. The mix is lazy (``Concatenated``): the originals
stay where the dataset keeps them (a folder's, on disk) and each augmented copy is made
when training reads it, from its own seed, so that 20,000 originals and 8,000 copies per
scenario at 224x224 RGB (4 GB and more as uint8) never sit in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.ml.comparison import PIXEL_SCENARIOS
from core.ml.data import Dataset, Split
from core.ml.image_sets import Concatenated, Images, LazyImages, Subset
from core.ml.images import InputSpec
from core.ml.params import RetrainParams
from core.ml.scenarios import SCENARIOS

# Where people's labels come from: corrections on the Predict page and the CLI, and the
# review queue's labels on any of these and on API traffic (simulations carry their own).
FEEDBACK_SOURCES = ("upload", "camera", "cli", "api")
FEEDBACK_HOLDOUT_EVERY = 5  # every 5th feedback image is held out for comparison...
FEEDBACK_HOLDOUT_MINIMUM = 20  # ...once there are enough to say something


class Augmented(LazyImages):
    """Drifted copies of some training images, each made when read: image ``i`` is
    ``picks[i]`` through the scenario at ``severities[i]`` with a generator seeded by
    ``seeds[i]`` (the same copy every epoch)."""

    def __init__(self, base: Images, picks: np.ndarray, scenario: str,
                 severities: np.ndarray, seeds: np.ndarray, spec: InputSpec):
        super().__init__(spec)
        self.base, self.picks, self.scenario = base, picks, SCENARIOS[scenario]
        self.severities, self.seeds = severities, seeds

    def __len__(self) -> int:
        return len(self.picks)

    def image(self, i: int) -> np.ndarray:
        return self.scenario.transform(np.asarray(self.base[int(self.picks[i])]),
                                       float(self.severities[i]),
                                       np.random.default_rng(int(self.seeds[i])))


@dataclass(frozen=True)
class RetrainingData:
    dataset: Dataset  # the champion's dataset (validation and test at its sizes)
    images: Images  # uint8 [N, h, w, c]: what the candidate learns from (lazy)
    labels: np.ndarray
    composition: dict  # counts per part, recorded in the candidate's metadata
    feedback_holdout: Split


def split_feedback(images: np.ndarray, labels: np.ndarray) -> tuple[Split, Split]:
    """User-labelled images: (training part, comparison holdout)."""
    held = np.zeros(len(labels), bool)
    if len(labels) >= FEEDBACK_HOLDOUT_MINIMUM:
        held[::FEEDBACK_HOLDOUT_EVERY] = True
    return Split(images[~held], labels[~held]), Split(images[held], labels[held])


def mix_retraining_data(dataset: Dataset, include: list[str], logged: Split,
                        logged_sources: list[str], feedback: tuple[Split, Split] | None,
                        params: RetrainParams) -> RetrainingData:
    """Original images + drift-augmented copies + logged drift samples + corrections.

    Args:
        include: the drift scenarios to learn from.
        logged: labelled drift samples from the log (uint8, at the input size), with
            ``logged_sources`` naming each one's source.
        feedback: (training part, holdout) of user corrections, or None to leave them out.
    """
    rng = np.random.default_rng(params.seed)
    train, spec = dataset.train, dataset.input_spec
    chosen = rng.choice(len(train), min(params.original_images, len(train)), replace=False)
    parts: list[tuple[Images, np.ndarray]] = [(Subset(train.images, chosen),
                                               train.labels[chosen])]
    composition: dict = {"original": int(len(chosen)), "augmented": {}, "logged": {}}
    for name in include:
        if name not in PIXEL_SCENARIOS:
            continue
        scenario = SCENARIOS[name]
        picks = rng.choice(len(train), params.augmented_per_scenario)
        # Severities around the observed default, so the model sees a range, not one value.
        severities = np.clip(scenario.default_severity * rng.uniform(0.5, 1.5, len(picks)),
                             scenario.min_severity, scenario.max_severity)
        seeds = rng.integers(0, 2**63, len(picks))
        parts.append((Augmented(train.images, picks, name, severities, seeds, spec),
                      train.labels[picks]))
        composition["augmented"][name] = int(len(picks))
    for source in sorted(set(logged_sources)):
        composition["logged"][source] = logged_sources.count(source)
    empty = Split(logged.images[:0], logged.labels[:0])
    feedback_train, feedback_holdout = feedback if feedback is not None else (empty, empty)
    composition["feedback"] = {"train": len(feedback_train), "holdout": len(feedback_holdout)}
    for part in (logged, feedback_train):
        if len(part.labels):
            parts.append((np.repeat(part.images, params.logged_repeats, axis=0),
                          np.repeat(part.labels, params.logged_repeats)))
    return RetrainingData(dataset, Concatenated([p[0] for p in parts], spec),
                          np.concatenate([p[1] for p in parts]), composition, feedback_holdout)
