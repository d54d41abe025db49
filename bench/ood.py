"""Is the OOD score any good? (``python -m bench --only ood``)

AUROC of the champion's ``ood_score`` separating the Fashion-MNIST test split
(in distribution) from four kinds of images it never learned, each beside the
baseline every classifier has for free, the maximum softmax probability (MSP: an
image is suspicious when the top class's probability is low), and beside the other
embedding score we measured before choosing, a class-conditional Mahalanobis distance
with a shared covariance (Lee et al., 2018) fitted on the same training sample:

- Gaussian noise: each image its own mean (0-255) and spread (10-100 grey levels);
- inverted test images (white background, dark garment);
- photos: random square crops of the sample photos scikit-image ships (astronaut,
  cat, coffee, rocket, coins, the moon ...), greyscaled and resized by the same code
  as an upload;
- random shapes (``skimage.draw.random_shapes``), half on white, half on black.

Images go through the serving path (TFLite) exactly as a request would. Each row also
gives the share flagged ``unfamiliar`` at the calibrated threshold (the validation
split's 99th percentile) and the share of test images flagged.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from scipy.stats import rankdata

from bench.suite import Context, _champion, _test_images
from bench.timing import Row
from core.ml.images import preprocess_batch, resize_to_spec

TARGET = 0.95


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(an outside image scores higher than an inside one): Mann-Whitney U / (n m)."""
    ranks = rankdata(np.concatenate([inside, outside]))
    n, m = len(inside), len(outside)
    return float((ranks[n:].sum() - m * (m + 1) / 2) / (n * m))


def gaussian_noise(rng: np.random.Generator, n: int, size: tuple[int, int]) -> np.ndarray:
    mean = rng.uniform(0, 255, (n, 1, 1, 1))
    spread = rng.uniform(10, 100, (n, 1, 1, 1))
    return np.clip(rng.normal(mean, spread, (n, *size, 1)), 0, 255).astype(np.uint8)


def photo_crops(rng: np.random.Generator, n: int, spec) -> np.ndarray:
    import skimage.data

    photos = [getattr(skimage.data, name)() for name in (
        "astronaut", "camera", "chelsea", "coffee", "rocket", "immunohistochemistry",
        "hubble_deep_field", "horse", "moon", "brick", "grass", "gravel", "clock", "coins",
        "page", "text")]
    crops = []
    for i in range(n):
        photo = photos[i % len(photos)]
        height, width = photo.shape[:2]
        side = int(rng.uniform(0.2, 1.0) * min(height, width))
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        crop = photo[top:top + side, left:left + side]
        crop = crop[..., None] if crop.ndim == 2 else crop[..., :3]  # drop a logo's alpha
        crops.append(resize_to_spec(np.ascontiguousarray(crop, np.uint8), spec))
    return np.stack(crops)


def random_shapes(rng: np.random.Generator, n: int, size: tuple[int, int]) -> np.ndarray:
    from skimage.draw import random_shapes as draw

    images: list[np.ndarray] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "could not fit any shapes": redrawn
        while len(images) < n:
            image, shapes = draw(size, max_shapes=4, min_shapes=1, min_size=5,
                                 channel_axis=None, rng=int(rng.integers(1 << 30)))
            if shapes:  # an empty canvas is no shape
                # White background, then black.
                images.append(image if len(images) % 2 else 255 - image)
    return np.stack(images)[..., None]


def mahalanobis(train_embeddings: np.ndarray, train_labels: np.ndarray, classes: int):
    """Scores by the distance to the nearest class mean under a shared covariance."""
    means = np.stack([train_embeddings[train_labels == k].mean(axis=0)
                      for k in range(classes)])
    centred = train_embeddings - means[train_labels]
    precision = np.linalg.pinv(centred.T @ centred / len(centred))

    def score(embeddings: np.ndarray) -> np.ndarray:
        return np.min(np.stack([np.einsum("ij,jk,ik->i", embeddings - m, precision,
                                          embeddings - m) for m in means], axis=1), axis=1)
    return score


def ood_rows(context: Context) -> list[Row]:
    from core.ml.data import read_idx

    _, champion, predictor, _ = _champion(context)
    detector = predictor.ood
    if detector is None:
        raise RuntimeError(f"version {champion.version} has no OOD detector. Add it with "
                           f"'python -m core profile --version {champion.version}'.")
    spec = predictor.input_spec
    size = (spec.height, spec.width)
    n = 500 if context.quick else 2_000
    rng = np.random.default_rng(0)
    test, _ = _test_images(context, 2_000 if context.quick else 10_000)
    outside = {
        "Gaussian noise": gaussian_noise(rng, n, size),
        "inverted test images": 255 - test[-n:],
        "photos (scikit-image sample crops)": photo_crops(rng, n, spec),
        "random shapes": random_shapes(rng, n, size),
    }

    def outputs(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batches = [predictor.predict_batch(preprocess_batch(images[i:i + 500], spec))
                   for i in range(0, len(images), 500)]
        return (np.concatenate([b[0] for b in batches]),
                np.concatenate([b[1] for b in batches]))

    directory = context.config.fashion_mnist_dir
    train = read_idx(directory / "train-images-idx3-ubyte.gz")[:10_000, :, :, None]
    train_labels = read_idx(directory / "train-labels-idx1-ubyte.gz")[:10_000].astype(int)
    _, train_embeddings = outputs(train)
    probabilities, embeddings = outputs(test)
    maha = mahalanobis(train_embeddings, train_labels, probabilities.shape[1])
    inside = {"ours": detector.scores(embeddings), "msp": 1 - probabilities.max(axis=1),
              "maha": maha(embeddings)}
    test_rate = float(np.mean(detector.unfamiliar(inside["ours"])))
    rows = []
    for name, images in outside.items():
        probabilities, embeddings = outputs(images)
        scores = {"ours": detector.scores(embeddings), "msp": 1 - probabilities.max(axis=1),
                  "maha": maha(embeddings)}
        ours, msp, maha_auroc = (auroc(inside[k], scores[k]) for k in ("ours", "msp", "maha"))
        flagged = float(np.mean(detector.unfamiliar(scores["ours"])))
        rows.append(Row(
            f"OOD AUROC: Fashion-MNIST test vs {name}", ours, "", "max softmax probability",
            msp, ours / msp, f">= {TARGET} and above MSP", ours >= TARGET and ours > msp,
            f"v{champion.version}; {len(test):,} test images vs {n:,}; Mahalanobis "
            f"{maha_auroc:.3f}; flagged unfamiliar: {flagged:.0%} of these, "
            f"{test_rate:.1%} of test images"))

    one = embeddings[:1]
    times = []
    for _ in range(200):
        started = time.perf_counter()
        detector.scores(one)
        times.append(time.perf_counter() - started)
    rows.append(Row("OOD score of one image (k-NN over the bank)",
                    float(np.median(times)) * 1000, "ms", "—", None, None, "—", True,
                    f"k = {detector.neighbours} of {len(detector.bank):,} training "
                    "embeddings; median of 200"))
    return rows
