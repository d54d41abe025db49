"""``register``: bring in a model trained elsewhere."""

from __future__ import annotations

import json
import re
from argparse import Namespace
from pathlib import Path

from core.app import Backends, read_labels, register_model
from core.app.vocabulary import INPUT_RANGES, OUTPUT_KINDS
from core.cli.common import Commands, actor, now


def register(commands: Commands) -> None:
    parser = commands.add("register", cmd_register, json=True, help=(
        "register a Keras model trained elsewhere (.keras or .h5): its first version "
        "becomes the champion, a later one a candidate compared with it"))
    parser.add_argument("path", type=Path, metavar="PATH", help="the .keras or .h5 file")
    parser.add_argument("--dataset", required=True, metavar="SPEC", help=(
        "the data it is evaluated on: fashion_mnist, folder:PATH or tfds:NAME"))
    parser.add_argument("--labels", type=Path, metavar="FILE", help=(
        "one label per line, in the model's output order (default: the dataset's classes)"))
    parser.add_argument("--input-range", default="0,1", metavar="RANGE", help=(
        f"how the model expects pixel values: {', '.join(INPUT_RANGES)} (default: 0,1)"))
    parser.add_argument("--outputs", choices=OUTPUT_KINDS, help=(
        "what the model outputs (default: found out on sample images)"))
    parser.add_argument("--embedding-layer", metavar="LAYER", help=(
        "the layer whose output is the embedding (default: the input of the last Dense)"))
    parser.add_argument("--reason", default="", help="why, for the audit log (required)")
    # argparse takes "-1,1" for an option (it knows only "-1" and "-1.5" as negative
    # numbers); this parser has no option that looks like a number, so a value such as
    # "--input-range -1,1" is read as written.
    parser._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-\d+,-?\d+$")


def cmd_register(args: Namespace, backends: Backends) -> int:
    result = register_model(
        backends, args.path, dataset_spec=args.dataset, actor=actor(args), now=now(),
        reason=args.reason, labels=None if args.labels is None else read_labels(args.labels),
        input_range=args.input_range, outputs=args.outputs,
        embedding_layer=args.embedding_layer)
    version, comparison = result.version, result.comparison
    summary = {"model": version.model, "version": version.version,
               "status": str(version.status), "outputs": result.outputs,
               "serving_agreement": result.serving_agreement,
               "serving_runtime": result.serving_runtime,
               "test_accuracy": version.metadata.metric("test", "accuracy"),
               "recommendation": comparison.recommendation if comparison else None}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"registered {args.path.name} as version {version.version} of {version.model!r} "
          f"({version.status}); test accuracy {summary['test_accuracy']:.4f}; serving "
          f"(TFLite) agrees with Keras on {result.serving_agreement:.2%} of the test split"
          + ("" if result.serving_runtime == "tflite" else
             ", below 99.9 %: served from its SavedModel by TensorFlow instead")
          + (f"; gate recommends {comparison.recommendation}" if comparison else ""))
    return 0
