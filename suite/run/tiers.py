"""Regression tiers (suite/data/tiers.json): a battery of cells at one model size and protocol, as
profile data, and the reuse of a stored reference run's cells."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from suite.errors import parse
from suite.judge.regress import ORIGINAL
from suite.run.profiles import STRICT, Profile, ProtocolName
from suite.run.store import CELL_TABLES, RunStore
from suite.schema.bounds import Distance, Lambda, TestSequences
from suite.schema.rows import ok_rows
from tasks import TASKS

TIERS = Path(__file__).resolve().parent.parent / "data" / "tiers.json"
REPO = Path(__file__).resolve().parent.parent.parent
REFERENCES = (ORIGINAL, "attn", "conv")


class Battery(BaseModel):
    model_config = STRICT
    task: Literal[tuple(sorted(TASKS))]
    distances: list[Distance] = Field(min_length=1)
    task_params: dict[str, Any] = {}


class Tier(BaseModel):
    model_config = STRICT
    description: str
    faithful: bool
    protocol: ProtocolName
    model: dict[str, Any] = {}
    test_sequences: TestSequences
    lam: Lambda = Field(alias="lambda")
    battery: list[Battery] = Field(min_length=1)
    reference: str | None = None


class TierFile(BaseModel):
    model_config = STRICT
    comment: str = ""
    tiers: dict[str, Tier]


def load_tiers(path: Path | None = None) -> dict[str, Tier]:
    return parse(TierFile, json.loads(Path(path or TIERS).read_text()), "tiers").tiers


def regress_profile(tier_name: str, tier: Tier, router: str, router_kwargs: dict, seeds: int) -> dict:
    """The battery as profile data: reference blocks (attn, conv, the original router) and the
    candidate's block (left out when the candidate is the original router itself)."""
    spec = json.dumps({"router": router, "router_kwargs": router_kwargs, "seeds": seeds}, sort_keys=True)
    name = f"regress-{tier_name}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}"
    is_original = router == ORIGINAL and not router_kwargs
    grid = []
    for b in tier.battery:
        common = {"task": b.task, "distances": b.distances, "seeds": list(range(seeds)),
                  "task_params": b.task_params}
        grid.append({**common, "label": "reference", "models": ["attn", "conv"]})
        grid.append({**common, "label": "reference", "models": ["routed"], "lambdas": [tier.lam]})
        if not is_original:
            grid.append({**common, "label": "candidate", "models": ["routed"], "lambdas": [tier.lam],
                         "model": {"router": router, "router_kwargs": router_kwargs}})
    cuts = [] if tier.faithful else [f"tier {tier_name}: not the faithful model (decides no published claim)"]
    return {"name": name, "description": f"regress {router} {json.dumps(router_kwargs)} on the {tier_name} tier, "
                                         f"{seeds} seed(s)",
            "decides_claims": False, "protocol": tier.protocol, "model": tier.model,
            "test_sequences": tier.test_sequences, "cuts": cuts, "grid": grid}


def _records(df: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in df.to_dict("records")]


def import_reference(store: RunStore, reference: RunStore, profile: Profile) -> int:
    """Copy the reference run's finished rows of this profile's cells (and their per-cell tables)
    into this run; their run_id column keeps naming the run that trained them."""
    wanted = {c.config_hash(profile.test_sequences) for c in profile.cells} - store.finished_cells()
    rows = ok_rows(reference.runs())
    rows = rows[rows["config_hash"].isin(wanted)] if len(rows) else rows
    tables = {name: reference.table(name) for name in CELL_TABLES}
    for row in _records(rows):
        per_cell = {name: _records(t[t["config_hash"] == row["config_hash"]]) if len(t) else []
                    for name, t in tables.items()}
        store.append_cell(row, *per_cell.values())
    return len(rows)
