"""`python -m suite audit`: train the `audit` profile, swap the decisions of every routed model
that kept its weights, and answer the original's questionable points in AUDIT.md.

Seven other runs feed it when they exist under the same results folder (suite/audit/inputs.py
SOURCES): the `headline` run, the `curriculum` run, `battery-mini`, `mqar-mini`, `swaps-faithful`,
`mqar-learnable` and `mqar-controls`. Each paragraph of AUDIT.md names the run it reads, its tier
and its seeds, and any protocol other than the faithful budget; whatever is missing is said to be
missing. The layers: training (reproduce) -> analysis of the stored models (suite/audit/analysis)
-> findings as records (suite/audit/build) -> figures and prose (suite/report) -> the run folder.
"""
from __future__ import annotations

from pathlib import Path

import torch

from suite.audit.analysis import analyse
from suite.audit.build import REGRET, audit_findings
from suite.audit.findings import AuditFindings
from suite.audit.inputs import SOURCES, SWAP_SOURCES, gather, newest_run
from suite.pipeline.options import Command, add_run_options, open_executor
from suite.pipeline.reproduce import reproduce
from suite.run.devices import resolve_device
from suite.core.io import write_csv
from suite.errors import ConfigError
from suite.judge.registry import Claim, load_registry
from suite.report.audit_figures import draw
from suite.report.audit_md import render
from suite.run.profiles import load_profile
from suite.run.store import RunStore

AUDIT = "AUDIT.md"


def write_audit(store: RunStore, results_dir: Path, registry: list[Claim] | None = None) -> AuditFindings:
    """regret.csv, the figures and AUDIT.md of the audit run `store`, from what is stored now; the
    findings they show, as a record."""
    inputs = gather(store, Path(results_dir))
    if len(inputs.table):
        write_csv(store.path / REGRET, inputs.table)
    findings = audit_findings(inputs, registry)
    findings = findings.with_figures(draw(findings, inputs, store.path / "figures"))
    store.write_text(AUDIT, render(findings))
    return findings


def audit(profile_name: str, results_dir: Path, resume: str | None, device: torch.device, dry_run: bool = False,
          fresh: bool = False, progress: bool = True, executor=None, claims_file: str | Path | None = None,
          mixed_threads: bool = False) -> int:
    results_dir = Path(results_dir)
    registry = load_registry(Path(claims_file)) if claims_file else load_registry()
    rc = reproduce(profile_name, results_dir, resume, device, dry_run=dry_run, fresh=fresh, progress=progress,
                   executor=executor, command="audit", mixed_threads=mixed_threads)
    if rc != 0 or dry_run:
        return rc
    store = RunStore.find(results_dir, resume) if resume else newest_run(results_dir, load_profile(profile_name).name)
    if store is None:
        raise ConfigError(f"audit: no run of profile '{profile_name}' under {results_dir}")
    sources = [store] + [s for s in (newest_run(results_dir, SOURCES[k]) for k in (*SWAP_SOURCES, "headline"))
                         if s is not None]
    with store.lock():
        analyse(store, sources, device, progress)
        write_audit(store, results_dir, registry)
    print(f"Wrote {store.path / AUDIT}")
    return 0


def add_arguments(p) -> None:
    p.add_argument("--profile", default=None,
                   help="the audit profile (default: audit; with --resume, the run's own), or a path to a .json profile")
    add_run_options(p, "continue an interrupted audit run")
    p.add_argument("--claims-file", default=None, help="a claims registry other than suite/data/claims.json")


def run(a) -> int:
    device = resolve_device(a.device)
    with open_executor(a, device) as executor:
        return audit(a.profile or (None if a.resume else "audit"), a.results_dir, a.resume, device, dry_run=a.dry_run,
                     fresh=a.fresh, progress=not a.quiet, executor=executor, claims_file=a.claims_file,
                     mixed_threads=a.mixed_threads)


COMMAND = Command("audit", "train the audit profile, swap every kept model's decisions, answer the original's "
                  "questionable points in AUDIT.md", add_arguments, run)
