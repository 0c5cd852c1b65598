"""Profiles: a named grid of (task, distance, model, lambda, seed) cells on a protocol, as data.

A profile is a JSON file (suite/data/profiles/<name>.json, or any path). Every key is checked;
every cell is built and validated before anything runs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

from baselines import MODELS, ModelConfig, ModelConfigError
from tasks import Task, TaskConfigError, make_task

from suite.errors import ConfigError
from suite.run.protocol import Protocol, get_protocol

PROFILE_DIR = Path(__file__).resolve().parent.parent / "data" / "profiles"
PROFILE_KEYS = {"name", "description", "decides_claims", "protocol", "model", "test_sequences",
                "cuts", "grid"}
BLOCK_KEYS = {"label", "task", "task_params", "distances", "models", "lambdas", "seeds", "protocol",
              "epoch_cap", "model"}


@dataclass(frozen=True)
class Cell:
    """One training run of the grid."""

    task: str
    distance: int
    model: str
    lambda_target: float
    seed: int
    protocol: str
    epoch_cap: int | None = None
    task_params: dict = field(default_factory=dict)
    model_overrides: dict = field(default_factory=dict)
    label: str = ""

    def build_task(self) -> Task:
        return make_task(self.task, distance=self.distance, **self.task_params)

    def model_config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.model_overrides)

    def build_protocol(self) -> Protocol:
        return dataclasses.replace(get_protocol(self.protocol), epoch_cap=self.epoch_cap)

    @property
    def faithful_model(self) -> bool:
        return self.model_config() == ModelConfig()

    def identity(self, test_sequences: int) -> dict:
        """Everything that determines the cell's result (hashed into config_hash)."""
        return {"task": self.task, "task_params": self.build_task().params(), "model": self.model,
                "model_config": dataclasses.asdict(self.model_config()), "lambda_target": self.lambda_target,
                "seed": self.seed, "protocol": self.build_protocol().to_dict(),
                "test_sequences": test_sequences}

    def config_hash(self, test_sequences: int) -> str:
        text = json.dumps(self.identity(test_sequences), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        lam = f" lambda {self.lambda_target:g}" if self.model == "routed" else ""
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

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "decides_claims": self.decides_claims,
                "test_sequences": self.test_sequences, "cuts": list(self.cuts), "source": self.source,
                "cells": [dataclasses.asdict(c) for c in self.cells]}


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


def _check_keys(where: str, given: dict, allowed: set) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(sorted(allowed))}")


def _list_of(where: str, value, kind) -> list:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: must be a non-empty list")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, kind):
            raise ConfigError(f"{where}: every entry must be {kind.__name__ if isinstance(kind, type) else 'a number'}, got {v!r}")
    return value


def parse_profile(data: dict, source: str = "") -> Profile:
    if not isinstance(data, dict):
        raise ConfigError(f"profile {source}: must be a JSON object")
    _check_keys("profile", data, PROFILE_KEYS)
    for key in ("name", "grid"):
        if key not in data:
            raise ConfigError(f"profile: missing key '{key}'")
    default_protocol = data.get("protocol", "faithful")
    base_model = data.get("model", {})
    tests = data.get("test_sequences", 3000)
    if isinstance(tests, bool) or not isinstance(tests, int) or tests < 1:
        raise ConfigError(f"test_sequences: must be a positive integer, got {tests!r}")
    cells, seen = [], set()
    for i, block in enumerate(_list_of("grid", data["grid"], dict)):
        where = f"grid[{i}]"
        _check_keys(where, block, BLOCK_KEYS)
        if "task" not in block:
            raise ConfigError(f"{where}: missing key 'task'")
        models = _list_of(f"{where}.models", block.get("models", []), str)
        for m in models:
            if m not in MODELS:
                raise ConfigError(f"{where}.models: unknown '{m}'; allowed: {', '.join(MODELS)}")
        distances = _list_of(f"{where}.distances", block.get("distances", []), int)
        seeds = _list_of(f"{where}.seeds", block.get("seeds", []), int)
        if any(s < 0 for s in seeds):
            raise ConfigError(f"{where}.seeds: must be non-negative integers")
        lambdas = block.get("lambdas")
        if "routed" in models:
            lambdas = _list_of(f"{where}.lambdas", lambdas if lambdas is not None else [], (int, float))
            if any(not lam >= 0 for lam in lambdas):
                raise ConfigError(f"{where}.lambdas: must be >= 0, got {lambdas}")
        elif lambdas is not None:
            raise ConfigError(f"{where}.lambdas: only routed models take a lambda")
        protocol = block.get("protocol", default_protocol)
        get_protocol(protocol)
        cap = block.get("epoch_cap")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ConfigError(f"{where}.epoch_cap: must be a positive integer, got {cap!r}")
        overrides = {**base_model, **block.get("model", {})}
        task_params = block.get("task_params", {})
        for d, m, s in itertools.product(distances, models, seeds):
            for lam in (lambdas if m == "routed" else [0.0]):
                cell = Cell(block["task"], d, m, float(lam), s, protocol, cap, dict(task_params),
                            dict(overrides), block.get("label", ""))
                try:
                    task = cell.build_task()        # validates task parameters
                    cfg = cell.model_config()       # validates model parameters
                except (TaskConfigError, ModelConfigError) as e:
                    raise ConfigError(f"{where}: {e}") from None
                if cfg.vocab_size < task.vocab_size:
                    raise ConfigError(f"{where}: model vocab_size {cfg.vocab_size} < task vocab {task.vocab_size}")
                key = cell.config_hash(tests)
                if key in seen:
                    raise ConfigError(f"{where}: duplicate cell {cell.describe()}")
                seen.add(key)
                cells.append(cell)
    cuts = data.get("cuts", [])
    if not isinstance(cuts, list) or not all(isinstance(c, str) for c in cuts):
        raise ConfigError("cuts: must be a list of strings")
    return Profile(data["name"], data.get("description", ""), bool(data.get("decides_claims", True)),
                   tests, tuple(cuts), tuple(cells), source)


def load_profile(name_or_path: str) -> Profile:
    path = Path(name_or_path)
    if not (path.suffix == ".json" and path.is_file()):
        if name_or_path not in available_profiles():
            raise ConfigError(f"profile: unknown '{name_or_path}'; allowed: {', '.join(available_profiles())} "
                              f"or a path to a .json profile")
        path = PROFILE_DIR / f"{name_or_path}.json"
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"profile {path}: not valid JSON ({e.msg} at line {e.lineno})")
    return parse_profile(data, str(path))
