"""Names that become paths: checked once, the same way everywhere."""

import pytest

from core.config import load_config
from core.errors import InvalidInput
from core.names import parse_version, validate_model_name


@pytest.mark.parametrize("text, expected", [("3", 3), ("v2", 2), (" 10 ", 10)])
def test_parse_version(text, expected):
    assert parse_version(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "abc", "1.5", "../1"])
def test_parse_version_refuses(text):
    with pytest.raises(InvalidInput, match="invalid version"):
        parse_version(text)


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "x" * 65, "a..b", "/etc"])
def test_unsafe_model_names_are_refused_everywhere(name):
    with pytest.raises(InvalidInput, match="invalid model name"):
        validate_model_name(name)
    if name:  # an empty variable counts as unset
        with pytest.raises(InvalidInput, match="invalid model name"):
            load_config({"MODEL_NAME": name})  # the configuration refuses it before any use
    with pytest.raises(InvalidInput, match="invalid model name"):
        load_config({}).with_overrides(model_name=name)


def test_bad_environment_values_name_the_variable_and_the_fix():
    with pytest.raises(InvalidInput, match="SEED must be a whole number.*SEED=42"):
        load_config({"SEED": "forty-two"})
    with pytest.raises(InvalidInput, match="SEPARATION_OF_DUTIES must be 1 or 0"):
        load_config({"SEPARATION_OF_DUTIES": "maybe"})
