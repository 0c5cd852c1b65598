"""`python -m suite claims`: re-check a stored run's claims without training."""
from __future__ import annotations

from suite.judge.claims import REGISTRY, load_registry
from suite.pipeline.options import Command
from suite.report.run_report import check_and_report, print_summary
from suite.run.store import RunStore


def add_arguments(p) -> None:
    p.add_argument("run_dir")
    p.add_argument("--claims-file", default=None, help="a claims registry other than suite/data/claims.json")
    p.add_argument("--write", action="store_true", help="also rewrite the run's claims.csv and REPORT.md")


def run(a) -> int:
    store = RunStore.open(a.run_dir)
    runs, claims = check_and_report(store, load_registry(a.claims_file or REGISTRY), write=a.write, figures=False)
    print_summary(runs, claims)
    return 0


COMMAND = Command("claims", "re-check the claims of a stored run without training", add_arguments, run)
