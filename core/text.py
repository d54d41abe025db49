"""Marks core's user-facing sentences for the dashboard's translation catalog, and reads
a stored sentence back into its template's parameters.

Core itself always speaks English (logs, CLI, API, stored records stay searchable in one
language). ``N_`` returns its argument unchanged; Babel's extraction (``make
translations``) finds the marked strings, and the dashboard shows them through its
catalog. A sentence core formatted from a marked template and stored (a gate reason,
say) can be translated later: ``parse`` recovers the parameters it was formatted with,
and the translated template is formatted with the same ones.
"""

from __future__ import annotations

import re
import string
from functools import cache


def N_(message: str) -> str:  # noqa: N802 -- gettext's conventional name for "no-op mark"
    return message


def parse(template: str, text: str) -> dict[str, str] | None:
    """The parameters ``text`` was formatted with from ``template``, or None if it was not
    formatted from it. Parameters are strings (core formats numbers before filling in)."""
    match = _pattern(template).fullmatch(text)
    return match.groupdict() if match else None


@cache
def _pattern(template: str) -> re.Pattern:
    parts, seen = [], set()
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name is None:
            continue
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
        seen.add(name)
    return re.compile("".join(parts), re.DOTALL)

