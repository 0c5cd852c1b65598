"""Every claim judged over every committed run at once: results/<version>/claims.csv and CLAIMS.md.

A single run's claims.csv judges what that run holds; this table is what the suite says about
each published claim today, pooling the seeds of every run whose profile may decide it
(suite.judge.pooled). Every row names the runs its seeds came from.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from suite.core.io import atomic_write, write_csv
from suite.judge.pooled import RunRows, judge_pooled
from suite.judge.verdict import ClaimVerdict, frame
from suite.report.markdown import md_table
from suite.report.run_md import HOW_TO_READ, claims_table, not_run_line, verdict_counts
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


def render(verdicts: list[ClaimVerdict], runs: list[RunRows]) -> str:
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
        f"Runs read ({len(runs)}): " + ", ".join(_named(r) for r in runs) + ".",
        "",
    ])


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
    atomic_write(vdir / CLAIMS_MD, render(verdicts, runs))
    return claims
