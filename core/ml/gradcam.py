"""Grad-CAM: which parts of the image drove a class score.

The gradient model comes from the model's own functional graph: its inputs, the output
of the last layer with a spatial (4-D) output — a convolution, a merge of branches, or
a whole nested backbone — and the input of the classification head.

Two choices make the map show something true (measured in bench/heatmaps.py):

- The score is the class **logit**, not its softmax probability: on a confident answer
  the softmax saturates, its gradient vanishes and the map came out empty (415 of the
  10,000 Fashion-MNIST test images with the production model).
- Each location's features are weighted by the gradient **at that location**
  (HiResCAM, Draelos & Carin 2020), not by the gradient averaged over the map
  (classic Grad-CAM). Behind ``Flatten`` + ``Dense`` (our ``small_cnn``) the average
  means little, and the classic map was still empty for 2 of 10,000 test images with
  the logit (978 with a weaker model); the element-wise map sums to the features'
  first-order share of the logit and was empty for none.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from core.errors import ModelError


class GradCam:
    """A compiled Grad-CAM for one model.

    Args:
        model: a Keras functional model (``Sequential`` included) with one image input,
            a layer with spatial output, and a classification output (probabilities
            from a softmax, or logits).
        score: ``logit`` (the default, see the module); ``probability``, the softmax
            output, only to measure what it did (bench/).
        weighting: ``location`` (the default: the gradient at each location, see the
            module); ``channel_mean``, classic Grad-CAM, only for bench/.
    """

    SCORES = ("logit", "probability")
    WEIGHTINGS = ("location", "channel_mean")

    def __init__(self, model: Any, score: str = "logit", weighting: str = "location"):
        import keras
        import tensorflow as tf

        if score not in self.SCORES:
            raise ValueError(f"score must be one of {self.SCORES}, got {score!r}")
        if weighting not in self.WEIGHTINGS:
            raise ValueError(f"weighting must be one of {self.WEIGHTINGS}, got {weighting!r}")
        per_location = weighting == "location"
        calls = _graph_nodes(model)
        feature, features = _spatial_features(calls)
        self.feature_layer = feature.name
        head, head_input = _classification_head(calls, score)
        gradient_model = keras.Model(model.inputs, [features, head_input])

        @tf.function(reduce_retracing=True)
        def compute(images: Any, class_index: Any) -> Any:
            # images: [1, h, w, c]; class_index: scalar int32, -1 = predicted class.
            with tf.GradientTape() as tape:
                features, before_head = gradient_model(images, training=False)
                tape.watch(features)
                scores = head(before_head)  # [1, K]
                chosen = tf.cond(class_index < 0,
                                 lambda: tf.cast(tf.argmax(scores[0]), tf.int32),
                                 lambda: class_index)
                score = scores[0, chosen]
            grads = tape.gradient(score, features)  # [1, fh, fw, channels]
            if not per_location:
                grads = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # [1, 1, 1, ch]
            cam = tf.nn.relu(tf.reduce_sum(features * grads, axis=-1))[0]
            peak = tf.reduce_max(cam)
            # Nothing raised the score anywhere: an empty map (callers say so), not NaN.
            cam = tf.where(peak > 0, cam / tf.maximum(peak, 1e-12), tf.zeros_like(cam))
            return cam, chosen

        self._compute = compute

    def heatmap(self, image: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, int]:
        """Heatmap for one preprocessed image.

        Args:
            image: float32 [h, w, c], as produced by ``images.preprocess``.
            class_index: class to explain; None explains the predicted class.

        Returns:
            (heatmap float32 [h, w] in [0, 1] at the image's size, explained class index).
        """
        cam, chosen = self.cam(image, class_index)
        height, width = image.shape[:2]
        resized = np.asarray(Image.fromarray(cam.astype(np.float32), mode="F")
                             .resize((width, height), Image.Resampling.BILINEAR))
        return np.clip(resized, 0.0, 1.0), chosen

    def cam(self, image: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, int]:
        """The class activation map at the feature map's resolution ([fh, fw], peak 1)."""
        import tensorflow as tf

        cam, chosen = self._compute(tf.constant(image[None], tf.float32),
                                    tf.constant(-1 if class_index is None else class_index,
                                                tf.int32))
        return cam.numpy(), int(chosen.numpy())


def _graph_nodes(model: Any) -> list:
    """The calls (layer, node) of ``model``'s own graph, from its output back towards its
    input, breadth first. Following the output tensors' history, rather than asking a
    layer for ``.output``, keeps to this graph: a nested backbone's ``.output`` is its
    own inner graph's (Keras' "graph disconnected" pitfall), and a layer of a loaded
    ``Sequential`` has a call node in each graph Keras built for it."""
    calls, seen = [], set()
    queue = deque(model.outputs)
    while queue:
        layer, node_index, _ = queue.popleft()._keras_history
        node = layer._inbound_nodes[node_index]
        if id(node) not in seen:
            seen.add(id(node))
            calls.append((layer, node))
            queue.extend(node.input_tensors)
    return calls


def _spatial_features(calls: list) -> tuple[Any, Any]:
    """The layer and output tensor nearest the output with a 4-D shape: the last conv
    layer, a merge of conv branches, or a nested backbone."""
    for layer, node in calls:
        if len(node.output_tensors) == 1 and len(node.output_tensors[0].shape) == 4:
            return layer, node.output_tensors[0]
    raise ModelError("the model has no convolutional layer to explain. "
                     "To fix this, use a CNN such as small_cnn or mobilenet_v2.")


def _classification_head(calls: list, score: str) -> tuple[Callable[[Any], Any], Any]:
    """(a function from a tensor to the class scores, that tensor). For ``logit``: a last
    Dense layer ending in a softmax gives its logits (the layer without the
    activation); a separate softmax layer gives its input; any other output is taken
    as logits. For ``probability``: the model's output."""
    from keras import layers, ops

    last, node = calls[0]
    activation = getattr(getattr(last, "activation", None), "__name__", None)
    if score == "logit" and isinstance(last, layers.Dense) and activation == "softmax":
        def logits(x: Any) -> Any:
            y = ops.matmul(x, last.kernel)
            return y + last.bias if last.use_bias else y
        return logits, node.input_tensors[0]
    if score == "logit" and (isinstance(last, layers.Softmax) or (
            isinstance(last, layers.Activation) and activation == "softmax")):
        return (lambda x: x), node.input_tensors[0]
    return (lambda x: x), node.output_tensors[0]


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """float [H, W] in [0, 1] -> uint8 [H, W, 3] with a jet-like colour map."""
    # Jet's bright middle range: 0 -> pure blue, 0.5 -> green-yellow, 1 -> pure red.
    t = 0.5 + 3.0 * np.clip(heatmap, 0.0, 1.0)[..., None]
    anchors = np.array([3.5, 2.5, 1.5]) - 0.5  # where red, green and blue peak along t
    colour = np.clip(1.5 - np.abs(t - anchors), 0.0, 1.0)
    return (colour * 255).astype(np.uint8)


def fit_for_display(pixels: np.ndarray, min_side: int = 224, max_side: int = 1024
                    ) -> np.ndarray:
    """uint8 [H, W, 1|3] -> RGB uint8 sized for the screen.

    Small images are enlarged by a whole factor (nearest-neighbour, so 28x28 stays
    crisp) until the shorter side reaches ``min_side``; no side grows past
    ``max_side``. Larger images (a 12-megapixel phone photo, a 4000-pixel strip)
    shrink until the longer side is ``max_side``: the browser gets a picture,
    not megabytes, and the overlay's arithmetic stays small.
    """
    image = Image.fromarray(pixels[:, :, 0] if pixels.shape[-1] == 1 else pixels).convert("RGB")
    longer, shorter = max(image.size), min(image.size)
    if longer > max_side:
        scale = max_side / longer
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        return np.asarray(image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
    factor = max(1, min(int(np.ceil(min_side / shorter)), max_side // longer))
    if factor > 1:
        image = image.resize((image.width * factor, image.height * factor),
                             Image.Resampling.NEAREST)
    return np.asarray(image)


def overlay(pixels: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.6,
            min_side: int = 224, max_side: int = 1024) -> np.ndarray:
    """Blends a heatmap onto an image, sized for display by :func:`fit_for_display`.

    Args:
        pixels: uint8 [H, W, 1|3], the image as uploaded.
        heatmap: float [h, w] in [0, 1], any size (resized to the image).
        alpha: opacity of the heat at its peak; cold regions keep the image.
        min_side: enlarge images whose shorter side is below this (nearest-neighbour).
        max_side: the longest side of the result.

    Returns:
        uint8 [H', W', 3].
    """
    image = Image.fromarray(fit_for_display(pixels, min_side, max_side))
    heat = np.asarray(Image.fromarray(heatmap.astype(np.float32), mode="F")
                      .resize(image.size, Image.Resampling.BILINEAR))
    heat = np.clip(heat, 0.0, 1.0)[..., None]
    base = np.asarray(image, dtype=np.float32)
    blended = base * (1 - alpha * heat) + colorize(heat[..., 0]).astype(np.float32) * alpha * heat
    return np.clip(blended, 0, 255).astype(np.uint8)
