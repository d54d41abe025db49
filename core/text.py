"""Marks core's fixed user-facing sentences for the dashboard's translation catalog.

Core itself always speaks English (logs, CLI, API stay searchable in one language).
``N_`` returns its argument unchanged; Babel's extraction (``make translations``) finds
the marked strings, and the dashboard shows them through its catalog.
"""


def N_(message: str) -> str:  # noqa: N802 -- gettext's conventional name for "no-op mark"
    return message
