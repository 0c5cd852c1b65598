"""`python -m suite models` and `tasks`: what the suite can train, listed."""
from __future__ import annotations

import pandas as pd

from baselines import MODELS, build_model, count_params
from tasks import TASKS

from suite.pipeline.options import Command, choice


def add_model_arguments(p) -> None:
    p.add_argument("--format", type=choice(["table", "csv"]), default="table")


def models(a) -> int:
    df = pd.DataFrame([{"model": n, "params": count_params(build_model(n))} for n in MODELS])
    print(df.to_csv(index=False), end="") if a.format == "csv" else print(df.to_string(index=False))
    return 0


def tasks(a) -> int:
    rows = [{"task": name, "description": (cls.__doc__ or "").strip().splitlines()[0]}
            for name, cls in sorted(TASKS.items())]
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


MODELS_COMMAND = Command("models", "list the models and their parameter counts (default config)",
                         add_model_arguments, models)
TASKS_COMMAND = Command("tasks", "list the tasks", lambda p: None, tasks)
