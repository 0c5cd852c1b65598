"""What an executor runs and what comes back: a job, its outcome, its failure, and the worker's side
(`run_job`), shared by every executor so a job fails the same way wherever it ran."""
from __future__ import annotations

import gc
import os
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from suite.core.plugins import exit_text, typed_by_nobody


@dataclass
class Job:
    """One independent unit of work: `fn(*args, **kwargs)`; `key` identifies it to the caller,
    `label` names it in the progress bar (and in Ray's task list)."""
    key: Any
    label: str
    fn: Callable
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


@dataclass
class Failure:
    """Why a job produced no result: the exception's type and message (one line), and the
    worker's traceback when there is one."""
    type: str
    message: str
    detail: str = ""

    @property
    def line(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


@dataclass
class Outcome:
    job: Job
    value: Any = None
    failure: Failure | None = None


class JobFailed(Exception):
    """A job's failure as an exception (its str is the one line stored with a failed cell)."""


def failure_of(err: BaseException, detail: str = "") -> Failure:
    return Failure(type(err).__name__, " ".join(str(err).split()), detail)


def run_job(fn: Callable, args: tuple, kwargs: dict, threads: int | None, path: Sequence[str] = (),
            worker: bool = False):
    """The worker's side of every executor: ("ok", value) or ("failed", Failure). Any exception,
    SystemExit included (a job has no business ending its process: a plugin's sys.exit(0) must not
    read as success), is a failure. A KeyboardInterrupt is a failure where no Ctrl-C can be behind
    it: in a `worker` (workers ignore SIGINT) or, here, when no SIGINT arrived (core.plugins);
    otherwise it propagates."""
    for p in path:  # the driver's import path, where it exists here (plugin routers, a repo checkout)
        if p not in sys.path and os.path.isdir(p):
            sys.path.append(p)
    if threads:
        torch.set_num_threads(threads)
    try:
        return "ok", fn(*args, **kwargs)
    except Exception as e:
        failure = failure_of(e, traceback.format_exc())
    except SystemExit as e:
        failure = Failure("SystemExit", f"the cell's code called {exit_text(e)}", traceback.format_exc())
    except KeyboardInterrupt:
        if not (worker or typed_by_nobody()):
            raise
        failure = Failure("KeyboardInterrupt", "raised by the cell's code (no Ctrl-C was pressed)",
                          traceback.format_exc())
    except BaseException as e:  # GeneratorExit, a BaseException of a plugin's own
        failure = failure_of(e, traceback.format_exc())
    # out of the except block, the failed job's frames (and tensors) are free: release them, so an
    # out-of-memory cell leaves the device usable for the next one in this worker
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    return "failed", failure


def outcome_of(job: Job, status) -> Outcome:
    """The Outcome of `run_job`'s ("ok", value) or ("failed", Failure)."""
    kind, value = status
    return Outcome(job, value=value) if kind == "ok" else Outcome(job, failure=value)
