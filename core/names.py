"""Names that become paths or keys: model names and version numbers.

Checked before any path is built from them (no separators, no '..'), at the
bottom of ``core`` so that configuration, the registry and the CLI share one rule.
"""

from __future__ import annotations

import re

from core.errors import InvalidInput

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def validate_model_name(name: str) -> str:
    """Returns ``name`` if it is safe to use as a folder name, else raises InvalidInput."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name) or ".." in name:
        raise InvalidInput(
            f"invalid model name {name!r}. To fix this, use 1-64 letters, digits, '_', '-' "
            "or '.', starting with a letter or digit (no path separators, no '..')."
        )
    return name


def parse_version(value: object) -> int:
    """Parses a user-given version number, raising InvalidInput if it is not one."""
    try:
        version = int(str(value).strip().lstrip("v"))
    except ValueError:
        version = 0
    if version < 1:
        raise InvalidInput(f"invalid version {value!r}. To fix this, give a positive number "
                           "such as 1 (see 'python -m core versions').")
    return version
