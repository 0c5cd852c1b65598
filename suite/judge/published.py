"""The original's main table as data (suite/data/published.csv), read by the report, the figures
and the claims' tests, so a published number is written down once.

One row per (distance, model, lambda): accuracy and attention usage as fractions. The baselines
have no router, so their `lambda` and `usage` are empty: the original publishes no usage for them.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from suite.errors import ConfigError, parse
from suite.schema.bounds import Distance, Finite

PUBLISHED = Path(__file__).resolve().parent.parent / "data" / "published.csv"
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class PublishedCell(BaseModel):
    model_config = ConfigDict(extra="forbid")

    distance: Distance
    model: str
    lam: Finite | None = Field(None, alias="lambda")
    accuracy: Fraction
    usage: Fraction | None = None


def key(distance, model: str, lam=None) -> tuple:
    """A cell's key: baselines by (distance, model), routed also by lambda (rounded like the figures)."""
    return int(distance), model, None if model != "routed" else round(float(lam), 6)


def load_published(path: Path = PUBLISHED) -> dict[tuple, PublishedCell]:
    """key(...) -> the published cell."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            raw = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"published values: cannot read '{path}' ({e})") from None
    out = {}
    for i, row in enumerate(raw, start=2):
        cell = parse(PublishedCell, {k: v for k, v in row.items() if v != ""}, f"{Path(path).name} line {i}")
        out[key(cell.distance, cell.model, cell.lam)] = cell
    return out


def pct(x: float) -> str:
    """Whole percent as the original prints it, one decimal below 1%."""
    return f"{x:.1%}" if 0 < x < 0.01 else f"{x:.0%}"


def text(cell: PublishedCell) -> str:
    """The cell as the original's table prints it: '100% (0.3%)', or '82%' for a baseline."""
    return pct(cell.accuracy) + ("" if cell.usage is None else f" ({pct(cell.usage)})")
