"""The `processes` executor: N spawned worker processes (`concurrent.futures.ProcessPoolExecutor`,
"spawn" so CUDA is safe in them), at most N jobs in flight. A worker that dies fails only the job
that killed it: the jobs in flight then run again one at a time in a fresh worker. On Ctrl-C the
driver terminates and reaps every worker (they ignore SIGINT themselves)."""
from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import gc
import multiprocessing
import signal
import threading

import torch

from suite.run.executor_base import POLL, Executor, default_workers, plural
from suite.run.executor_jobs import Failure, Job, Outcome, failure_of, outcome_of, run_job


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
            future = self.pool.submit(run_job, job.fn, job.args, job.kwargs, threads, (), True)
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
        self.workers = spec.workers or default_workers(self.device, self.threads)

    def slots(self) -> int:
        return self.workers

    def describe(self) -> str:
        procs = f"{self.workers} worker process" + ("" if self.workers == 1 else "es")
        return (f"processes: {procs} (spawned) x "
                f"{plural(self.threads, 'torch thread')} each; the driver alone writes the store")

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
                        yield outcome_of(job, f.result())
                    elif isinstance(err, cf.process.BrokenProcessPool):
                        broken = True
                        if solo:
                            codes = sorted((c for c in pool.exit_codes() if c is not None), key=lambda c: c == 0)
                            codes = codes or [None]  # a nonzero code first; a 0 is code the job ran (os._exit)
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
