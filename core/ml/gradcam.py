"""Grad-CAM: which parts of the image drove a class score.

Works for any model that is a chain of layers (our ``small_cnn`` and
``mobilenet_v2``), including a backbone nested as one layer: instead of
building a sub-model from inner tensors (Keras' "graph disconnected" pitfall),
we call the layers one after another and watch the last 4-D activation.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.errors import ModelError


class GradCam:
    """A compiled Grad-CAM for one model.

    Args:
        model: a Keras model whose ``layers`` form a chain, ending in a softmax.
    """

    def __init__(self, model):
        import tensorflow as tf

        layers = list(model.layers)
        feature_index = _last_spatial_layer(layers)
        self.feature_layer = layers[feature_index].name
        before, feature, after = (layers[:feature_index], layers[feature_index],
                                  layers[feature_index + 1:])

        @tf.function(reduce_retracing=True)
        def compute(images, class_index):
            # images: [1, h, w, c]; class_index: scalar int32, -1 = predicted class.
            x = images
            for layer in before:
                x = layer(x, training=False)
            with tf.GradientTape() as tape:
                features = feature(x, training=False)  # [1, fh, fw, channels]
                tape.watch(features)
                y = features
                for layer in after:
                    y = layer(y, training=False)  # ends as probabilities [1, K]
                chosen = tf.cond(class_index < 0,
                                 lambda: tf.cast(tf.argmax(y[0]), tf.int32),
                                 lambda: class_index)
                score = y[0, chosen]
            grads = tape.gradient(score, features)  # [1, fh, fw, channels]
            weights = tf.reduce_mean(grads, axis=(1, 2))  # [1, channels]
            cam = tf.nn.relu(tf.reduce_sum(features * weights[:, None, None, :], axis=-1))[0]
            peak = tf.reduce_max(cam)
            # A zero map (e.g. saturated softmax) yields an empty heatmap, not NaN.
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


def _last_spatial_layer(layers) -> int:
    """Index of the last layer with a 4-D output (a conv layer or a nested backbone)."""
    for index in range(len(layers) - 1, -1, -1):
        shape = getattr(layers[index], "output", None)
        shape = getattr(shape, "shape", None)
        if shape is not None and len(shape) == 4:
            return index
    raise ModelError("the model has no convolutional layer to explain. "
                     "To fix this, use a CNN such as small_cnn or mobilenet_v2.")


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
