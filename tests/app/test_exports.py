"""A version's exports on the trained test model: each one converted, loaded and measured in
its own runtime; int8 and float16 within bounds of the float model; ONNX parity; downloads
only for operators, and audited."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from core.app import build_exports, export_file, export_table, model_card
from core.app.vocabulary import EXPORT_FORMATS
from core.config import load_config
from core.errors import ActionRefused, InvalidInput
from core.ml.exports import EXPORTS_TABLE, PORTABLE_FILES, export_runner
from core.ml.images import InputSpec, preprocess_batch
from tests.cli_runner import run_cli
from tests.conftest import FIXED_NOW, backends_of, copy_registry, fashion_test_images

pytestmark = pytest.mark.slow


def test_viewers_can_neither_build_nor_download_exports(registry_copy):
    backends = backends_of(registry_copy)  # refusals are audited: a private copy
    with pytest.raises(ActionRefused, match="operator"):
        build_exports(backends, 1, actor="vic", now=FIXED_NOW)
    with pytest.raises(ActionRefused, match="operator"):
        export_file(backends, 1, "keras", actor="vic", now=FIXED_NOW)
    assert export_table(backends, 1, actor="vic", now=FIXED_NOW) is None  # nothing written
    with pytest.raises(InvalidInput, match="has no onnx export yet"):
        export_file(backends, 1, "onnx", actor="olga", now=FIXED_NOW)


def test_exports_are_measured_once_and_downloaded_by_operators(exported_registry, tmp_path):
    root = tmp_path / "registry"
    copy_registry(exported_registry, root)
    config = load_config({}).with_overrides(registry_dir=root)
    backends = backends_of(config)
    folder = backends.registry.files(1)
    printed = run_cli(root, "exports", "1", "--json")  # anyone reads the stored table
    assert printed.returncode == 0
    table = json.loads(printed.stdout)
    assert [row["format"] for row in table] == list(EXPORT_FORMATS)
    rows = {row["format"]: row for row in table}
    assert set(rows["keras"]) >= {"format", "size_bytes", "accuracy", "agreement",
                                   "latency_ms"}
    float_accuracy = rows["keras"]["accuracy"]
    assert rows["tflite_int8"]["accuracy"] >= float_accuracy - 0.01  # ≤ 1 point below
    assert rows["tflite_float16"]["accuracy"] >= float_accuracy - 0.002
    assert rows["tflite_int8"]["size_bytes"] * 3 <= rows["tflite"]["size_bytes"]
    assert rows["onnx"]["max_abs_diff"] < 1e-4 and rows["onnx"]["agreement"] == 1.0
    assert all(row["latency_ms"] > 0 and row["agreement"] > 0.95 for row in table)
    # Built once: asking again reads the table, converting and measuring nothing.
    written = (folder / EXPORTS_TABLE).stat().st_mtime_ns
    assert build_exports(backends, 1, actor="olga", now=FIXED_NOW) == table
    assert (folder / EXPORTS_TABLE).stat().st_mtime_ns == written

    # Each stored file loads and predicts in its own runtime, like the float model.
    images, _ = fashion_test_images(200)
    inputs = preprocess_batch(images, InputSpec.from_dict(
        backends.registry.get_version(1).metadata.input_spec))
    answers = {fmt: export_runner(fmt, folder / name)(inputs).argmax(1)
               for fmt, name in ({"keras": "model.keras"} | PORTABLE_FILES).items()}
    for fmt, predicted in answers.items():
        assert np.mean(predicted == answers["keras"]) >= 0.95, fmt

    name, data = export_file(backends, 1, "tflite_int8", actor="olga", now=FIXED_NOW)
    assert name == "v1-model_int8.tflite" and data == (folder / "model_int8.tflite").read_bytes()
    zipped_name, zipped = export_file(backends, 1, "saved_model", actor="olga", now=FIXED_NOW)
    assert zipped_name == "v1-saved_model.zip" and zipped[:2] == b"PK"
    downloads = [e for e in backends.audit_log.read_entries() if e.action == "download_export"]
    assert [(e.actor, e.outcome, e.details["format"]) for e in downloads] == [
        ("olga", "done", "tflite_int8"), ("olga", "done", "saved_model")]
    assert downloads[0].details["sha256"] == hashlib.sha256(data).hexdigest()
    with pytest.raises(InvalidInput, match="unknown export format 'pdf'"):
        export_file(backends, 1, "pdf", actor="olga", now=FIXED_NOW)
    card = model_card(backends, 1, actor="vic", now=FIXED_NOW).render("md")
    assert (f"| tflite_int8 | {rows['tflite_int8']['size_bytes'] / 1e6:.2f} MB | "
            f"{rows['tflite_int8']['accuracy']:.4f} |") in card
