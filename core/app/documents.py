"""Documents people read outside the product (model cards, decision evidence): sections of
text, tables, bullet lists and pictures, rendered as Markdown or one self-contained HTML
file (pictures inlined, no external resources)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

from core.errors import InvalidInput

FORMATS = ("md", "html")


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Diagram:
    """A drawing (SVG), inlined in HTML; the Markdown document shows ``alt`` instead."""

    svg: str
    alt: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Picture:
    """A PNG image, inlined in HTML; the Markdown document shows ``alt`` instead."""

    png: bytes
    alt: str


Block = str | Table | Diagram | Picture | Bullets


@dataclass(frozen=True)
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass(frozen=True)
class Document:
    title: str
    sections: list[Section]

    def render(self, format_: str) -> str:
        if format_ == "md":
            return self.markdown()
        if format_ == "html":
            return self.html()
        raise InvalidInput(f"unknown format {format_!r}. To fix this, use one of: "
                           f"{', '.join(FORMATS)}.")

    def markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        for section in self.sections:
            lines += [f"## {section.title}", ""]
            for block in section.blocks:
                if isinstance(block, Table):
                    lines.append("| " + " | ".join(block.header) + " |")
                    lines.append("|" + "---|" * len(block.header))
                    lines += ["| " + " | ".join(row) + " |" for row in block.rows]
                elif isinstance(block, Diagram | Picture):
                    lines.append(f"*{block.alt}*")
                elif isinstance(block, Bullets):
                    lines += [f"- {item}" for item in block.items]
                else:
                    lines.append(block)
                lines.append("")
        return "\n".join(lines)

    def html(self) -> str:
        parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                 f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
                 f"<body><h1>{html.escape(self.title)}</h1>"]
        for section in self.sections:
            parts.append(f"<h2>{html.escape(section.title)}</h2>")
            for block in section.blocks:
                if isinstance(block, Table):
                    head = "".join(f"<th>{html.escape(c)}</th>" for c in block.header)
                    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row)
                                   + "</tr>" for row in block.rows)
                    parts.append(f"<table><thead><tr>{head}</tr></thead>"
                                 f"<tbody>{body}</tbody></table>")
                elif isinstance(block, Diagram):
                    parts.append(f"<figure>{block.svg}<figcaption>{html.escape(block.alt)}"
                                 "</figcaption></figure>")
                elif isinstance(block, Picture):
                    data = base64.b64encode(block.png).decode()
                    parts.append(f"<figure><img src='data:image/png;base64,{data}' "
                                 f"alt='{html.escape(block.alt)}'><figcaption>"
                                 f"{html.escape(block.alt)}</figcaption></figure>")
                elif isinstance(block, Bullets):
                    parts.append("<ul>" + "".join(f"<li>{html.escape(item)}</li>"
                                                  for item in block.items) + "</ul>")
                else:
                    parts.append(f"<p>{html.escape(block)}</p>")
        parts.append("</body></html>")
        return "\n".join(parts)


_STYLE = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
          "padding:0 1rem;color:#222}table{border-collapse:collapse;margin:.5rem 0}"
          "td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;"
          "font-variant-numeric:tabular-nums}th{background:#f3f3f3}"
          "figcaption{color:#555;font-size:.9rem}img{max-width:100%}")
