"""A results run's files as the run figures read them: the Run record (tables read through the
store, failed cells left out), the check of every figure's columns before anything is drawn, and
the row selections the figures share."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from suite.errors import ConfigError
from suite.figures.style import series_key
from suite.run.store import HISTORY, ROUTING, RUNS, RunStore
from suite.schema.rows import faithful_rows, ok_rows

LATENCY = "latency.csv"  # a benchmark's output (results/<version>/bench/), not a run file
TASK = "assoc_recall"    # the task the published values are of


@dataclass
class Run:
    """A run's files as read, and the figures that cannot be drawn from them (and why)."""
    path: Path
    runs: pd.DataFrame
    history: pd.DataFrame | None = None
    routing: pd.DataFrame | None = None
    latency: pd.DataFrame | None = None
    latency_path: Path | None = None
    skipped: dict = field(default_factory=dict)  # figure -> why

    def frame(self, file: str) -> pd.DataFrame | None:
        return {RUNS: self.runs, HISTORY: self.history, ROUTING: self.routing, LATENCY: self.latency}[file]


def _csv(read, path: Path, what: str) -> pd.DataFrame:
    """`read()`'s table, or one line saying why `path` cannot be read."""
    try:
        return read()
    except pd.errors.EmptyDataError:
        raise ConfigError(f"{what}: '{path}' is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ConfigError(f"{what}: cannot parse '{path}' ({str(e).strip().splitlines()[0]})") from None


def _table(store: RunStore, name: str) -> pd.DataFrame | None:
    """A per-cell table of the run, None when the run has none."""
    path = store.path / name
    return _csv(lambda: store.table(name), path, name) if path.is_file() else None


def _latency_path(path: Path, latency_csv) -> Path | None:
    """The latency CSV given, else the run's own, else results/<version>/bench/ (nox -s bench)."""
    if latency_csv is not None:
        given = Path(latency_csv)
        if not given.is_file():
            raise ConfigError(f"latency-csv: '{given}' is not a file")
        return given
    for candidate in (path / LATENCY, path.parent / "bench" / LATENCY):
        if candidate.is_file():
            return candidate
    return None


def read_run(run_dir, latency_csv=None) -> Run:
    """Read a run's files; `runs` holds the cells that finished (a failed cell has no metrics)."""
    store = RunStore.open(run_dir)
    path = store.path
    if not (path / RUNS).is_file():
        raise ConfigError(f"run dir: '{path}' has no {RUNS} (no cell finished yet)")
    run = Run(path, ok_rows(store.runs()))
    if run.runs.empty:
        raise ConfigError(f"{RUNS}: '{path / RUNS}' has no finished cell")
    run.history, run.routing = _table(store, HISTORY), _table(store, ROUTING)
    run.latency_path = _latency_path(path, latency_csv)
    if run.latency_path is not None:
        run.latency = _csv(lambda: pd.read_csv(run.latency_path), run.latency_path, "latency csv")
    return run


def check_run(run: Run, figures) -> Run:
    """Fill run.skipped from each figure's `reads` and `columns` (registry entries); a missing
    column is one ConfigError, raised before anything is drawn."""
    for spec in figures:
        file = spec.reads[0]
        df = run.frame(file)
        if df is None:
            run.skipped[spec.name] = (f"no latency benchmark CSV (pass --latency-csv or put {LATENCY} in {run.path})"
                                      if file == LATENCY else f"no {file} in {run.path}")
            continue
        for col in spec.columns:
            if col not in df.columns:
                shown = "latency csv" if file == LATENCY else file
                raise ConfigError(f"{shown}: missing column '{col}' needed by the {spec.name} figure")
        if df.empty:
            run.skipped[spec.name] = f"{run.latency_path if file == LATENCY else run.path / file} has no rows"
    if "routing_map" not in run.skipped and run.routing[run.routing["model"] == "routed"].empty:
        run.skipped["routing_map"] = f"{ROUTING} has no routed rows"
    return run


def main_rows(runs: pd.DataFrame) -> tuple[pd.DataFrame, str, bool]:
    """(rows, note, published applies): faithful assoc_recall rows; every row if none are faithful."""
    rows, notes, pub = runs, [], True
    if "task" in runs.columns:
        if (runs["task"] == TASK).any():
            rows = runs[runs["task"] == TASK]
        else:
            pub = False
            notes.append(f"task {', '.join(sorted(map(str, runs['task'].unique())))}: no published values")
    faithful = faithful_rows(rows)
    faithful = faithful[faithful["protocol"] == "faithful"]
    if faithful.empty:
        protocols = ", ".join(sorted(map(str, rows["protocol"].unique())))
        notes.append(f"no faithful cells: all {len(rows)} rows shown (protocol {protocols})")
        return rows, "; ".join(notes), pub
    return faithful, "; ".join(notes), pub


def series_keys(df: pd.DataFrame) -> pd.Series:
    """Each row's series key (style.series_key): baselines by model, routed by model and λ."""
    return pd.Series([series_key(m, lam) for m, lam in zip(df["model"], df["lambda_target"])], index=df.index,
                     dtype=object)
