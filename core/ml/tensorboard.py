"""TensorBoard event files for a trained version: its run, in the version's own folder.

Written once training has finished, from what the training recorded: the scalars of
every epoch, the test split's confusion matrix as an image, and the model's graph.
``make tensorboard`` serves every version's run side by side (runs are named by the
version folders: ``1/tensorboard``, ``2/tensorboard``, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

TENSORBOARD_DIR = "tensorboard"
CELL = 36  # pixels per confusion-matrix cell
LABEL_WIDTH = 110


def write_run(folder: Path, model: Any | None, history: list[dict], metrics: dict,
              class_names: list[str]) -> Path:
    """Writes the run into ``folder/tensorboard``; returns that folder.

    Args:
        history: one dict per epoch (``epoch`` plus Keras' logs: loss, accuracy,
            val_loss, val_accuracy).
        metrics: per split (``validation``, ``test``): accuracy, macro_f1, ece and the
            confusion matrix.
    """
    import tensorflow as tf

    logdir = Path(folder) / TENSORBOARD_DIR
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for row in history:
            for name, value in row.items():
                if name != "epoch":
                    tf.summary.scalar(f"epoch/{name}", value, step=row["epoch"])
        last = len(history)
        for split in ("validation", "test"):
            for name in ("accuracy", "macro_f1", "ece"):
                tf.summary.scalar(f"{split}/{name}", metrics[split][name], step=last)
        tf.summary.image("test/confusion_matrix", confusion_image(
            metrics["test"]["confusion_matrix"], class_names)[None], step=last)
        if model is not None:  # None: a SavedModel without layers, no graph to draw
            # The graph of one forward pass (TensorBoard's Graphs tab).
            forward = tf.function(lambda x: model(x, training=False)).get_concrete_function(
                tf.TensorSpec((1, *model.inputs[0].shape[1:]), tf.float32))
            tf.summary.graph(forward.graph)
    writer.close()
    return logdir


def confusion_image(matrix: list[list[int]], class_names: list[str]) -> np.ndarray:
    """uint8 [H, W, 3]: the confusion matrix (rows: true class, columns: predicted), each
    cell shaded by its share of the row and labelled with its count."""
    counts = np.asarray(matrix, np.int64)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    k = len(class_names)
    image = Image.new("RGB", (LABEL_WIDTH + k * CELL, k * CELL + 16), "white")
    draw = ImageDraw.Draw(image)
    for i, name in enumerate(class_names):
        draw.text((4, i * CELL + CELL // 3), name[:16], fill="black")
        for j in range(k):
            shade = int(255 * (1 - shares[i, j]))
            box = (LABEL_WIDTH + j * CELL, i * CELL, LABEL_WIDTH + (j + 1) * CELL - 1,
                   (i + 1) * CELL - 1)
            draw.rectangle(box, fill=(shade, shade, 255))
            draw.text((box[0] + 3, box[1] + CELL // 3), str(counts[i, j]),
                      fill="white" if shares[i, j] > 0.5 else "black")
    draw.text((LABEL_WIDTH, k * CELL + 2), "predicted class ->  (rows: true class)",
              fill="black")
    return np.asarray(image)
