"""The executor's interface (what the grid driver calls), its options, and the local executor: one
job after another in this process, the default and what the others must match."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

from suite.run.executor_jobs import Job, Outcome, outcome_of, run_job

#: seconds between looks at the jobs in flight (the progress bar's refresh)
POLL = 0.5


@dataclass(frozen=True)
class ExecutorSpec:
    """The command line's executor options, unchecked (`make_executor` checks them)."""
    kind: str = "local"
    workers: int | None = None
    threads: int | None = None
    ray_address: str | None = None
    gpus_per_cell: float | None = None


def default_workers(device: torch.device, threads: int) -> int:
    """As many workers as the cores allow at `threads` each; one on a GPU (they would share it)."""
    if device.type == "cuda":
        return 1
    return max(1, (os.cpu_count() or 1) // threads)


def plural(n: int, word: str) -> str:
    return f"{n:g} {word}" + ("" if n == 1 else "s")


@contextlib.contextmanager
def torch_threads(n: int | None):
    """torch's intra-op thread count set to n (if given) inside the block, restored after."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class Executor:
    """Runs jobs, yields their outcomes as they finish. `with executor:` releases what it holds."""

    kind = ""
    #: jobs run outside this process (their own progress bars would interleave: the caller hides them)
    remote = False

    def __init__(self, spec: ExecutorSpec, device: torch.device):
        self.spec, self.device = spec, torch.device(device)
        self.threads = spec.threads

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        pass

    def measuring(self):
        """A context in which the driver's step-time measurements see the workers' thread count."""
        return torch_threads(self.threads)

    def slots(self) -> int:
        """How many jobs run at the same time."""
        return 1

    def cell_threads(self) -> int:
        """The torch thread count each cell trains at (part of its result's identity)."""
        return self.threads or torch.get_num_threads()

    def cells_per_device(self) -> int:
        """How many cells hold memory on one device at the same time (the memory check multiplies)."""
        return self.slots()

    def contention(self) -> float:
        """Over-subscription of this machine's cores by the workers' threads (1: none, or unknown)."""
        if self.device.type != "cpu" or not self.threads:
            return 1.0
        return max(1.0, self.slots() * self.threads / (os.cpu_count() or 1))

    def describe(self) -> str:
        raise NotImplementedError

    def run(self, jobs: Sequence[Job], on_running: Callable[[list[str]], None] | None = None) -> Iterator[Outcome]:
        """Outcomes in completion order. Close the generator (contextlib.closing) when leaving early:
        that stops the workers."""
        raise NotImplementedError


class LocalExecutor(Executor):
    kind = "local"

    def describe(self) -> str:
        threads = self.threads or torch.get_num_threads()
        return f"local: one cell at a time in this process, {plural(threads, 'torch thread')}"

    def run(self, jobs, on_running=None):
        with torch_threads(self.threads):
            for job in jobs:
                if on_running:
                    on_running([job.label])
                yield outcome_of(job, run_job(job.fn, job.args, job.kwargs, None))


def parallel_estimate(bounds: Sequence[float], slots: int) -> float:
    """Wall time of jobs with these durations, started in this order on `slots` workers, each job
    taking the first free worker (what the executors do)."""
    free = [0.0] * max(1, slots)
    for b in bounds:
        i = min(range(len(free)), key=free.__getitem__)
        free[i] += b
    return max(free) if bounds else 0.0
