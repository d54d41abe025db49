"""Reading the documents core writes (model cards, decision evidence) as a person would."""

from __future__ import annotations


def section(markdown: str, title: str) -> str:
    """The text of one ``## title`` section."""
    return markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
