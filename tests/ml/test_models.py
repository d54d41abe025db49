import pytest

from core.errors import InvalidInput, ModelError
from core.ml.images import InputSpec
from core.ml.models import build_model, input_spec_for

pytestmark = pytest.mark.slow


def test_small_cnn_shape_and_named_layers():
    model = build_model("small_cnn", InputSpec(28, 28, 1), 10)
    assert model.input_shape == (None, 28, 28, 1)
    assert model.output_shape == (None, 10)
    assert model.get_layer("embedding").output.shape[-1] == 128


def test_mobilenet_v2_without_imagenet_weights_is_a_frozen_nested_backbone():
    spec = input_spec_for("mobilenet_v2", InputSpec(28, 28, 1))
    assert spec == InputSpec(96, 96, 3)
    model = build_model("mobilenet_v2", spec, 5, weights=None)
    backbone = model.get_layer("backbone")
    assert backbone.trainable is False
    assert model.output_shape == (None, 5)
    trainable = {layer.name for layer in model.layers if layer.trainable_weights}
    assert trainable == {"embedding", "probabilities"}


def test_mobilenet_v2_download_failure_names_the_fix(monkeypatch):
    import keras

    def offline(**kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(keras.applications, "MobileNetV2", offline)
    with pytest.raises(ModelError, match="ImageNet weights.*To fix this, connect to the network"):
        build_model("mobilenet_v2", InputSpec(96, 96, 3), 5)


def test_unknown_architecture_and_bad_input():
    with pytest.raises(InvalidInput, match="choose one of: small_cnn, mobilenet_v2"):
        build_model("vgg", InputSpec(28, 28, 1), 10)
    with pytest.raises(InvalidInput, match="RGB input of at least 32x32"):
        build_model("mobilenet_v2", InputSpec(28, 28, 1), 10, weights=None)
