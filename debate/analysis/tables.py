"""Text renderings of analysis tables: rich tables for the terminal, Markdown for reports."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def format_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3f}"
    return str(value)


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table; `|` inside cells is escaped."""
    header = [str(c) for c in frame.columns]
    rows = [[format_cell(v).replace("|", "\\|").replace("\n", " ") for v in row]
            for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def to_rich(frame: pd.DataFrame, title: str):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        table.add_column(str(column), justify="right" if numeric else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(format_cell(v) for v in row))
    return table


def rich_width(frame: pd.DataFrame) -> int:
    """Characters a rich table of `frame` needs to show every cell unwrapped."""
    width = 1
    for column in frame.columns:
        cells = frame[column].map(format_cell)
        longest = cells.str.len().max() if len(cells) else 0
        width += max(len(str(column)), 0 if pd.isna(longest) else int(longest)) + 3
    return width
