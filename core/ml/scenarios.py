"""Drift scenarios: how production images can differ from the training data.

Each transform takes raw uint8 pixels [H, W, C] and returns uint8 pixels of
the same shape, applied *before* the shared preprocessing, the way a camera
would produce them. ``class_shift`` changes which images arrive, not their
pixels, and is applied by the sampler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from core.errors import InvalidInput
from core.text import N_

Transform = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str  # what ``severity`` means
    default_severity: float
    min_severity: float
    max_severity: float
    transform: Transform


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def _none(pixels: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return pixels


def _brightness(pixels: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return _to_uint8(pixels.astype(np.float32) + severity * 255)


def _contrast(pixels: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    mean = pixels.mean()
    return _to_uint8(mean + (pixels.astype(np.float32) - mean) * (1 - severity))


def _noise(pixels: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return _to_uint8(pixels + rng.normal(0, severity * 255, pixels.shape))


def _with_pil(pixels: np.ndarray, operation: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    image = Image.fromarray(pixels[:, :, 0] if pixels.shape[-1] == 1 else pixels)
    out = np.asarray(operation(image))
    return out[:, :, None] if pixels.shape[-1] == 1 else out


def _blur(pixels: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return _with_pil(pixels, lambda image: image.filter(ImageFilter.GaussianBlur(severity)))


def _rotation(pixels: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return _with_pil(pixels, lambda image: image.rotate(severity, Image.Resampling.BILINEAR))


def _invert(pixels: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    return 255 - pixels if rng.random() < severity else pixels


def _occlusion(pixels: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    height, width = pixels.shape[:2]
    box_h, box_w = int(round(height * severity)), int(round(width * severity))
    top = rng.integers(0, height - box_h + 1)
    left = rng.integers(0, width - box_w + 1)
    out = pixels.copy()
    out[top:top + box_h, left:left + box_w] = 128  # a gray patch, like a finger or a sticker
    return out


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario("none", N_("ignored: clean traffic"), 0.0, 0.0, 1.0, _none),
    Scenario("brightness", N_("added to pixels in [0, 1] units (the seed notebook's +0.3)"),
             0.3, -1.0, 1.0, _brightness),
    Scenario("contrast", N_("fraction of contrast removed around the mean"), 0.5, 0.0, 1.0, _contrast),
    Scenario("noise", N_("standard deviation of Gaussian noise, in [0, 1] units"),
             0.2, 0.0, 1.0, _noise),
    Scenario("blur", N_("Gaussian blur radius in pixels"), 1.5, 0.0, 10.0, _blur),
    Scenario("rotation", N_("rotation in degrees, counter-clockwise"), 30.0, -180.0, 180.0, _rotation),
    Scenario("invert", N_("probability that an image arrives inverted"), 1.0, 0.0, 1.0, _invert),
    Scenario("occlusion", N_("side of a gray square patch, as a fraction of the image side"),
             0.4, 0.0, 1.0, _occlusion),
    Scenario("class_shift", N_("fraction of traffic drawn from only 3 classes"), 1.0, 0.0, 1.0, _none),
]}


def get_scenario(name: str) -> Scenario:
    if name not in SCENARIOS:
        raise InvalidInput(f"unknown scenario {name!r}. To fix this, choose one of: "
                           f"{', '.join(SCENARIOS)}.")
    return SCENARIOS[name]


def check_severity(scenario: Scenario, severity: float | None) -> float:
    """The severity to use (the default when None); raises InvalidInput when out of range."""
    if severity is None:
        return scenario.default_severity
    if not scenario.min_severity <= severity <= scenario.max_severity:
        raise InvalidInput(
            f"severity {severity} is out of range for {scenario.name} "
            f"({scenario.description}). To fix this, use a value from "
            f"{scenario.min_severity} to {scenario.max_severity} "
            f"(default {scenario.default_severity}).")
    return float(severity)


def sample_indices(scenario: Scenario, severity: float, labels: np.ndarray, n: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Which test images arrive: uniform, or mostly from 3 classes for ``class_shift``."""
    if scenario.name != "class_shift":
        return rng.choice(len(labels), size=n, replace=n > len(labels))
    favoured = rng.choice(np.unique(labels), size=3, replace=False)
    in_favoured = np.flatnonzero(np.isin(labels, favoured))
    from_favoured = rng.random(n) < severity
    picks = np.where(from_favoured, rng.choice(in_favoured, size=n),
                     rng.choice(len(labels), size=n))
    return picks
