"""The results store: results/<suite version>/<run id>/ with runs.csv, history.csv,
manifest.json, claims.csv and REPORT.md. Every write is write-then-rename; rows are appended
as cells finish, so an interrupted run loses at most the cell in progress.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import filelock
import pandas as pd
import torch

from suite import __version__
from suite.core.io import atomic_file, atomic_write, write_csv  # noqa: F401 (the store's writers)
from suite.errors import ConfigError
from suite.schema.bounds import NAME_PATTERN
from suite.schema.rows import read_runs, validate_row

RUNS, HISTORY, MANIFEST, CLAIMS, REPORT = "runs.csv", "history.csv", "manifest.json", "claims.csv", "REPORT.md"
ROUTING = "routing.csv"
#: manifest status of a run stopped for good and kept only as evidence: never resumed implicitly
SUPERSEDED = "superseded"
#: trained weights of routed cells (profiles with save_models), one file per config_hash
MODELS = "models"
#: per-cell tables written beside runs.csv, keyed by config_hash
CELL_TABLES = (HISTORY, ROUTING)


#: hashes are hex strings; never let pandas guess an all-digit one into an integer
DTYPES = {"config_hash": str, "run_id": str}


NAME_RULE = "letters, digits, '.', '_', '-'; no path separators, no leading dot"


def run_stamp() -> str:
    """UTC start time to the microsecond: run ids sort by start and rarely collide."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def read_manifest(path: Path) -> dict:
    """A manifest.json as a dict, or a one-line ConfigError naming the file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"manifest: '{path}' is unreadable or corrupt ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"manifest: '{path}' is corrupt (not a JSON object)")
    return data


def _manifest_or_none(path: Path) -> dict | None:
    """Another run's manifest while searching: a corrupt one is skipped with a warning, not fatal."""
    try:
        return read_manifest(path)
    except ConfigError as e:
        print(f"warning: skipped: {e}", file=sys.stderr)
        return None


def check_results_dir(results_dir: Path) -> None:
    """Refuse, before any work, a results dir that cannot hold a run folder."""
    p = Path(results_dir).absolute()
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    if not p.is_dir():
        where = "" if p == Path(results_dir).absolute() else f" (it lies under the file '{p}')"
        raise ConfigError(f"results-dir: '{results_dir}' is not a directory{where}")
    if not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(f"results-dir: '{results_dir}' is not writable ('{p}')")


