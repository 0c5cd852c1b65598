"""`python -m suite claims`: re-check claims without training, of one stored run or of all of them."""
from __future__ import annotations

from pathlib import Path

from suite.errors import ConfigError
from suite.judge.claims import REGISTRY, load_registry
from suite.pipeline.options import Command
from suite.report.results_claims import CLAIMS_MD, write_results_claims
from suite.report.run_report import check_and_report, print_summary
from suite.report.run_md import claims_table, verdict_counts
from suite.run.store import RunStore


def add_arguments(p) -> None:
    p.add_argument("run_dir", nargs="?", default=None)
    p.add_argument("--all", action="store_true",
                   help="judge every claim over every run of --results-dir at once (writes claims.csv and "
                        f"{CLAIMS_MD} beside the run folders)")
    p.add_argument("--results-dir", default="results", help="with --all: where the runs are (default: results)")
    p.add_argument("--claims-file", default=None, help="a claims registry other than suite/data/claims.json")
    p.add_argument("--write", action="store_true", help="also rewrite the run's claims.csv and REPORT.md")


def run(a) -> int:
    if (a.run_dir is None) == (not a.all):
        raise ConfigError("claims: give a run folder or --all (one of the two)")
    registry = load_registry(a.claims_file or REGISTRY)
    if a.all:
        if not Path(a.results_dir).is_dir():
            raise ConfigError(f"results-dir: '{a.results_dir}' is not a directory")
        claims = write_results_claims(Path(a.results_dir), registry)
        print(f"Claims over every run ({verdict_counts(claims)}):")
        print(claims_table(claims).to_string(index=False))
        print(f"\nWrote {RunStore.version_dir(a.results_dir)}/claims.csv and {CLAIMS_MD}")
        return 0
    store = RunStore.open(a.run_dir)
    runs, claims = check_and_report(store, registry, write=a.write, figures=False)
    print_summary(runs, claims)
    return 0


COMMAND = Command("claims", "re-check claims without training: one stored run, or --all over every run",
                  add_arguments, run)
