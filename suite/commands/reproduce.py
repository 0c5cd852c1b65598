"""`python -m suite reproduce`: train a profile's grid, check every claim, write a results folder."""
from __future__ import annotations

from suite.pipeline.options import SEED_BUDGET, Command, add_run_options, open_executor
from suite.pipeline.reproduce import reproduce
from suite.run.devices import resolve_device


def add_arguments(p) -> None:
    p.add_argument("--profile", default=None,
                   help="smoke, cpu, paper, or a path to a .json profile (default: paper on a GPU, cpu otherwise)")
    add_run_options(p, "continue an interrupted run")
    p.add_argument("--until-decided", action="store_true",
                   help="after the profile's cells, add one seed per round to every cell whose claim is still "
                        "INCONCLUSIVE, until each is decided or --max-seeds is reached (the plan shows the worst case)")
    p.add_argument("--max-seeds", type=SEED_BUDGET, default=None, metavar="N",
                   help="with --until-decided: seeds per cell at most (1-32, default 32, what the verdicts' "
                        "simulation covers)")


def run(a) -> int:
    device = resolve_device(a.device)
    with open_executor(a, device) as executor:
        return reproduce(a.profile, a.results_dir, a.resume, device, dry_run=a.dry_run,
                         fresh=a.fresh, progress=not a.quiet, executor=executor,
                         mixed_threads=a.mixed_threads, until_decided=a.until_decided, max_seeds=a.max_seeds)


COMMAND = Command("reproduce", "train a profile's grid, check every claim, write a results folder",
                  add_arguments, run)
