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

The executor knows nothing of cells or stores: `suite.commands.reproduce.train_cells` builds the jobs
and writes what comes back.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import gc
import logging
import multiprocessing
import os
import re
import signal
import socket
import sys
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch

from suite.errors import ConfigError

EXECUTORS = ("local", "processes", "ray")
RAY_MISSING = "executor: ray is not installed; pip install -e '.[ray]'"
#: seconds to wait for a TCP connection to --ray-address before calling it unreachable
CONNECT_TIMEOUT = 3.0
#: seconds between looks at the jobs in flight (the progress bar's refresh)
POLL = 0.5


# -- what a job is, and what comes back ------------------------------------------------------------
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


def run_job(fn: Callable, args: tuple, kwargs: dict, threads: int | None, path: Sequence[str] = ()):
    """The worker's side of every executor: ("ok", value) or ("failed", Failure). Only an
    Exception is a failure; KeyboardInterrupt and SystemExit propagate."""
    for p in path:  # the driver's import path, where it exists here (plugin routers, a repo checkout)
        if p not in sys.path and os.path.isdir(p):
            sys.path.append(p)
    if threads:
        torch.set_num_threads(threads)
    try:
        return "ok", fn(*args, **kwargs)
    except Exception as e:
        failure = failure_of(e, traceback.format_exc())
    # out of the except block, the failed job's frames (and tensors) are free: release them, so an
    # out-of-memory cell leaves the device usable for the next one in this worker
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    return "failed", failure


def _outcome(job: Job, status) -> Outcome:
    kind, value = status
    return Outcome(job, value=value) if kind == "ok" else Outcome(job, failure=value)


# -- the options ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExecutorSpec:
    """The command line's executor options, unchecked (`make_executor` checks them)."""
    kind: str = "local"
    workers: int | None = None
    threads: int | None = None
    ray_address: str | None = None
    gpus_per_cell: float | None = None


