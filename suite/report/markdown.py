"""Markdown tables whose cells cannot break their row: a `|` inside a cell ends the cell on the
forge (a ConvOnly column showing AttnOnly's number), so every table is written through here."""
from __future__ import annotations

import pandas as pd


def escape_cell(value):
    """A cell's text with `|` escaped and line breaks flattened; other values unchanged."""
    if isinstance(value, str):
        return value.replace("\\|", "|").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return value


def md_table(df: pd.DataFrame, **kwargs) -> str:
    """`df.to_markdown(index=False, ...)` with every cell and header escaped."""
    safe = df.map(escape_cell) if len(df) else df
    safe = safe.rename(columns={c: escape_cell(str(c)) for c in df.columns})
    return safe.to_markdown(index=False, **kwargs)


def table_rows(text: str) -> list[list[str]]:
    """The tables of a Markdown text, each as its lines; for the tests that count cells per row."""
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def cell_count(line: str) -> int:
    """Cells of one table row, reading `\\|` as text, not as a border."""
    return line.replace("\\|", "").strip().strip("|").count("|") + 1
