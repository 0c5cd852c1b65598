"""The audit's answers as data: one `Finding` per questionable point of the original, with its
verdict, the numbers behind it and the rows it rests on, so tests and readers can check a verdict
without parsing AUDIT.md. The report layer only formats these records."""
from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal[
    "NO DATA", "SEE PARTS",
    # 1. notional against executed savings (UNDECIDED: also a regret interval across 0, point 6)
    "NOTIONAL OVERSTATES", "CONSISTENT", "UNDECIDED",
    # 2. the usage plateau (per tier)
    "NO PLATEAU", "ONE WHOLE LAYER", "SPREAD OVER LAYERS", "MIXED",
    # 3. the headline claim over seeds (the judge's verdicts)
    "PASS", "FAIL", "INCONCLUSIVE", "NOT-RUN",
    # 4. the positional shortcut: assoc_recall's `last` swap CANNOT TELL (its query is the last token);
    # mqar decides
    "NO SOLVED MODEL", "CANNOT TELL",
    "RESISTS THE SHORTCUT", "DOES NOT RESIST", "PARTLY RESISTS",
    # 5. usage below one query per layer
    "SKIPS LAYERS", "SOME SKIP LAYERS", "NONE SKIPS LAYERS",
    # 6. router regret (per group)
    "LEARNED BETTER", "CONTROL BETTER", "NEITHER SOLVES", "TIE", "NO CONTROL AT THIS BUDGET",
]
Cell = str | int | float | None
FROZEN = ConfigDict(frozen=True, extra="forbid")


def overall(parts: dict[str, str]) -> str:
    """One verdict for several parts: theirs when they agree, else 'SEE PARTS'."""
    values = set(parts.values())
    return values.pop() if len(values) == 1 else "SEE PARTS" if values else "NO DATA"


def plain(v) -> Cell:
    """A table cell as a plain Python value (numpy scalars and pandas NA unwrapped)."""
    if v is None or v is pd.NA:
        return None
    if hasattr(v, "item"):
        v = v.item()
    return v if isinstance(v, (str, int, float)) else str(v)


class Evidence(BaseModel):
    """One stored row a finding rests on: its run, config hash and seed."""
    model_config = FROZEN

    run_id: str
    config_hash: str
    seed: int | None = None


def evidence(df: pd.DataFrame, run_id: str | None = None) -> list[Evidence]:
    """The distinct (run, config hash, seed) rows of `df`; `run_id` where the rows carry none."""
    if df is None or df.empty or "config_hash" not in df.columns:
        return []
    runs = df["run_id"] if "run_id" in df.columns and run_id is None else [run_id or ""] * len(df)
    seeds = [None if pd.isna(s) else int(s) for s in df["seed"]] if "seed" in df.columns else [None] * len(df)
    rows = dict.fromkeys(zip(map(str, runs), map(str, df["config_hash"]), seeds))
    return [Evidence(run_id=r, config_hash=c, seed=s) for r, c, s in rows]


class Table(BaseModel):
    """A table to print as it is: column names and rows of plain cells."""
    model_config = FROZEN

    columns: list[str]
    rows: list[list[Cell]]
    floatfmt: str = "g"
    numparse: bool = True
    #: the line printed under the table: what a column shows where two readings exist ('' for none)
    note: str = ""

    @classmethod
    def of(cls, df: pd.DataFrame, floatfmt: str = "g", numparse: bool = True, note: str = "") -> "Table":
        return cls(columns=[str(c) for c in df.columns], rows=[[plain(v) for v in r] for r in df.itertuples(index=False)],
                   floatfmt=floatfmt, numparse=numparse, note=note)


class Figures(BaseModel):
    """Figures a finding asks for: `key` names what to draw; `files` are filled once drawn."""
    model_config = FROZEN

    key: str
    alt: str
    caption: str = ""
    files: list[str] = []
    #: what the report says when nothing was drawn ('' says nothing)
    missing: str = "(figure not drawn: no data)"


class Finding(BaseModel):
    """One audit point: its verdict (and per-part verdicts), the numbers and rows behind it, and the
    plain sentences the report prints."""
    model_config = FROZEN

    point: int = Field(ge=1, le=6)
    title: str
    verdict: Verdict
    #: per tier / task / group, where the point answers for several
    parts: dict[str, Verdict] = {}
    #: the verdict line as the report prints it (with its counts)
    summary: str
    numbers: dict[str, float | int | None] = {}
    evidence: list[Evidence] = []
    #: paragraphs before the list, then one sentence per listed item, then a table with its note
    intro: list[str] = []
    lines: list[str] = []
    table_note: str = ""
    table: Table | None = None
    figures: list[Figures] = []


def no_data(point: int, title: str, why: str) -> Finding:
    return Finding(point=point, title=title, verdict="NO DATA", summary="NO DATA", intro=[why])


class Section(BaseModel):
    """A part of AUDIT.md beyond the six points (tables, the curriculum, maps)."""
    model_config = FROZEN

    title: str
    intro: list[str] = []
    lines: list[str] = []
    table: Table | None = None
    after: list[str] = []
    figures: list[Figures] = []


class SourceRef(BaseModel):
    """One run the audit read (or looked for)."""
    model_config = FROZEN

    key: str
    run_id: str | None = None
    status: str | None = None
    cells: int = 0


class AuditFindings(BaseModel):
    """Everything AUDIT.md says, as data."""
    model_config = FROZEN

    run_id: str
    suite_version: str | None = None
    profile: str
    status: str | None = None
    git_sha: str = "?"
    device: str = "?"
    sources: list[SourceRef]
    points: list[Finding]
    sections: list[Section] = []
    #: the files of the audit run, with what each holds ('' for nothing said)
    files: dict[str, str] = {}

    def point(self, n: int) -> Finding:
        return next(p for p in self.points if p.point == n)

    def with_figures(self, drawn: dict[str, list[str]]) -> "AuditFindings":
        """A copy whose figure requests carry the file names drawn for their keys."""
        def fill(figs):
            return [f.model_copy(update={"files": list(drawn.get(f.key, []))}) for f in figs]
        return self.model_copy(update={
            "points": [p.model_copy(update={"figures": fill(p.figures)}) for p in self.points],
            "sections": [s.model_copy(update={"figures": fill(s.figures)}) for s in self.sections]})
