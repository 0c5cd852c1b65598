"""A stored run's verdicts and report: claims.csv, the figures, then REPORT.md, and the summary
a terminal prints."""
from __future__ import annotations

import sys

from suite.errors import ConfigError
from suite.core.io import write_csv
from suite.figures.draw import render_figures
from suite.judge.claims import check_claims, load_registry
from suite.report.run_md import claims_table, main_table, not_run_line, report_markdown, verdict_counts
from suite.run.store import CLAIMS, REPORT, RunStore
from suite.schema.rows import faithful_rows


def check_and_report(store: RunStore, registry: list | None = None, write: bool = True, figures: bool = True):
    """Verdicts of a stored run; with `write` (holding the run's lock): claims.csv, the figures
    (from the stored files only, if `figures`), then REPORT.md embedding whatever figures exist."""
    if not write:
        return _verdicts(store, registry)
    with store.lock():
        return write_report(store, registry, figures)


def _verdicts(store: RunStore, registry: list | None):
    runs = store.runs()
    claims = check_claims(runs, store.manifest()["profile"], registry if registry is not None else load_registry())
    return runs, claims


def write_report(store: RunStore, registry: list | None = None, figures: bool = True, status: dict | None = None):
    """claims.csv, figures, REPORT.md, in that order; the caller holds the lock. `status`: the
    manifest fields the run will have once its report exists (the report shows them)."""
    runs, claims = _verdicts(store, registry)
    write_csv(store.path / CLAIMS, claims)
    if figures:
        try:
            render_figures(store.path)
        except ConfigError as e:
            print(f"figures: not drawn: {e}", file=sys.stderr)
    manifest = {**store.manifest(), **(status or {})}
    store.write_text(REPORT, report_markdown(manifest, manifest.get("plan", ""), runs, claims, store.path))
    return runs, claims


def print_summary(runs, claims, out=None) -> None:
    out = out or sys.stdout
    print("\nClaims (" + verdict_counts(claims) + ")", file=out)
    table = claims_table(claims)
    if not table.empty:
        print(table.to_string(index=False), file=out)
    print(not_run_line(claims), file=out)
    table = main_table(runs)
    faithful = not faithful_rows(runs).empty
    if not table.empty and faithful:
        print("\nThe original's main table (ours | published):", file=out)
        print(table.to_string(index=False), file=out)
    else:
        print("\nThe original's main table: no cell of this run uses the faithful model", file=out)
    failed = runs[runs["status"] == "failed"] if "status" in runs.columns else runs.iloc[:0]
    if len(failed):
        print(f"\n{len(failed)} cell(s) FAILED, stored as failed (a resume does not retry them; "
              f"--fresh starts a new run that retrains every cell):", file=out)
        for _, r in failed.iterrows():
            print(f"  {r['model']} d={r['distance']} lambda={r['lambda_target']:g} seed={r['seed']}: {r['error']}",
                  file=out)
