"""Every claim judged over every committed run at once: results/<version>/claims.csv and CLAIMS.md.

A single run's claims.csv judges what that run holds; this table is what the suite says about
each published claim today, pooling the seeds of every run whose profile may decide it
(suite.judge.pooled). Every row names the runs its seeds came from.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from suite.core.io import atomic_write, write_csv
from suite.judge.pooled import RunRows, judge_pooled, pooled_rows
from suite.judge.verdict import ClaimVerdict, frame
from suite.report.markdown import md_table
from suite.report.run_md import HOW_TO_READ, T1_COLUMNS, main_table, claims_table, not_run_line, verdict_counts
from suite.run.store import MANIFEST, RUNS, RunStore

CLAIMS_MD = "CLAIMS.md"


def stored_runs(results_dir: Path) -> list[RunRows]:
    """Every run folder of the current version with rows, in name order."""
    out = []
    for path in sorted(RunStore.version_dir(results_dir).iterdir()):
        if (path / MANIFEST).is_file() and (path / RUNS).is_file():
            store = RunStore.open(path)
            manifest = store.manifest()
            out.append(RunRows(path.name, manifest["profile"], store.runs(), manifest.get("status", "complete")))
    return out


T1_IDS = {("attn", None): "attn", ("conv", None): "conv", ("routed", 0.1): "r01", ("routed", 0.5): "r05"}


def pooled_main_table(verdicts: list[ClaimVerdict], runs: list[RunRows], registry) -> pd.DataFrame:
    """The original's table over every committed run: per cell the T1 claim's pooled seeds (ours
    beside published, as in REPORT.md) with the seeds meeting the claim and its verdict."""
    by_id = {v.claim_id: v for v in verdicts}
    claims = {c.id: c for c in registry}
    frames = [pooled_rows(runs, claims[f"T1-{T1_IDS[(m, lam)]}-{d}"])
              for d in (126, 254, 510, 1022, 2046) for _, m, lam in T1_COLUMNS
              if f"T1-{T1_IDS[(m, lam)]}-{d}" in claims]
    rows = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else pd.DataFrame()
    table = main_table(rows) if len(rows) else pd.DataFrame()
    if table.empty:
        return table
    for i, d in enumerate(table["distance"]):
        for title, m, lam in T1_COLUMNS:
            v = by_id.get(f"T1-{T1_IDS[(m, lam)]}-{d}")
            if v is not None and v.verdict != "NOT-RUN":
                ours, _, pub = table.at[i, title].partition(" | ")
                table.at[i, title] = f"{ours}; {v.successes}/{v.n_seeds} seeds meet {v.claim_id}: {v.verdict}" + \
                    (f" | {pub}" if pub else "")
    return table


def render(verdicts: list[ClaimVerdict], runs: list[RunRows], registry=None) -> str:
    claims = frame(verdicts)
    table = claims_table(claims).assign(runs=[v.runs for v in verdicts if v.verdict != "NOT-RUN"])
    return "\n".join([
        "# Every published claim, over every committed run",
        "",
        f"Verdicts: {verdict_counts(claims)}. Seeds pooled from the runs whose profile may decide each claim "
        "(a seed stored in two runs counts once; see suite/judge/pooled.py). " + HOW_TO_READ,
        "",
        md_table(table),
        "",
        not_run_line(claims),
        "",
        *_main_section(verdicts, runs, registry),
        f"Runs read ({len(runs)}): " + ", ".join(_named(r) for r in runs) + ".",
        "",
    ])


def _main_section(verdicts, runs, registry) -> list[str]:
    table = pooled_main_table(verdicts, runs, registry) if registry is not None else pd.DataFrame()
    if table.empty:
        return []
    return ["## The original's main table, over every committed run", "",
            "Ours: mean over the pooled seeds of held-out test accuracy (and attention usage), the seeds meeting "
            "the cell's T1 claim and its verdict; `pub.` the published value. `not run`: no committed faithful "
            "cell.", "", md_table(table), ""]


def _named(run: RunRows) -> str:
    """A run still training is read too (its seeds arrive in a fixed order, and the verdicts stay
    valid however seeds are added); it says so."""
    if run.status == "complete":
        return run.name
    return f"{run.name} ({run.status}: {len(run.runs)} cells so far)"


def write_results_claims(results_dir: Path, registry) -> pd.DataFrame:
    """Judge, write claims.csv and CLAIMS.md beside the run folders, return the table."""
    runs = stored_runs(results_dir)
    verdicts = judge_pooled(runs, registry)
    vdir = RunStore.version_dir(results_dir)
    claims = frame(verdicts)
    write_csv(vdir / "claims.csv", claims)
    atomic_write(vdir / CLAIMS_MD, render(verdicts, runs, registry))
    return claims
