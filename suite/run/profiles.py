"""Profiles: a named grid of (task, distance, model, lambda, seed) cells on a protocol, as data.

A profile is a JSON file (suite/data/profiles/<name>.json, or any path), read through one typed
schema (ProfileSpec): unknown keys, wrong types, non-finite numbers and values outside the
documented bounds (suite/schema/bounds.py) stop with one line naming the key. Every cell is then
built (task, model config, protocol) before anything runs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from baselines import MODELS, ModelConfig, ModelConfigError, router_source
from tasks import TASKS, Task, TaskConfigError, make_task

from suite.errors import ConfigError, one_line, parse
from suite.run.gate import check_spec
from suite.run.protocol import PROTOCOLS, Protocol, get_protocol
from suite.schema.rows import FAITHFUL_SIZE
from suite.schema.bounds import Distance, EpochCap, Lambda, Name, Seed, SeedBudget, TestSequences

PROFILE_DIR = Path(__file__).resolve().parent.parent / "data" / "profiles"

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
ModelName = Literal[tuple(MODELS)]
def _known_protocol(name: str) -> str:
    """Checked at validation time, so a protocol registered later (a test's, a user's) is known."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{name}'; allowed: {', '.join(PROTOCOLS)}")
    return name


ProtocolName = Annotated[str, AfterValidator(_known_protocol)]


class GridBlock(BaseModel):
    """One block of a profile's grid: the product of its lists is its cells."""

    model_config = STRICT
    label: str = ""
    task: Literal[tuple(sorted(TASKS))]
    task_params: dict[str, Any] = {}
    distances: list[Distance] = Field(min_length=1)
    models: list[ModelName] = Field(min_length=1)
    lambdas: list[Lambda] | None = Field(default=None, min_length=1)
    seeds: list[Seed] = Field(min_length=1)
    protocol: ProtocolName | None = None
    epoch_cap: EpochCap | None = None
    model: dict[str, Any] = {}
    #: seeds are added to this block's cells while a claim on them is undecided, up to this many
    #: per cell (what `--until-decided --max-seeds N` asks of every cell)
    max_seeds: SeedBudget | None = None


class ProfileSpec(BaseModel):
    """A profile file as written."""

    model_config = STRICT
    name: Name
    description: str = ""
    decides_claims: bool = True
    protocol: ProtocolName = "faithful"
    model: dict[str, Any] = {}
    test_sequences: TestSequences = 3000
    cuts: list[str] = []
    #: keep each routed cell's trained weights in the run folder (models/<config_hash>.pt), so the
    #: audit can swap its decisions later; off by default (a faithful model is 4.5 MB)
    save_models: bool = False
    grid: list[GridBlock] = Field(min_length=1)


@dataclass(frozen=True)
class Cell:
    """One training run of the grid."""

    task: Literal[tuple(sorted(TASKS))]
    distance: int
    model: str
    lambda_target: float
    seed: int
    protocol: str
    epoch_cap: int | None = None
    task_params: dict = field(default_factory=dict)
    model_overrides: dict = field(default_factory=dict)
    label: str = ""
    max_seeds: int | None = None   # its block's until-decided budget; not part of its identity

    def build_task(self) -> Task:
        return make_task(self.task, distance=self.distance, **self.task_params)

    def model_config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.model_overrides)

    def build_protocol(self) -> Protocol:
        return dataclasses.replace(get_protocol(self.protocol), epoch_cap=self.epoch_cap)

    @property
    def faithful_model(self) -> bool:
        return self.model_config() == ModelConfig()

    @property
    def tier(self) -> str:
        """'faithful' at the original's model size (whatever the router), else 'mini'."""
        cfg = self.model_config()
        return "faithful" if all(getattr(cfg, f) == v for f, v in FAITHFUL_SIZE.items()) else "mini"

    def router_source_hash(self) -> str | None:
        """Hash of a plugin router's source file (None for built-ins and models without a router):
        editing the plugin retires its stored cells, as asv retires a benchmark whose code changed."""
        cfg = self.model_config()
        path = router_source(cfg.router) if self.model == "routed" else None
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if path else None

    def identity(self, test_sequences: int) -> dict:
        """Everything that determines the cell's result (hashed into config_hash). Router kwargs
        and a plugin's source hash appear only when present, so built-in cells keep their hashes."""
        out = {"task": self.task, "task_params": self.build_task().params(), "model": self.model,
               "model_config": self.model_config().identity(), "lambda_target": self.lambda_target,
               "seed": self.seed, "protocol": self.build_protocol().to_dict(),
               "test_sequences": test_sequences}
        source = self.router_source_hash()
        if source:
            out["router_source_hash"] = source
        return out

    def config_hash(self, test_sequences: int) -> str:
        text = json.dumps(self.identity(test_sequences), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        lam = f" lambda {self.lambda_target:g}" if self.model == "routed" else ""
        cfg = self.model_config()
        if self.model == "routed" and (cfg.router != "gumbel" or cfg.router_kwargs):
            lam += f" router {cfg.router}" + (f" {json.dumps(cfg.router_kwargs, sort_keys=True)}"
                                               if cfg.router_kwargs else "")
        cap = f" cap {self.epoch_cap}" if self.epoch_cap else ""
        return f"{self.task} d={self.distance} {self.model}{lam} seed {self.seed} [{self.protocol}{cap}]"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    decides_claims: bool
    test_sequences: int
    cuts: tuple
    cells: tuple
    source: str = ""
    save_models: bool = False

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "decides_claims": self.decides_claims,
                "test_sequences": self.test_sequences, "cuts": list(self.cuts), "source": self.source,
                "save_models": self.save_models, "cells": [dataclasses.asdict(c) for c in self.cells]}


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