class RunStore:
    """One reproduction run's folder."""

    def __init__(self, path: Path):
        self.path = Path(path)

    # -- locating runs -------------------------------------------------------------------------
    @staticmethod
    def version_dir(results_dir: Path) -> Path:
        return Path(results_dir) / __version__

    @classmethod
    def create(cls, results_dir: Path, prefix: str, manifest: dict) -> "RunStore":
        """A new run folder '<prefix>-<stamp>' with its manifest. The prefix is a plain name, so the
        folder is a direct child of <results_dir>/<version>/; it is created exclusively (never an
        existing folder or link), retried with a suffix, so runs started in the same instant differ."""
        if not re.match(NAME_PATTERN, prefix):
            raise ConfigError(f"run id: '{prefix}' is not a run folder name ({NAME_RULE})")
        check_results_dir(results_dir)
        vdir = cls.version_dir(results_dir)
        stamp = run_stamp()
        for n in range(100):
            run_id = f"{prefix}-{stamp}" + (f"-{n}" if n else "")
            path = vdir / run_id
            try:
                vdir.mkdir(parents=True, exist_ok=True)
                path.mkdir(exist_ok=False)
            except FileExistsError:
                continue
            except OSError as e:
                raise ConfigError(f"results-dir: cannot create '{path}' ({e.strerror})") from None
            store = cls(path)
            store.write_manifest({**manifest, "run_id": run_id})
            return store
        raise ConfigError(f"results-dir: no free run id for '{prefix}' under '{vdir}'")

    @classmethod
    def open(cls, path: Path) -> "RunStore":
        """An existing run folder; anything else (or a corrupt manifest) is a one-line error."""
        path = Path(path)
        if not path.is_dir() or not (path / MANIFEST).is_file():
            raise ConfigError(f"run dir: '{path}' is not a results run (no {MANIFEST})")
        store = cls(path)
        store.manifest()
        return store

    @classmethod
    def find(cls, results_dir: Path, run_id: str) -> "RunStore":
        """The run `run_id` under any version folder of results_dir (the newest version's if several)."""
        results_dir = Path(results_dir)
        if not re.match(NAME_PATTERN, run_id or ""):
            raise ConfigError(f"resume: '{run_id}' is not a run id ({NAME_RULE})")
        if not results_dir.is_dir():
            raise ConfigError(f"results-dir: '{results_dir}' is not a directory")
        matches = sorted(p for p in results_dir.glob(f"*/{run_id}")
                         if (p / MANIFEST).is_file() and _manifest_or_none(p / MANIFEST) is not None)
        if not matches:
            raise ConfigError(f"resume: no run '{run_id}' under {results_dir}")
        return cls.open(matches[-1])

    @classmethod
    def of_profile(cls, results_dir: Path, profile_name: str, complete: bool) -> "list[RunStore]":
        """Runs of this profile and suite version, newest first, that did (or did not) complete;
        a run marked superseded (kept as evidence, never to be resumed) is neither."""
        vdir = cls.version_dir(results_dir)
        if not vdir.is_dir():
            return []
        out = []
        for p in sorted(vdir.iterdir(), reverse=True):
            if not (p / MANIFEST).is_file():
                continue
            data = _manifest_or_none(p / MANIFEST)
            if data and (data.get("profile") or {}).get("name") == profile_name \
                    and data.get("status") != SUPERSEDED and (data.get("status") == "complete") == complete:
                out.append(cls.open(p))
        return out

    @classmethod
    def unfinished(cls, results_dir: Path, profile_name: str) -> "RunStore | None":
        """The newest run of this profile and suite version that did not complete, if any."""
        runs = cls.of_profile(results_dir, profile_name, complete=False)
        return runs[0] if runs else None

    @classmethod
    def newest(cls, results_dir: Path) -> "RunStore":
        """The run folder under <results_dir>/<version>/ whose manifest says it started last."""
        results_dir = Path(results_dir)
        if not results_dir.is_dir():
            raise ConfigError(f"results-dir: '{results_dir}' is not a directory")
        found = []
        for m in results_dir.glob(f"*/*/{MANIFEST}"):
            data = _manifest_or_none(m)
            if data is not None:
                found.append((str(data.get("started", "")), m.stat().st_mtime, str(m), m))
        if not found:
            raise ConfigError(f"results-dir: no run folder with a readable {MANIFEST} under '{results_dir}'")
        return cls.open(max(found)[-1].parent)

    # -- contents --------------------------------------------------------------------------------
    def clean_temporaries(self) -> None:
        for tmp in self.path.glob(".*.tmp"):
            tmp.unlink()

    def manifest(self) -> dict:
        return read_manifest(self.path / MANIFEST)

    def write_manifest(self, manifest: dict) -> None:
        atomic_write(self.path / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    def update_manifest(self, **changes) -> None:
        m = self.manifest()
        m.update(changes)
        self.write_manifest(m)

    def runs(self) -> pd.DataFrame:
        p = self.path / RUNS
        return read_runs(p) if p.is_file() else pd.DataFrame()

    def table(self, name: str) -> pd.DataFrame:
        """A per-cell table; an empty file (a run may hold one) reads as no rows, and one that is not
        a table keyed by config_hash is a one-line ConfigError naming the file."""
        p = self.path / name
        if not p.is_file():
            return pd.DataFrame()
        try:
            df = pd.read_csv(p, dtype=DTYPES)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as e:
            raise ConfigError(f"{name}: cannot read '{p}' ({' '.join(str(e).split())[:200]})") from None
        if "config_hash" not in df.columns:
            raise ConfigError(f"{name}: '{p}' lacks column 'config_hash' (not a per-cell table of this suite)")
        return df

    def check_stored(self) -> None:
        """A stored run read as a reference (regress --against): every row through the typed record,
        one row per cell, the per-cell tables readable; else one line naming the file."""
        runs, path = self.runs(), self.path / RUNS
        if runs.empty:
            return
        dup = runs["config_hash"][runs["config_hash"].duplicated()]
        if len(dup):
            raise ConfigError(f"runs.csv: '{path}' holds cell {dup.iloc[0]} more than once (a run stores each "
                              f"cell once)")
        for i, row in enumerate(runs.to_dict("records")):
            clean = {k: v for k, v in row.items() if not (isinstance(v, float) and v != v) and v is not pd.NA}
            try:
                validate_row(clean)
            except (ValueError, TypeError) as e:
                raise ConfigError(f"runs.csv: row {i + 2} of '{path}' is not a run row "
                                  f"({' '.join(str(e).split())[:200]})") from None
        for name in CELL_TABLES:
            self.table(name)

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

    def append_cell(self, row: dict, history_rows: list[dict], routing_rows: list[dict] | None = None,
                    checkpoint: dict | None = None) -> None:
        """Per-cell tables (and weights) first, then the run row: a cell counts as finished once its
        row exists (a checkpoint left by an interrupted cell is overwritten when it is retrained)."""
        validate_row(row)
        if row["config_hash"] in self.finished_cells():
            raise RuntimeError(f"cell {row['config_hash']} already stored")
        if checkpoint is not None:
            (self.path / MODELS).mkdir(exist_ok=True)
            with atomic_file(self.model_path(row["config_hash"]), "wb") as f:
                torch.save(checkpoint, f)
        for name, rows in ((HISTORY, history_rows), (ROUTING, routing_rows)):
            if rows:
                write_csv(self.path / name, pd.concat([self.table(name), pd.DataFrame(rows)], ignore_index=True))
        runs = pd.concat([self.runs(), pd.DataFrame([row])], ignore_index=True)
        write_csv(self.path / RUNS, runs)

    def model_path(self, config_hash: str) -> Path:
        return self.path / MODELS / f"{config_hash}.pt"

    def load_checkpoint(self, config_hash: str) -> dict:
        """The stored weights of one routed cell; one line if the run kept none for it."""
        path = self.model_path(config_hash)
        if not path.is_file():
            raise ConfigError(f"models: run '{self.path.name}' kept no weights for cell {config_hash} "
                              f"(its profile did not set save_models)")
        return torch.load(path, map_location="cpu", weights_only=True)

    @contextlib.contextmanager
    def lock(self):
        """One process writes a run at a time: an OS lock (flock), so the kernel frees it when its
        holder dies. Holding it, temporaries a killed writer left behind are removed."""
        lock = filelock.FileLock(self.path / ".lock", timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise ConfigError(f"run dir: '{self.path}' is being written by another process") from None
        except OSError as e:
            raise ConfigError(f"run dir: cannot lock '{self.path}' ({e.strerror or e})") from None
        try:
            self.clean_temporaries()
            yield self
        finally:
            lock.release()

    def write_text(self, name: str, text: str) -> None:
        atomic_write(self.path / name, text)
