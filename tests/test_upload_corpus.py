"""The awkward-upload corpus through the core API (as the dashboard calls it) and the CLI.

The same corpus goes through a real dashboard in ``tests/e2e/test_upload_corpus.py``.
"""

import json

import numpy as np
import pytest

from core.app import explain_image
from core.config import load_config
from core.errors import CoreError
from tests import upload_corpus
from tests.cli_runner import run_cli, snapshot
from tests.conftest import FIXED_NOW, backends_of, copy_registry

pytestmark = pytest.mark.slow
CASES = upload_corpus.build(upload_corpus.fashion_base())
ANSWERED = [case for case in CASES if case.expect != "error"]


@pytest.fixture(scope="module")
def corpus_config(trained_registry, tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus") / "registry"
    copy_registry(trained_registry, root)
    return load_config({}).with_overrides(registry_dir=root)


@pytest.fixture(scope="module")
def backends(corpus_config):
    """One set of backends for the module: each model is loaded once."""
    return backends_of(corpus_config)


def explain(backends, case):
    return explain_image(backends, case.data, actor="anonymous", source="upload",
                         now=FIXED_NOW)


@pytest.fixture(scope="module")
def reference_labels(backends):
    """The label of every case that others must agree with, predicted as it is."""
    cases = upload_corpus.by_name(CASES)
    return {name: explain(backends, cases[name]).prediction.label
            for name in {case.same_as for case in CASES if case.same_as}}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_core_answers_or_refuses_with_one_clear_message(corpus_config, backends,
                                                        reference_labels, case):
    log = backends.prediction_log
    logged = log.count("classifier")
    before = snapshot(corpus_config.registry_dir)
    if case.expect == "error":
        with pytest.raises(CoreError) as error:
            explain(backends, case)
        message = str(error.value)
        assert case.message in message and "To fix this" in message
        assert "\n" not in message and "Traceback" not in message
        assert snapshot(corpus_config.registry_dir) == before  # nothing changed
        return
    explanation = explain(backends, case)
    prediction = explanation.prediction
    class_names = list(prediction.probabilities)
    assert prediction.label in class_names
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    if case.expect == "same":
        assert prediction.label == reference_labels[case.same_as]
    assert log.count("classifier") == logged + 1  # exactly one row per answer
    # What the page shows stays screen-sized whatever came in: a 12-megapixel photo or
    # a 4000-pixel strip is not sent back to the browser at full size.
    assert explanation.image.shape == explanation.overlay.shape
    assert max(explanation.image.shape[:2]) <= 1024
    assert explanation.image.dtype == np.uint8


def test_exif_rotation_is_what_makes_the_phone_photo_upright():
    """Without its orientation tag the stored picture is sideways: the tag is what counts."""
    from core.ml.images import decode_image

    cases = upload_corpus.by_name(CASES)
    limits = dict(max_bytes=upload_corpus.UPLOAD_LIMIT_BYTES, max_pixels=40_000_000)
    upright = decode_image(cases["phone_upright"].data, **limits).pixels
    rotated = decode_image(cases["phone_exif_orientation_6"].data, **limits)
    assert rotated.original_size == upload_corpus.PHONE_SIZE[::-1]  # stored landscape
    assert rotated.pixels.shape == upright.shape  # shown portrait, like the upright one
    difference = np.abs(rotated.pixels.astype(int) - upright.astype(int)).mean()
    assert difference < 3  # the same picture, up to JPEG noise


def test_cli_predicts_every_file_answering_or_naming_the_problem(corpus_config, tmp_path):
    paths = []
    for case in CASES:
        path = tmp_path / case.filename
        path.write_bytes(case.data)
        paths.append(path)
    log = backends_of(corpus_config).prediction_log
    logged = log.count("classifier")
    result = run_cli(corpus_config.registry_dir, "predict", *map(str, paths), "--json")
    assert result.returncode == 1  # some files were refused
    outcomes = {entry["file"]: entry for entry in json.loads(result.stdout)}
    labels = {}
    for case, path in zip(CASES, paths):
        outcome = outcomes[str(path)]
        if case.expect == "error":
            assert case.message in outcome["error"] and "To fix this" in outcome["error"]
        else:
            assert "error" not in outcome, outcome
            labels[case.name] = outcome["label"]
    for case in CASES:
        if case.expect == "same":
            assert labels[case.name] == labels[case.same_as], case.name
    assert log.count("classifier") == logged + len(ANSWERED)