#: model keys that configure the router: refused where no routed model would read them
ROUTER_KEYS = ("router", "router_kwargs")


def _cell_error(where: str, err: Exception) -> ConfigError:
    text = one_line(err) if isinstance(err, pydantic.ValidationError) else str(err)
    text = text.replace("seq_len_", "seq_len")  # the task field behind the public parameter name
    return ConfigError(f"{where}: {text}")


def parse_profile(data, source: str = "") -> Profile:
    """Validate a profile (parsed JSON) and expand its grid into cells, all checked."""
    spec = parse(ProfileSpec, data, "profile")
    cells, seen, checked = [], set(), set()
    routed_anywhere = any("routed" in b.models for b in spec.grid)
    for i, block in enumerate(spec.grid):
        where = f"profile.grid[{i}]"
        if "routed" in block.models and block.lambdas is None:
            raise ConfigError(f"{where}.lambdas: required when models include 'routed'")
        if "routed" not in block.models and block.lambdas is not None:
            raise ConfigError(f"{where}.lambdas: only routed models take a lambda")
        overrides = {**spec.model, **block.model}
        keys = [k for k in ROUTER_KEYS if k in block.model or (k in spec.model and not routed_anywhere)]
        if keys and "routed" not in block.models:
            at = f"{where}.model" if keys[0] in block.model else "profile.model"
            raise ConfigError(f"{at}.{keys[0]}: only a routed model has a router; the models of {where} "
                              f"are {', '.join(block.models)}")
        for d, m, s in itertools.product(block.distances, block.models, block.seeds):
            for lam in (block.lambdas if m == "routed" else [0.0]):
                cell = Cell(block.task, d, m, float(lam), s, block.protocol or spec.protocol, block.epoch_cap,
                            dict(block.task_params), dict(overrides), block.label, block.max_seeds)
                try:
                    task = cell.build_task()
                except (TaskConfigError, pydantic.ValidationError) as e:
                    raise _cell_error(f"{where}.task_params", e) from None
                try:
                    cfg = cell.model_config()
                except (ModelConfigError, pydantic.ValidationError) as e:
                    raise _cell_error(f"{where}.model", e) from None
                if m == "routed" and cfg not in checked:
                    try:
                        check_spec(cfg)
                    except (ModelConfigError, ConfigError) as e:
                        raise _cell_error(f"{where}.model", e) from None
                    checked.add(cfg)
                if cfg.vocab_size < task.vocab_size:
                    raise ConfigError(f"{where}.model.vocab_size: {cfg.vocab_size} is below the task's vocabulary "
                                      f"({task.vocab_size})")
                key = cell.config_hash(spec.test_sequences)
                if key in seen:
                    raise ConfigError(f"{where}: duplicate cell {cell.describe()}")
                seen.add(key)
                cells.append(cell)
    return Profile(spec.name, spec.description, spec.decides_claims, spec.test_sequences, tuple(spec.cuts),
                   tuple(cells), source, spec.save_models)


def load_profile(name_or_path: str) -> Profile:
    path = Path(name_or_path)
    if not (path.suffix == ".json" and path.is_file()):
        if name_or_path not in available_profiles():
            raise ConfigError(f"profile: unknown '{name_or_path}'; allowed: {', '.join(available_profiles())} "
                              f"or a path to a .json profile")
        path = PROFILE_DIR / f"{name_or_path}.json"
    try:
        data = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as e:
        raise ConfigError(f"profile {path}: not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"profile {path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except RecursionError:
        raise ConfigError(f"profile {path}: nested too deep to read (a profile is a few levels of JSON)") from None
    except OSError as e:
        raise ConfigError(f"profile {path}: cannot read ({e.strerror})") from None
    return parse_profile(data, str(path))


def _refuse_constant(name: str):
    """JSON has no Infinity or NaN; Python's reader accepts them unless told not to."""
    raise json.JSONDecodeError(f"non-finite number {name} is not allowed", name, 0)
