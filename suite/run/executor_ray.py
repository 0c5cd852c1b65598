"""The `ray` executor: each job a Ray task, on a local instance started here (`num_cpus = N x K`,
shut down at the end) or on a running cluster (`--ray-address auto|HOST:PORT`); resources per job:
K CPUs, and on CUDA a (fractional) GPU. Ray is imported only when this executor is made."""
from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import socket
import sys
import time

import torch

from suite.errors import ConfigError
from suite.run.executor_base import POLL, Executor, default_workers, plural
from suite.run.executor_jobs import Failure, Outcome, outcome_of, run_job

RAY_MISSING = "executor: ray is not installed; pip install -e '.[ray]'"
#: seconds to wait for a TCP connection to --ray-address before calling it unreachable
CONNECT_TIMEOUT = 3.0
ADDRESS = re.compile(r"^(?:ray://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


#: HTTP/2's client connection preface and an empty SETTINGS frame: a Ray head (gRPC) answers them
#: with its own SETTINGS at once; a host that accepts the connection and then says nothing does not
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _reachable(address: str, timeout: float | None = None) -> None:
    """A look at HOST:PORT bounded by CONNECT_TIMEOUT in all (connect, then a gRPC server's first
    bytes), so an address nobody answers on, or that accepts and stays silent, fails in seconds,
    not after Ray's own retries."""
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    m = ADDRESS.match(address)
    if not m:
        raise ConfigError(f"--ray-address: expected auto, HOST:PORT or ray://HOST:PORT, got '{address}'")
    host, port = m.group(1).strip("[]"), int(m.group(2))
    if not 0 < port < 65536:
        raise ConfigError(f"--ray-address: port {port} is out of range (1..65535)")
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(max(0.05, deadline - time.monotonic()))
            conn.sendall(_H2_HELLO)
            first = b""
            while len(first) < 4:
                chunk = conn.recv(9 - len(first))
                if not chunk:
                    break
                first += chunk
                conn.settimeout(max(0.05, deadline - time.monotonic()))
    except OSError as e:
        why = f"no answer within {timeout:g} s" if isinstance(e, socket.timeout) else (e.strerror or str(e))
        raise ConfigError(f"--ray-address: no Ray cluster reachable at {address} ({why})") from None
    if len(first) < 4 or first[3] != 0x04:   # the answer of an HTTP/2 server starts with a SETTINGS frame
        raise ConfigError(f"--ray-address: {address} answered, but not as a Ray cluster does (no gRPC server "
                          f"there)")


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
            self.workers = spec.workers or gpu_slots or default_workers(self.device, self.threads)
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
        per = plural(self.threads, "CPU") + (f" and {self.gpus:g} GPU" if self.gpus else "")
        if self.address is None:
            where = f"a local Ray instance started here ({plural(self.workers * self.threads, 'CPU')})"
        else:
            have = ", ".join(f"{plural(self.resources.get(k, 0), k)}" for k in ("CPU", "GPU") if k in self.resources)
            where = f"the Ray cluster at {self.address} ({have or 'no resources reported'})"
        return (f"ray: each cell a task with {per} ({plural(self.threads, 'torch thread')}), up to "
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
                                                                                 self.threads, path, True)
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
                    yield outcome_of(job, status)
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
