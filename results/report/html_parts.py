"""Small HTML pieces of the report: the style sheet, escaping, numbers, tables, figures."""

from __future__ import annotations

import base64
import html
import math
from typing import Any

from results.board.format import format_value

__all__ = ["CSS", "esc", "fmt", "img", "interval", "table"]

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #1d2430; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccd; padding-top: .6em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.92em; }
th, td { border: 1px solid #d4d8e0; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #eef1f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; }
.figures figure { margin: 0; } figcaption { font-size: 0.85em; color: #556; }
.gallery { display: flex; flex-wrap: wrap; gap: 10px; }
.gallery figure { margin: 0; width: 192px; }
.gallery figcaption { overflow-wrap: anywhere; hyphens: none; }
.headline { background: #f5f7fb; border: 1px solid #d4d8e0; padding: 0.6em 1em; }
.note { color: #556; font-size: 0.9em; }
pre { background: #f5f7fb; padding: 0.8em; overflow-x: auto; white-space: pre-wrap; }
.scroll { max-width: 100%; overflow-x: auto; }
img { max-width: 100%; height: auto; }
.figures figure { max-width: 100%; }
@media (max-width: 760px) {
  body { margin: 1em auto; padding: 0 0.5em; }
  table { font-size: 0.8em; } th, td { padding: 2px 4px; }
}
"""


def esc(value: Any) -> str:
    """HTML-escaped text of a value."""
    return html.escape(str(value))


def fmt(value: Any, digits: int = 4) -> str:
    """A value as the report prints it (:func:`results.board.format.format_value`)."""
    return format_value(value, digits)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """An HTML table (numbers right-aligned) that scrolls by itself when wider than the page."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for value in row:
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            cells.append(f"<td{' class=num' if numeric else ''}>{esc(fmt(value))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<div class=scroll><table><tr>{head}</tr>{''.join(body)}</table></div>"


def img(png: bytes, alt: str, caption: str = "") -> str:
    """A figure with the PNG embedded as a data URI, and its caption."""
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}">{cap}</figure>'


def interval(metric: dict[str, Any]) -> str:
    """A metric's 95% interval as text, or ``—``."""
    low, high = metric.get("low"), metric.get("high")
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "—"
    return f"{low:.4f} – {high:.4f}"