def _count(name: str, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{name}: must be an integer >= 1, got {value!r}")


def make_executor(spec: ExecutorSpec, device: torch.device) -> "Executor":
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


def _default_workers(device: torch.device, threads: int) -> int:
    """As many workers as the cores allow at `threads` each; one on a GPU (they would share it)."""
    if device.type == "cuda":
        return 1
    return max(1, (os.cpu_count() or 1) // threads)


def _plural(n: int, word: str) -> str:
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
        return f"local: one cell at a time in this process, {_plural(threads, 'torch thread')}"

    def run(self, jobs, on_running=None):
        with torch_threads(self.threads):
            for job in jobs:
                if on_running:
                    on_running([job.label])
                yield _outcome(job, run_job(job.fn, job.args, job.kwargs, None))


# -- processes --------------------------------------------------------------------------------------
def _init_worker(threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # held while it was spawned
    torch.set_num_threads(threads)
    # tqdm's default lock is a multiprocessing one, registered with the driver's resource tracker;
    # a worker terminated on Ctrl-C cannot unregister it ("leaked semaphore" at exit). A worker's
    # bars are off anyway: a thread lock does.
    from tqdm import tqdm
    tqdm.set_lock(threading.RLock())


@contextlib.contextmanager
def _sigint_held():
    """While workers are spawned, SIGINT is held back (blocked, not ignored: a Ctrl-C in that instant
    is delivered right after, never lost). A child inherits the blocked mask, so a Ctrl-C during its
    start-up cannot interrupt it halfway (a traceback from each); its initializer then ignores SIGINT."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _exit_text(code: int | None) -> str:
    if code is None:
        return "it did not report an exit code"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        oom = " (the kernel's out-of-memory killer sends SIGKILL)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{oom}"
    return f"exit code {code}"


class _Pool:
    """A ProcessPoolExecutor and the processes it started (to reap them, and read their exit codes)."""

    def __init__(self, workers: int, threads: int):
        self.pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_init_worker, initargs=(threads,))
        self.procs: dict = {}

    def submit(self, job: Job, threads: int) -> cf.Future:
        with _sigint_held():
            future = self.pool.submit(run_job, job.fn, job.args, job.kwargs, threads)
        self.procs.update(getattr(self.pool, "_processes", None) or {})
        return future

    def shutdown(self, abort: bool) -> None:
        """Graceful: wait for the workers to exit. Abort: terminate them, then reap every one."""
        procs = list(self.procs.values())
        if abort:
            stop = getattr(self.pool, "terminate_workers", None)  # Python >= 3.14
            if stop is not None:
                stop()
            for p in procs:
                if p.is_alive():
                    p.terminate()
            self._reap(procs)
            # a worker terminated while it sent its result leaves the pool's reader thread waiting for
            # the rest of the message, and shutdown() (and this process's exit) waiting for that thread.
            # With every worker gone, this process holds the last writing end: closing it ends the wait.
            results = getattr(self.pool, "_result_queue", None)
            writer = getattr(results, "_writer", None)
            if writer is not None:
                writer.close()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._reap(procs)
        # drop the pool now: its queues' semaphores are released here, not reported as leaked at exit
        self.pool, self.procs = None, {}
        gc.collect()

    @staticmethod
    def _reap(procs) -> None:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()

    def exit_codes(self) -> list:
        for p in self.procs.values():
            p.join(5)
        return [p.exitcode for p in self.procs.values()]


class ProcessExecutor(Executor):
    kind = "processes"
    remote = True

    def __init__(self, spec, device):
        super().__init__(spec, device)
        self.threads = spec.threads or 1
        self.workers = spec.workers or _default_workers(self.device, self.threads)

    def slots(self) -> int:
        return self.workers

    def describe(self) -> str:
        procs = f"{self.workers} worker process" + ("" if self.workers == 1 else "es")
        return (f"processes: {procs} (spawned) x "
                f"{_plural(self.threads, 'torch thread')} each; the driver alone writes the store")

    def _submit(self, pool, queue, inflight) -> bool:
        """Submit the next job of `queue`; if the pool has just broken (a worker died and the pool
        knows before the futures do), put the job back and say so."""
        job = queue.popleft()
        try:
            inflight[pool.submit(job, self.threads)] = job
        except cf.process.BrokenProcessPool:
            queue.appendleft(job)
            return False
        return True

    def run(self, jobs, on_running=None):
        pending = collections.deque(jobs)
        suspects = collections.deque()   # in flight when a worker died: each runs again alone
        inflight: dict[cf.Future, Job] = {}
        pool, solo, shown = None, False, None
        finished = False
        try:
            while pending or suspects or inflight:
                if pool is None:
                    solo = bool(suspects)
                    pool = _Pool(1 if solo else self.workers, self.threads)
                refused = False  # the pool broke before its futures say so: submit raises at once
                if solo:
                    if not inflight and suspects:
                        refused = not self._submit(pool, suspects, inflight)
                else:
                    while pending and len(inflight) < self.workers:
                        if not self._submit(pool, pending, inflight):
                            refused = True
                            break
                if refused and not inflight:
                    pool.shutdown(abort=True)
                    pool = None
                    continue
                labels = [j.label for j in inflight.values()]
                if on_running and labels != shown:
                    on_running(labels)
                    shown = labels
                done, _ = cf.wait(inflight, timeout=POLL, return_when=cf.FIRST_COMPLETED)
                if not done:
                    continue
                if any(isinstance(f.exception(), cf.process.BrokenProcessPool) for f in done):
                    done, _ = cf.wait(inflight)  # a broken pool fails every job in flight
                broken = False
                for f in done:
                    job = inflight.pop(f)
                    err = f.exception()
                    if err is None:
                        yield _outcome(job, f.result())
                    elif isinstance(err, cf.process.BrokenProcessPool):
                        broken = True
                        if solo:
                            codes = [c for c in pool.exit_codes() if c not in (0, None)] or [None]
                            yield Outcome(job, failure=Failure(
                                "WorkerDied", f"the worker process running this cell died ({_exit_text(codes[0])})"))
                        else:
                            suspects.append(job)
                    elif isinstance(err, KeyboardInterrupt):
                        raise KeyboardInterrupt
                    else:  # the job ran but its result could not come back (pickling, say)
                        yield Outcome(job, failure=failure_of(err))
                if broken or (solo and not suspects and not inflight):
                    pool.shutdown(abort=broken)
                    pool = None
            finished = True
        finally:
            if pool is not None:
                pool.shutdown(abort=not finished)


# -- ray --------------------------------------------------------------------------------------------
ADDRESS = re.compile(r"^(?:ray://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def _reachable(address: str) -> None:
    """A quick TCP look at HOST:PORT, so an address nobody answers on fails in seconds, not after
    Ray's own retries."""
    m = ADDRESS.match(address)
    if not m:
        raise ConfigError(f"--ray-address: expected auto, HOST:PORT or ray://HOST:PORT, got '{address}'")
    host, port = m.group(1).strip("[]"), int(m.group(2))
    if not 0 < port < 65536:
        raise ConfigError(f"--ray-address: port {port} is out of range (1..65535)")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as e:
        why = f"no answer within {CONNECT_TIMEOUT:g} s" if isinstance(e, socket.timeout) else (e.strerror or str(e))
        raise ConfigError(f"--ray-address: no Ray cluster reachable at {address} ({why})") from None


class RayExecutor(Executor):
    kind = "ray"
    remote = True

    def __init__(self, spec, device):
        super().__init__(spec, device)
        self.threads = spec.threads or 1
        if spec.gpus_per_cell is not None and self.device.type != "cuda":
            raise ConfigError(f"--gpus-per-cell: the device is {self.device.type}; GPUs per cell need a CUDA device")
        self.gpus = (spec.gpus_per_cell or 1.0) if self.device.type == "cuda" else 0.0
        if self.gpus and not 0 < self.gpus <= 1:
            raise ConfigError(f"--gpus-per-cell: must be in (0, 1] (a cell uses one device), got {self.gpus:g}")
        self.address = spec.ray_address
        self.ray = _import_ray()
        self.connected = False
        self.resources: dict = {}
        if self.address is None:
            # on CUDA as many cells as the GPUs hold at their share each (4 per GPU at 0.25)
            gpu_slots = max(1, int(torch.cuda.device_count() / self.gpus + 1e-9)) if self.gpus else 0
            self.workers = spec.workers or gpu_slots or _default_workers(self.device, self.threads)
        else:
            self.workers = spec.workers
            self._connect()

    def cells_per_device(self) -> int:
        """On CUDA a device holds as many cells as its share allows (4 at 0.25); on the CPU all of
        this machine's cells share its memory (on a cluster, each machine holds at most its share)."""
        if self.gpus:
            return max(1, int(1 / self.gpus + 1e-9))
        return self.slots() if self.address is None else 1

    def _connect(self) -> None:
        if self.address != "auto":
            _reachable(self.address)
        elif os.environ.get("RAY_ADDRESS") and os.environ["RAY_ADDRESS"] != "auto":
            _reachable(os.environ["RAY_ADDRESS"])
        try:
            self.ray.init(address=self.address, logging_level=logging.WARNING)
        except Exception as e:  # none running for 'auto', another Ray version, ...: one line
            raise ConfigError(f"--ray-address: cannot connect to a Ray cluster at {self.address} "
                              f"({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
        self.connected = True
        self.resources = dict(self.ray.cluster_resources())

    def slots(self) -> int:
        if self.address is None:
            n = self.workers
            if self.gpus:
                n = min(n, max(1, int(torch.cuda.device_count() / self.gpus + 1e-9)))
            return n
        by_cpu = int(self.resources.get("CPU", 0) // self.threads)
        n = by_cpu
        if self.gpus:
            n = min(n, int(self.resources.get("GPU", 0) / self.gpus + 1e-9))
        if self.workers:
            n = min(n, self.workers)
        return max(1, n)

    def contention(self) -> float:
        return super().contention() if self.address is None else 1.0

    def describe(self) -> str:
        per = _plural(self.threads, "CPU") + (f" and {self.gpus:g} GPU" if self.gpus else "")
        if self.address is None:
            where = f"a local Ray instance started here ({_plural(self.workers * self.threads, 'CPU')})"
        else:
            have = ", ".join(f"{_plural(self.resources.get(k, 0), k)}" for k in ("CPU", "GPU") if k in self.resources)
            where = f"the Ray cluster at {self.address} ({have or 'no resources reported'})"
        return (f"ray: each cell a task with {per} ({_plural(self.threads, 'torch thread')}), up to "
                f"{self.slots()} at once, on {where}; the driver alone writes the store")

    def close(self) -> None:
        if self.connected:
            self.connected = False
            self.ray.shutdown()

    def run(self, jobs, on_running=None):
        jobs = list(jobs)
        if not jobs:
            return
        ray = self.ray
        started = False
        if not self.connected:
            ray.init(address="local", num_cpus=self.workers * self.threads, include_dashboard=False,
                     logging_level=logging.WARNING)
            started = True
        # the driver's import path, absolute, so workers on this machine find what the driver found
        path = [os.path.abspath(p or os.curdir) for p in sys.path]
        task = ray.remote(run_job)
        resources = {"num_cpus": self.threads, "num_gpus": self.gpus, "max_retries": 0, "retry_exceptions": False}
        cap = self.slots()
        pending = collections.deque(jobs)
        inflight: dict = {}
        shown, finished = None, False
        try:
            while pending or inflight:
                while pending and len(inflight) < cap:
                    job = pending.popleft()
                    ref = task.options(name=job.label[:100], **resources).remote(job.fn, job.args, job.kwargs,
                                                                                 self.threads, path)
                    inflight[ref] = job
                labels = [j.label for j in inflight.values()]
                if on_running and labels != shown:
                    on_running(labels)
                    shown = labels
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=POLL)
                for ref in ready:
                    job = inflight.pop(ref)
                    try:
                        status = ray.get(ref)
                    except ray.exceptions.RayError as e:
                        if isinstance(getattr(e, "cause", None), KeyboardInterrupt):
                            raise KeyboardInterrupt from None
                        yield Outcome(job, failure=Failure(type(e).__name__, _first_line(e)))
                        continue
                    yield _outcome(job, status)
            finished = True
        finally:
            if not finished:
                for ref in inflight:
                    with contextlib.suppress(Exception):
                        ray.cancel(ref, force=True)
            if started:
                ray.shutdown()


def _first_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[0] if lines else ""


def parallel_estimate(bounds: Sequence[float], slots: int) -> float:
    """Wall time of jobs with these durations, started in this order on `slots` workers, each job
    taking the first free worker (what the executors do)."""
    free = [0.0] * max(1, slots)
    for b in bounds:
        i = min(range(len(free)), key=free.__getitem__)
        free[i] += b
    return max(free) if bounds else 0.0


__all__ = ["EXECUTORS", "Executor", "ExecutorSpec", "Failure", "Job", "JobFailed", "Outcome", "make_executor",
           "parallel_estimate", "run_job", "torch_threads"]
