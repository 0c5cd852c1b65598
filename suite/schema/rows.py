"""The run row: one typed record for runs.csv, used by the store (writes), the checker, the
report and the figures (reads). Column names, dtypes and which may be empty live here only.

A row is `status == "ok"` (trained and evaluated) or `"failed"` (stopped with `error`; its
metrics are empty). Per-layer usage columns `usage_layer_<i>` follow the model's depth.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict

from baselines import ModelConfig

from suite.errors import ConfigError

STATUSES = ("ok", "failed")
TIERS = ("faithful", "mini")
#: the original's model size (baselines' ModelConfig defaults): a row at it is tier 'faithful'
FAITHFUL_SIZE = {f: getattr(ModelConfig(), f) for f in ("d_model", "n_layers", "n_heads", "kernel_size")}
LAYER_COLUMN = re.compile(r"^usage_layer_\d+$")


class RunRow(BaseModel):
    """One trained cell. Optional (None) fields are empty for a failed cell, or when not measured."""

    model_config = ConfigDict(extra="allow", strict=False)

    # identity
    run_id: str
    config_hash: str
    label: str = ""
    task: str
    distance: int
    seq_len: int
    task_params: str                      # JSON
    model: str
    lambda_target: float
    seed: int
    protocol: str
    protocol_hash: str
    epoch_cap: float | None = None        # float: pandas reads an integer column with gaps as float
    cuts: str = ""
    profile: str
    model_config_json: str | None = None  # placeholder, see COLUMN_ALIASES
    faithful_model: bool                  # the original's model, router included (decides claims)
    tier: str | None = None               # 'faithful' (the original's size, any router) or 'mini'; see tier_of
    router: str | None = None             # routed: built-in name or 'package.module:Class'
    router_kwargs: str | None = None      # JSON
    router_source_hash: str | None = None # a plugin's source file, hashed (also in config_hash)
    precision: str | None = None          # the protocol's numerics (float32 = TF32 off, as the original)
    d_model: int
    n_layers: int
    n_heads: int
    kernel_size: int
    params: int | None = None
    status: str = "ok"
    error: str | None = None
    # results
    accuracy: float | None = None
    accuracy_low: float | None = None
    accuracy_high: float | None = None
    test_correct: float | None = None
    test_total: float | None = None
    test_sequences: int
    usage: float | None = None
    usage_per_layer: str | None = None    # JSON list
    val_accuracy: float | None = None
    val_usage: float | None = None
    epochs_phase1: float | None = None
    epochs_phase2: float | None = None
    phase2_ran: bool | None = None
    seconds: float | None = None          # this run's own wall time (a reused phase 1 not included)
    # phase 1 shared across lambda targets (suite/run/phase1.py); empty in rows written before it
    phase1_reused: bool | None = None     # phase 1 read from another cell's checkpoint, not trained here
    phase1_key: str | None = None         # routed curriculum cells: the phase-1 identity hash
    # compute readings (suite.compute.readings)
    macs_forward_executed: float | None = None
    macs_forward_dense_original: float | None = None
    macs_forward_attn_ref: float | None = None
    savings_notional: float | None = None
    savings_executed: float | None = None
    savings_latency: float | None = None
    latency_ms_model: float | None = None
    latency_ms_attn: float | None = None
    latency_batch: float | None = None
    train_flops_per_step: float | None = None
    train_flops_phase1: float | None = None
    train_flops_phase2: float | None = None
    # provenance
    data_fingerprint: str
    suite_version: str
    git_sha: str
    torch_version: str
    device: str
    threads: int | None = None            # torch threads the cell trained at: part of the machine's identity
    finished_at: str


#: runs.csv calls it model_config; pydantic reserves that name, so the record field is renamed
COLUMN_ALIASES = {"model_config_json": "model_config"}
_FIELDS = {COLUMN_ALIASES.get(k, k): f for k, f in RunRow.model_fields.items()}


def _kind(annotation) -> type:
    for t in (bool, int, float, str):
        if annotation is t or t in getattr(annotation, "__args__", ()):
            return t
    return str


#: column -> python type, for every column the record names
COLUMN_TYPES = {col: _kind(f.annotation) for col, f in _FIELDS.items()}
REQUIRED = {col for col, f in _FIELDS.items() if f.is_required()}
#: numeric columns a claim may name as its metric
METRICS = {col for col, t in COLUMN_TYPES.items() if t in (int, float)}


def is_metric(name: str) -> bool:
    return name in METRICS or bool(LAYER_COLUMN.match(name))


def validate_row(row: dict) -> dict:
    """Check a row before it is stored: every required column, no unknown column, finite or empty."""
    unknown = [k for k in row if k not in _FIELDS and not LAYER_COLUMN.match(k)]
    if unknown:
        raise ValueError(f"run row: unknown column '{unknown[0]}' (add it to suite/schema/rows.py)")
    data = {({v: k for k, v in COLUMN_ALIASES.items()}.get(k, k)): v for k, v in row.items()}
    RunRow.model_validate(data)
    if row.get("tier") not in (None, *TIERS):
        raise ValueError(f"run row: tier must be one of {TIERS}, got {row.get('tier')!r}")
    if row.get("status", "ok") not in STATUSES:
        raise ValueError(f"run row: status must be one of {STATUSES}, got {row.get('status')!r}")
    return row


#: read every string-like column as text (an all-digit hash must not become an integer)
READ_DTYPES = {col: str for col, t in COLUMN_TYPES.items() if t is str}


def read_runs(path) -> pd.DataFrame:
    """runs.csv as a DataFrame with the record's columns; one line naming the problem if it is not one."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=READ_DTYPES, keep_default_na=False, na_values=[""])  # a name "nan" stays text
    except FileNotFoundError:
        raise ConfigError(f"runs.csv: '{path}' does not exist") from None
    except pd.errors.EmptyDataError:
        raise ConfigError(f"runs.csv: '{path}' is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"runs.csv: cannot parse '{path}' ({str(e).strip().splitlines()[0]})") from None
    missing = sorted(c for c in REQUIRED if c not in df.columns)
    if missing:
        raise ConfigError(f"runs.csv: '{path}' lacks column '{missing[0]}' (suite/schema/rows.py lists them)")
    if "status" not in df.columns:           # rows written before failures were recorded
        df["status"] = "ok"
    df["status"] = df["status"].fillna("ok")
    for col in df.columns:
        t = COLUMN_TYPES.get(col, float if LAYER_COLUMN.match(col) else None)
        if t is None:
            continue
        try:
            if t is bool:
                df[col] = df[col].map(_as_bool)
            elif t in (int, float):
                df[col] = pd.to_numeric(df[col], errors="raise")
        except (ValueError, TypeError):
            raise ConfigError(f"runs.csv: column '{col}' of '{path}' is not numeric") from None
    df["tier"] = tier_of(df)
    df["threads"] = threads_of(df)
    for col in ("distance", "seed"):
        if df[col].isna().any():
            raise ConfigError(f"runs.csv: row {int(df[col].isna().idxmax()) + 2} of '{path}' has no {col}")
    return df


def tier_of(df: pd.DataFrame) -> pd.Series:
    """The tier of each row: the written column where present, else read off the model size (rows
    written before the column existed). Size, not `faithful_model`: a full-size model with a fixed
    router (a control) is tier 'faithful' though it is not the original model."""
    by_size = pd.Series(True, index=df.index)
    for f, v in FAITHFUL_SIZE.items():
        by_size &= pd.to_numeric(df[f], errors="coerce") == v
    derived = by_size.map({True: "faithful", False: "mini"})
    if "tier" not in df.columns:
        return derived.astype("string")
    return df["tier"].where(df["tier"].notna(), derived).astype("string")


#: how provenance.device_name writes a CPU row's machine ("cpu:<model> x<K> threads")
_DEVICE_THREADS = re.compile(r"^cpu:.* x(\d+) threads$")


def threads_of(df: pd.DataFrame) -> pd.Series:
    """The torch thread count of each row: the written column where present, else read off the
    device string (CPU rows written before the column existed); empty where neither says."""
    derived = df["device"].astype("string").str.extract(_DEVICE_THREADS, expand=False)
    derived = pd.to_numeric(derived, errors="coerce").astype("Int64")
    if "threads" not in df.columns:
        return derived
    written = pd.to_numeric(df["threads"], errors="coerce").astype("Int64")
    return written.where(written.notna(), derived)


def _as_bool(v):
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, float) and math.isnan(v):
        return None
    text = str(v).strip().lower()
    if text in ("true", "1", "1.0"):
        return True
    if text in ("false", "0", "0.0"):
        return False
    raise ValueError(v)


def ok_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """Cells that trained and were evaluated (failed cells carry no metrics)."""
    if runs.empty or "status" not in runs.columns:
        return runs
    return runs[runs["status"] == "ok"]


def faithful_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows that may decide a published claim: the original's model, trained and evaluated."""
    rows = ok_rows(runs)
    if rows.empty:
        return rows
    return rows[rows["faithful_model"].fillna(False).astype(bool)]
