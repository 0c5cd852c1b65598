"""The results store: results/<suite version>/<run id>/ with runs.csv, history.csv,
manifest.json, claims.csv and REPORT.md. Every write is write-then-rename; rows are appended
as cells finish, so an interrupted run loses at most the cell in progress.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from suite import __version__
from suite.errors import ConfigError

RUNS, HISTORY, MANIFEST, CLAIMS, REPORT = "runs.csv", "history.csv", "manifest.json", "claims.csv", "REPORT.md"
ROUTING = "routing.csv"
#: per-cell tables written beside runs.csv, keyed by config_hash
CELL_TABLES = (HISTORY, ROUTING)


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w"):
    """A file object whose content appears at `path` whole when the block ends, or not at all."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never a part."""
    with atomic_file(path) as f:
        f.write(text)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_csv(path: Path, df: pd.DataFrame) -> None:
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    atomic_write(path, buf.getvalue())


#: hashes are hex strings; never let pandas guess an all-digit one into an integer
DTYPES = {"config_hash": str, "run_id": str}


def read_runs(run_dir) -> pd.DataFrame:
    """One pandas call reads a run back: this is it."""
    return pd.read_csv(Path(run_dir) / RUNS, dtype=DTYPES)


class RunStore:
    """One reproduction run's folder."""

    def __init__(self, path: Path):
        self.path = Path(path)

    # -- locating runs -------------------------------------------------------------------------
    @staticmethod
    def version_dir(results_dir: Path) -> Path:
        return Path(results_dir) / __version__

    @classmethod
    def create(cls, results_dir: Path, run_id: str, manifest: dict) -> "RunStore":
        results_dir = Path(results_dir)
        if results_dir.exists() and not results_dir.is_dir():
            raise ConfigError(f"results-dir: '{results_dir}' exists and is not a directory")
        path = cls.version_dir(results_dir) / run_id
        path.mkdir(parents=True, exist_ok=False)
        store = cls(path)
        store.write_manifest(manifest)
        return store

    @classmethod
    def open(cls, path: Path) -> "RunStore":
        """An existing run folder; anything else is a one-line error."""
        path = Path(path)
        if not path.is_dir() or not (path / MANIFEST).is_file():
            raise ConfigError(f"run dir: '{path}' is not a results run (no {MANIFEST})")
        store = cls(path)
        store.clean_temporaries()
        return store

    @classmethod
    def find(cls, results_dir: Path, run_id: str) -> "RunStore":
        results_dir = Path(results_dir)
        if not results_dir.is_dir():
            raise ConfigError(f"results-dir: '{results_dir}' is not a directory")
        matches = sorted(p for p in results_dir.glob(f"*/{run_id}") if (p / MANIFEST).is_file())
        if not matches:
            raise ConfigError(f"resume: no run '{run_id}' under {results_dir}")
        return cls.open(matches[-1])

    @classmethod
    def unfinished(cls, results_dir: Path, profile_name: str) -> "RunStore | None":
        """The newest run of this profile and suite version that did not complete, if any."""
        vdir = cls.version_dir(results_dir)
        if not vdir.is_dir():
            return None
        for p in sorted(vdir.iterdir(), reverse=True):
            m = p / MANIFEST
            if m.is_file():
                data = json.loads(m.read_text())
                if data.get("profile", {}).get("name") == profile_name and data.get("status") != "complete":
                    return cls.open(p)
        return None

    @classmethod
    def newest(cls, results_dir: Path) -> "RunStore":
        """The run folder under <results_dir>/<version>/ whose manifest says it started last."""
        results_dir = Path(results_dir)
        if not results_dir.is_dir():
            raise ConfigError(f"results-dir: '{results_dir}' is not a directory")

        def started(manifest: Path) -> str:
            try:
                return str(json.loads(manifest.read_text()).get("started", ""))
            except (OSError, ValueError, AttributeError):
                return ""
        found = sorted(results_dir.glob(f"*/*/{MANIFEST}"), key=lambda m: (started(m), m.stat().st_mtime, str(m)))
        if not found:
            raise ConfigError(f"results-dir: no run folder with {MANIFEST} under '{results_dir}'")
        return cls.open(found[-1].parent)

    # -- contents --------------------------------------------------------------------------------
    def clean_temporaries(self) -> None:
        for tmp in self.path.glob(".*.tmp"):
            tmp.unlink()

    def manifest(self) -> dict:
        return json.loads((self.path / MANIFEST).read_text())

    def write_manifest(self, manifest: dict) -> None:
        atomic_write(self.path / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    def update_manifest(self, **changes) -> None:
        m = self.manifest()
        m.update(changes)
        self.write_manifest(m)

    def runs(self) -> pd.DataFrame:
        p = self.path / RUNS
        return pd.read_csv(p, dtype=DTYPES) if p.is_file() else pd.DataFrame()

    def table(self, name: str) -> pd.DataFrame:
        p = self.path / name
        return pd.read_csv(p, dtype=DTYPES) if p.is_file() else pd.DataFrame()

    def history(self) -> pd.DataFrame:
        return self.table(HISTORY)

    def finished_cells(self) -> set:
        runs = self.runs()
        return set(runs["config_hash"]) if len(runs) else set()

    def drop_orphan_history(self) -> None:
        """Per-cell table rows of a cell whose run row never landed (interrupted between writes)."""
        done = self.finished_cells()
        for name in CELL_TABLES:
            df = self.table(name)
            if len(df):
                keep = df["config_hash"].isin(done)
                if not keep.all():
                    write_csv(self.path / name, df[keep])

    def append_cell(self, row: dict, history_rows: list[dict], routing_rows: list[dict] | None = None) -> None:
        """Per-cell tables first, then the run row: a cell counts as finished once its row exists."""
        if row["config_hash"] in self.finished_cells():
            raise RuntimeError(f"cell {row['config_hash']} already stored")
        for name, rows in ((HISTORY, history_rows), (ROUTING, routing_rows)):
            if rows:
                write_csv(self.path / name, pd.concat([self.table(name), pd.DataFrame(rows)], ignore_index=True))
        runs = pd.concat([self.runs(), pd.DataFrame([row])], ignore_index=True)
        write_csv(self.path / RUNS, runs)

    @contextlib.contextmanager
    def lock(self):
        """One process writes a run at a time; a lock left by a dead process is taken over."""
        path = self.path / ".lock"
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                break
            except FileExistsError:
                try:
                    pid = int(path.read_text().strip() or 0)
                    os.kill(pid, 0)
                except (ValueError, ProcessLookupError, FileNotFoundError):
                    path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                raise ConfigError(f"run dir: '{self.path}' is being written by process {pid}")
        else:
            raise ConfigError(f"run dir: cannot lock '{self.path}'")
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        try:
            yield self
        finally:
            path.unlink(missing_ok=True)

    def write_text(self, name: str, text: str) -> None:
        atomic_write(self.path / name, text)
