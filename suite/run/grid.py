"""The grid: train every cell of a profile not stored yet on an executor, storing each as it
finishes; siblings sharing a phase 1 are ordered so its checkpoint is on disk when they start."""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm

from suite.run.cell import cell_job, failed_row
from suite.run.executor import Executor, ExecutorSpec, Job, JobFailed, make_executor
from suite.run.phase1 import cell_phase1_key
from suite.run.profiles import Cell, Profile
from suite.run.protocol import get_protocol
from suite.run.store import RunStore
from suite.run.trainer import NonFiniteLoss


PHASE1_DIR = "phase1"


def phase1_order(cells: list, device, lag: int = 1) -> list:
    """Cells in profile order, except that a cell which would read an earlier cell's phase 1 (same
    key) waits until `lag` more first cells have been queued after that first one. With one cell at
    a time (lag 1) it runs right after it, so a run spread over sessions loses no checkpoint to a
    session's end (they are not committed). With `lag` workers, each has taken a later cell by the
    time the sibling is taken, so its phase 1 is usually on disk."""
    if not isinstance(lag, int) or lag < 1:
        raise ValueError(f"lag: must be a positive int, got {lag!r}")
    out, held, first_at, firsts = [], [], {}, 0
    for c in cells:
        key = cell_phase1_key(c, device)
        if key is not None and key in first_at:
            held.append((first_at[key] + lag, c))
        else:
            if key is not None:
                first_at[key] = firsts
            out.append(c)
            firsts += 1
        out += [c for at, c in held if at <= firsts]
        held = [(at, c) for at, c in held if at > firsts]
    return out + [c for _, c in held]


def _outcomes(executor: Executor, jobs: list, isolated: list, running) -> Iterator:
    """The executor's outcomes, then those of the isolated jobs, each in a spawned worker process of
    its own executor at the same thread count (under an executor that already runs jobs outside
    this process, they simply join the others)."""
    if executor.remote:
        with contextlib.closing(executor.run(jobs + isolated, running)) as outcomes:
            yield from outcomes
        return
    with contextlib.closing(executor.run(jobs, running)) as outcomes:
        yield from outcomes
    if isolated:
        spec = ExecutorSpec("processes", workers=1, threads=executor.cell_threads())
        with make_executor(spec, device=executor.device) as worker, \
                contextlib.closing(worker.run(isolated, running)) as outcomes:
            yield from outcomes


def train_cells(store: RunStore, profile: Profile, device: torch.device, env: dict, progress: bool,
                executor: Executor | None = None, cell_kwargs: dict | None = None,
                isolate: Callable[[Cell], bool] | None = None) -> None:
    """Train every cell of the profile not stored yet on `executor` (default: local, one after another
    here), storing each as it finishes, in the order they finish; this process alone writes the store.
    A cell whose job fails (any exception, a worker that dies) is stored as a failed row and the run
    goes on; Ctrl-C stops the workers and propagates with everything finished kept.
    `cell_kwargs`: extra keyword arguments of run_cell, passed through to every cell; by default
    routed curriculum cells share phase 1 through checkpoints in <run>/phase1/ (same result, less work).
    A cell that would read another cell's phase 1 is queued as many first cells after it as the
    executor runs at once (phase1_order), so parallel workers rarely train the same phase 1 twice
    (if they do, both write the same file). Cells for which `isolate` is true (regress: the
    candidate's) run in a worker process even under the local executor, so plugin code that ends
    its process (os._exit) fails only its cell."""
    run_id = store.path.name
    store.drop_orphan_history()
    done = store.finished_cells()
    start = time.perf_counter()
    already = store.manifest().get("wall_seconds", 0.0)
    if executor is None:
        executor = make_executor(ExecutorSpec(), device)
    todo = phase1_order([c for c in profile.cells if c.config_hash(profile.test_sequences) not in done], device,
                        lag=max(1, executor.slots()))
    cell_kwargs = {"phase1_dir": store.path / PHASE1_DIR, **(cell_kwargs or {})}
    # a cell's own progress bar only where it runs in this process; elsewhere the bars would interleave
    inner = progress and not executor.remote
    apart = [c for c in todo if isolate is not None and isolate(c)]
    job = lambda c, bars: Job(c.config_hash(profile.test_sequences), c.describe(), cell_job,
                              (c, profile, device, env, run_id, bars, get_protocol(c.protocol)),
                              dict(cell_kwargs or {}))
    jobs = [job(c, inner) for c in todo if c not in apart]
    isolated = [job(c, False) for c in apart]
    cells = {c.config_hash(profile.test_sequences): c for c in todo}
    with tqdm(total=len(profile.cells), initial=len(profile.cells) - len(todo), desc="cells",
              disable=not progress, unit="cell", dynamic_ncols=True) as bar:
        def running(labels: list[str]) -> None:
            bar.set_postfix_str(labels[0] if len(labels) == 1 else f"{len(labels)} running: " + "; ".join(labels))

        with contextlib.closing(_outcomes(executor, jobs, isolated, running)) as outcomes:
            for out in outcomes:
                cell = cells[out.job.key]
                if out.failure is None:
                    result = out.value
                    row = result.row
                    line = f"accuracy {row['accuracy']:.4f} usage {row['usage']:.4f} ({row['seconds'] / 60:.1f} min)"
                else:
                    f = out.failure
                    # a non-finite loss is the suite's own, already specific error: stored as it always was
                    error = f.message if f.type == NonFiniteLoss.__name__ else f.line
                    if f.type != NonFiniteLoss.__name__ and f.detail:
                        tqdm.write(f"  {cell.describe()} failed:\n{f.detail.rstrip()}", file=sys.stderr)
                    result = failed_row(cell, profile, env, run_id, JobFailed(error))
                    line = f"FAILED: {error}"
                store.append_cell(result.row, result.history, result.routing, result.checkpoint)
                tqdm.write(f"  done: {cell.describe()}: {line}")
                bar.update(1)
                store.update_manifest(wall_seconds=already + time.perf_counter() - start)
