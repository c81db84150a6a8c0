"""HTML building blocks of the report: its style sheet and Content-Security-Policy, tables,
embedded images, and the text form of a value. No figures, no frames beyond rendering them."""

from __future__ import annotations

import base64
import html
import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5rem 2rem;
       color: #1a1a1a; max-width: 1500px; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
p.note { color: #555; font-size: 0.85rem; max-width: 70rem; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.15rem 1rem; font-size: 0.85rem; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
figure { margin: 0.5rem 0 1rem; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.8rem; color: #555; }
table { border-collapse: collapse; font-size: 0.78rem; margin: 0.5rem 0 1rem; }
th, td { padding: 0.15rem 0.5rem; border-bottom: 1px solid #eee; text-align: left; white-space: nowrap; }
th { background: #f4f4f4; position: sticky; top: 0; } td.num { text-align: right;
font-variant-numeric: tabular-nums; } tr.best td { background: #eef6ee; }
ul.verdict { font-size: 1.0rem; line-height: 1.5; } ul.verdict li { margin: 0.2rem 0; }
"""

# The page may load nothing but its own inline style and data: images; a browser blocks (and
# reports) anything else, so a stray external reference can never leak out of a report.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def image(images: Mapping[str, tuple[str, bytes]], element_id: str, caption: str) -> str:
    filename, png = images[element_id]
    data = base64.b64encode(png).decode("ascii")
    return (f"<figure><img id='{esc(element_id)}' alt='{esc(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{esc(caption)} (also {esc(filename)})</figcaption></figure>")


def table(df: pd.DataFrame, columns: Sequence[str], highlight: np.ndarray | None = None) -> str:
    """An HTML table of ``columns`` (those present), numbers right-aligned, 4 significant digits."""
    columns = [c for c in columns if c in df.columns]
    if df.empty:
        return "<p class='note'>(no rows)</p>"
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in columns]
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(df[columns].itertuples(index=False)):
        cells = "".join(f"<td class='num'>{esc(text(v))}</td>" if num else f"<td>{esc(text(v))}</td>"
                        for v, num in zip(row, numeric))
        marked = " class='best'" if highlight is not None and highlight[i] else ""
        body.append(f"<tr{marked}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def text(value: Any) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return "-" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (tuple, list)):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


