import numpy as np
import pytest

from core.errors import InvalidInput
from core.ml.scenarios import SCENARIOS, check_severity, get_scenario, sample_indices


@pytest.fixture
def image():
    pixels = np.zeros((28, 28, 1), np.uint8)
    pixels[8:20, 8:20] = 200
    return pixels


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_transform_keeps_shape_and_type(name, image):
    scenario = SCENARIOS[name]
    out = scenario.transform(image, scenario.default_severity, np.random.default_rng(0))
    assert out.shape == image.shape and out.dtype == np.uint8


def test_transforms_do_what_they_say(image):
    rng = np.random.default_rng(0)
    assert SCENARIOS["brightness"].transform(image, 0.3, rng)[0, 0, 0] == 76  # 0 + 0.3*255
    assert SCENARIOS["brightness"].transform(image, 0.3, rng).max() == 255  # clipped
    assert (SCENARIOS["invert"].transform(image, 1.0, rng) == 255 - image).all()
    contrast = SCENARIOS["contrast"].transform(image, 0.5, rng)
    assert contrast.std() == pytest.approx(image.std() / 2, rel=0.02)
    blurred = SCENARIOS["blur"].transform(image, 1.5, rng)
    assert 0 < blurred[7, 14, 0] < 200  # the edge spreads
    occluded = SCENARIOS["occlusion"].transform(image, 0.4, rng)
    assert (occluded == 128).sum() >= 11 * 11
    rotated = SCENARIOS["rotation"].transform(image, 45, rng)
    assert rotated[14, 6, 0] > 0 and image[14, 6, 0] == 0  # a corner swings out (8.5 px)
    assert (SCENARIOS["none"].transform(image, 0, rng) == image).all()


def test_class_shift_sends_mostly_three_classes():
    labels = np.repeat(np.arange(10), 100)
    picks = sample_indices(SCENARIOS["class_shift"], 1.0, labels, 500, np.random.default_rng(0))
    assert len(np.unique(labels[picks])) == 3
    uniform = sample_indices(SCENARIOS["none"], 0, labels, 500, np.random.default_rng(0))
    assert len(np.unique(labels[uniform])) == 10


def test_severity_validation():
    brightness = get_scenario("brightness")
    assert check_severity(brightness, None) == 0.3
    assert check_severity(brightness, -0.5) == -0.5
    with pytest.raises(InvalidInput, match=r"out of range for brightness.*-1.0 to 1.0"):
        check_severity(brightness, 3)
    with pytest.raises(InvalidInput, match="unknown scenario 'fog'.*brightness"):
        get_scenario("fog")
