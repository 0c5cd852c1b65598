"""What every command's arguments share: one-line errors (exit 2), typed values checked against the
schema's bounds, the executor and run-folder options, and the Command record `cli` dispatches on."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Annotated, Callable

import pydantic
from pydantic import Field

from baselines.config import MAX_KWARGS_BYTES, MAX_KWARGS_DEPTH, json_depth

from suite.errors import ConfigError, one_line
from suite.run.devices import DEVICES
from suite.schema.bounds import Distance, Lambda, Name, Seed, SeedBudget, SeqLen


@dataclass(frozen=True)
class Command:
    """One subcommand: its name and help, the arguments it owns, and what it runs (an exit code)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """argparse, but errors are one line naming the parameter (no usage dump), exit 2."""

    def error(self, message):
        raise ConfigError(message)


def typed(annotation, kind=int, what: str = ""):
    """An argparse type: the text read as `kind`, then validated against the schema's bounds."""
    adapter = pydantic.TypeAdapter(annotation)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what or kind.__name__}, got '{text}'") from None
        try:
            return adapter.validate_python(value)
        except pydantic.ValidationError as e:
            raise argparse.ArgumentTypeError(one_line(e).removeprefix("input: ")) from None
    return parse


def choice(allowed):
    def parse(text):
        if text not in allowed:
            raise argparse.ArgumentTypeError(f"unknown '{text}'; allowed: {', '.join(allowed)}")
        return text
    return parse


def _shown(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def json_object(text: str) -> dict:
    """A JSON object of bounded size and depth (the model's own limits): deeper input must be one
    line, not the RecursionError of a recursive reader."""
    if len(text.encode("utf-8", "replace")) > MAX_KWARGS_BYTES:
        raise argparse.ArgumentTypeError(f"larger than {MAX_KWARGS_BYTES // 1024} KiB of JSON ({len(text)} "
                                         f"characters); a router's settings are accepted, not data")
    deep = False
    try:
        value = json.loads(text, parse_constant=lambda c: float("nan"))
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e.msg} at column {e.colno}): '{_shown(text)}'") from None
    except RecursionError:
        deep = True
    if deep or json_depth(value) > MAX_KWARGS_DEPTH:
        raise argparse.ArgumentTypeError(f"nested more than {MAX_KWARGS_DEPTH} levels deep: '{_shown(text)}'")
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got '{_shown(text)}'")
    return value


SEED = typed(Seed, int, "an integer")
DISTANCE = typed(Distance, int, "an integer")
SEQ_LEN = typed(SeqLen, int, "an integer")
LAMBDA = typed(Lambda, float, "a number")
USAGE = typed(Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)], float, "a number")
MODEL_SIZE = typed(Annotated[int, Field(ge=1)], int, "an integer")
RUN_ID = typed(Name, str, "a run id")
COUNT = typed(Annotated[int, Field(ge=1, le=4096)], int, "an integer")
SEED_BUDGET = typed(SeedBudget, int, "an integer")
GPU_FRACTION = typed(Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)], float, "a number")


def add_executor_options(p) -> None:
    """Where the cells train (suite/run/executor.py); checked before any work."""
    from suite.run.executor import EXECUTORS

    p.add_argument("--executor", type=choice(list(EXECUTORS)), default="local",
                   help="local: one cell after another in this process (default); processes: N spawned worker "
                        "processes; ray: each cell a Ray task (pip install -e '.[ray]')")
    p.add_argument("--workers", type=COUNT, default=None, metavar="N",
                   help="cells at once (processes, ray; default: the cores / threads per worker, 1 on a GPU; "
                        "on a Ray cluster: as many as its resources hold)")
    p.add_argument("--threads-per-worker", type=COUNT, default=None, metavar="K",
                   help="torch threads per cell (default: 1 for processes and ray; local: unchanged)")
    p.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT",
                   help="ray only: a running Ray cluster (default: start a local instance with N x K CPUs)")
    p.add_argument("--gpus-per-cell", type=GPU_FRACTION, default=None, metavar="F",
                   help="ray on CUDA only: the GPU share of one cell (default 1; 0.25 packs 4 cells on a GPU)")


def open_executor(a, device):
    """The executor of the parsed options, checked (one line, exit 2, before any work)."""
    from suite.run.executor import ExecutorSpec, make_executor

    return make_executor(ExecutorSpec(a.executor, a.workers, a.threads_per_worker, a.ray_address, a.gpus_per_cell),
                         device)


MODEL_FLAGS = ("d_model", "n_layers", "n_heads", "kernel_size")


def add_run_options(p, resume_help: str) -> None:
    """The options of a command that trains a profile into a run folder (reproduce, audit)."""
    p.add_argument("--results-dir", default="results")
    p.add_argument("--resume", default=None, type=RUN_ID, metavar="RUN_ID", help=resume_help)
    p.add_argument("--fresh", action="store_true", help="start a new run even if one of this profile is unfinished")
    p.add_argument("--device", type=choice(DEVICES), default="auto")
    p.add_argument("--dry-run", action="store_true", help="print the plan and the estimate, train nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--mixed-threads", action="store_true",
                   help="resume a run at another torch thread count than its cells trained at (refused "
                        "otherwise: the count changes float summation order and with it seeds' outcomes)")
    add_executor_options(p)
