"""Heatmaps that show something true (``python -m bench --only heatmaps``).

Two figures for the champion on the Fashion-MNIST test split:

- **Empty maps**: how many predicted-class maps are all zero: ours (the class logit,
  each location weighted by its own gradient) against what we did before (classic
  Grad-CAM of the softmax probability: a confident answer saturates the softmax and
  its gradient vanishes) and against classic Grad-CAM of the logit.
- **Faithfulness, by deletion**: remove pixels most-salient first (set them to 0, the
  dataset's black background) in 20 steps and follow the model's confidence in the
  class it first predicted; the area under that curve is lower when the ordering
  found what the answer rests on. Grad-CAM's ordering against a random one and a
  centre-first one (objects sit in the middle of Fashion-MNIST images, so a centre
  prior is the baseline a heatmap has to beat).
"""

from __future__ import annotations

import numpy as np

from bench.suite import Context, _champion, _test_images
from bench.timing import Row
from core.ml.gradcam import GradCam
from core.ml.images import preprocess

STEPS = 20


def empty_maps(gradcam: GradCam, images: np.ndarray) -> int:
    """How many of ``images`` (preprocessed) get an all-zero map for the predicted class."""
    return sum(int(not gradcam.cam(image)[0].any()) for image in images)


def deletion_curves(model, images: np.ndarray, orders: np.ndarray, classes: np.ndarray
                    ) -> np.ndarray:
    """Confidence in ``classes`` after removing 0, 1/STEPS, ..., all pixels in ``orders``
    (per image, pixel indices most-salient first): float [n, STEPS + 1]."""
    n, height, width, channels = images.shape
    flat = images.reshape(n, height * width, channels)
    curves = np.empty((n, STEPS + 1), np.float32)
    for step in range(STEPS + 1):
        removed = orders[:, :round(step / STEPS * height * width)]
        deleted = flat.copy()
        np.put_along_axis(deleted, removed[..., None].repeat(channels, axis=2), 0.0, axis=1)
        probabilities = model.predict(deleted.reshape(images.shape), batch_size=500, verbose=0)
        curves[:, step] = probabilities[np.arange(n), classes]
    return curves


def area(curves: np.ndarray) -> float:
    """Mean area under the deletion curves (x from 0 to 1: the fraction removed)."""
    return float(np.trapezoid(curves, dx=1 / STEPS, axis=1).mean())


def heatmap_rows(context: Context) -> list[Row]:
    _, champion, predictor, model = _champion(context)
    total = 2_000 if context.quick else 10_000
    raw, _ = _test_images(context, total)
    images = np.stack([preprocess(image, predictor.input_spec) for image in raw])
    ours = GradCam(model)
    classic = GradCam(model, weighting="channel_mean")
    empty_ours = empty_maps(ours, images)
    empty_before = empty_maps(GradCam(model, score="probability", weighting="channel_mean"),
                              images)
    empty_classic = empty_maps(classic, images)

    sample = images[:300 if context.quick else 1_000]
    n, height, width, _ = sample.shape
    rng = np.random.default_rng(0)
    heatmaps, classes = zip(*(ours.heatmap(image) for image in sample))
    classic_maps = [classic.heatmap(image)[0] for image in sample]
    # Ties (flat regions of the upsampled map) broken at random, not top-left first.
    jitter = rng.random((n, height * width)) * 1e-6

    def hottest_first(maps) -> np.ndarray:
        return np.argsort(-(np.stack(maps).reshape(n, -1) + jitter), axis=1)

    by_heat, by_classic = hottest_first(heatmaps), hottest_first(classic_maps)
    by_chance = np.argsort(rng.random((n, height * width)), axis=1)
    rows, cols = np.divmod(np.arange(height * width), width)
    distance = np.hypot(rows - (height - 1) / 2, cols - (width - 1) / 2)
    by_centre = np.argsort(distance[None] + jitter, axis=1)
    predicted = np.array(classes)
    auc = {name: area(deletion_curves(model, sample, order, predicted))
           for name, order in (("gradcam", by_heat), ("classic", by_classic),
                               ("random", by_chance), ("centre", by_centre))}
    detail = (f"{n:,} test images, v{champion.version}; {STEPS} steps, removed pixels set to "
              "0; confidence in the class first predicted")
    return [
        Row(f"Grad-CAM maps that are empty for the predicted class, {total:,} test images",
            empty_ours, "maps", "before: classic Grad-CAM of the softmax probability",
            empty_before, None, "0", empty_ours == 0,
            f"v{champion.version}; classic Grad-CAM of the logit: {empty_classic} empty; "
            f"before: {empty_before / total:.1%} of the maps"),
        Row("Grad-CAM deletion AUC (lower = more faithful)", auc["gradcam"], "",
            "random pixel order", auc["random"], auc["random"] / auc["gradcam"],
            "below random", auc["gradcam"] < auc["random"], detail),
        Row("Grad-CAM deletion AUC against a centre-first order", auc["gradcam"], "",
            "centre first", auc["centre"], auc["centre"] / auc["gradcam"],
            "below centre-first", auc["gradcam"] < auc["centre"], detail),
        Row("Grad-CAM deletion AUC against classic Grad-CAM (channel-mean weights)",
            auc["gradcam"], "", "classic Grad-CAM of the logit", auc["classic"],
            auc["classic"] / auc["gradcam"], "—", True, detail),
    ]
