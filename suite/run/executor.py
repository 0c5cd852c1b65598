"""Executors: run independent jobs (the cells of a grid) and hand their results back to the driver,
which alone writes the store, in the order the jobs finish.

- `local`: one job after another in this process (the default; what the suite always did);
- `processes`: N worker processes (`concurrent.futures.ProcessPoolExecutor`, "spawn" start, so
  CUDA is safe to use in them), at most N jobs in flight;
- `ray`: each job a Ray task, on a local instance started here (`num_cpus = N x K`, shut down at the
  end) or on a running cluster (`--ray-address auto|HOST:PORT`); resources per job: K CPUs, and on
  CUDA a (fractional) GPU.

A job is `fn(*args, **kwargs)`, run in the worker after `torch.set_num_threads(K)`. Whatever it
raises (an `Exception`: out of memory, a non-finite loss, a bug) comes back as that job's failure,
one line with its type, and the other jobs go on. A worker process that dies fails the job it ran:
under `processes` the jobs in flight when a worker died are run again one at a time in a fresh
worker, so only the job that kills its worker alone is stored as failed. KeyboardInterrupt is never a
failure: the driver stops every worker (workers ignore SIGINT themselves, the driver terminates and
reaps them) and the interrupt propagates.

The executor knows nothing of cells or stores: `suite.run.grid.train_cells` builds the jobs
and writes what comes back. This module is the front door (the names, `make_executor`); the parts
live beside it: executor_jobs (a job and its outcome), executor_base (the interface, `local`),
executor_pool (`processes`), executor_ray (`ray`).
"""
from __future__ import annotations

import torch

from suite.errors import ConfigError
from suite.run.executor_base import Executor, ExecutorSpec, LocalExecutor, parallel_estimate, torch_threads
from suite.run.executor_jobs import Failure, Job, JobFailed, Outcome, run_job
from suite.run.executor_pool import ProcessExecutor
from suite.run.executor_ray import RayExecutor

EXECUTORS = ("local", "processes", "ray")


def _count(name: str, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{name}: must be an integer >= 1, got {value!r}")


def make_executor(spec: ExecutorSpec, device: torch.device) -> Executor:
    """The executor the options ask for, checked: a bad option is a one-line ConfigError before any
    work (Ray: not installed, an address that does not answer). Use it as a context manager."""
    if spec.kind not in EXECUTORS:
        raise ConfigError(f"executor: unknown '{spec.kind}'; allowed: {', '.join(EXECUTORS)}")
    _count("--workers", spec.workers)
    _count("--threads-per-worker", spec.threads)
    if spec.kind != "ray":
        for flag, value in (("--ray-address", spec.ray_address), ("--gpus-per-cell", spec.gpus_per_cell)):
            if value is not None:
                raise ConfigError(f"{flag}: only with --executor ray (got --executor {spec.kind})")
    if spec.kind == "local":
        if spec.workers not in (None, 1):
            raise ConfigError(f"--workers: the local executor runs one cell at a time; use --executor processes "
                              f"or ray for {spec.workers} workers")
        return LocalExecutor(spec, device)
    if spec.kind == "processes":
        return ProcessExecutor(spec, device)
    return RayExecutor(spec, device)


__all__ = ["EXECUTORS", "Executor", "ExecutorSpec", "Failure", "Job", "JobFailed", "Outcome", "make_executor",
           "parallel_estimate", "run_job", "torch_threads"]
