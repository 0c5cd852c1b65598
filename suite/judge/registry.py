"""The claims registry (suite/data/claims.json) as a typed schema: a mistyped key, metric or
comparator stops at load time with one line naming the claim, before any run is judged.

A claim selects faithful cells and lists checks that must all hold; a seed succeeds when it meets
every one. How it is read (claims.md): `typical` asks whether the median run meets it (a test on
seed success, suite.judge.sequential); `contrast` asks whether the selected cells succeed more
often than the `against` cells (the curriculum effect). A claim with a `bound` is also decided by
arithmetic: when the FLOP closed forms show no run of the architecture can meet it, it FAILs
whatever the seeds (suite.judge.bounds).
"""
from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from suite.errors import ConfigError, parse
from suite.schema.bounds import Distance, Finite, Name
from suite.schema.rows import METRICS, is_metric

REGISTRY = Path(__file__).resolve().parent.parent / "data" / "claims.json"
#: metrics the checker computes from a run's columns rather than reading them
DERIVED = {"savings_notional": lambda df: 1.0 - df["usage"]}
STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class Check(BaseModel):
    """One comparison of a metric against the published number."""
    model_config = STRICT

    metric: str
    comparator: Literal[">=", "<=", "within"]
    threshold: Finite
    tolerance: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None

    @field_validator("metric")
    @classmethod
    def _known(cls, name: str) -> str:
        if not (is_metric(name) or name in DERIVED):
            near = difflib.get_close_matches(name, sorted(METRICS | set(DERIVED)), n=1)
            hint = f"; did you mean '{near[0]}'?" if near else " (a numeric column of suite/schema/rows.py)"
            raise ValueError(f"unknown metric '{name}'{hint}")
        return name

    @model_validator(mode="after")
    def _tolerance(self) -> "Check":
        if (self.comparator == "within") != (self.tolerance is not None):
            raise ValueError("comparator 'within' needs a tolerance, and only 'within' takes one")
        return self

    def text(self) -> str:
        if self.comparator == "within":
            return f"{self.metric} within {self.threshold:g} +- {self.tolerance:g}"
        return f"{self.metric} {self.comparator} {self.threshold:g}"

    def decide(self, mean: float, low: float, high: float) -> str:
        t = self.threshold
        if self.comparator == ">=":
            return "PASS" if mean >= t and low >= t else "FAIL" if high < t else "INCONCLUSIVE"
        if self.comparator == "<=":
            return "PASS" if mean <= t and high <= t else "FAIL" if low > t else "INCONCLUSIVE"
        a, b = t - self.tolerance, t + self.tolerance
        return "PASS" if a <= low and high <= b else "FAIL" if high < a or low > b else "INCONCLUSIVE"

    def holds(self, value: float) -> bool:
        """Does one seed's value meet the check?"""
        return self.decide(value, value, value) == "PASS"


class Select(BaseModel):
    """The cells of a claim (faithful model only); a list asks for every listed value."""
    model_config = STRICT

    task: str
    distance: Distance | list[Distance]
    model: str
    protocol: str
    lambda_target: Finite | list[Finite] | None = None

    def columns(self) -> dict:
        """runs.csv column -> wanted values."""
        return {k: v if isinstance(v, list) else [v] for k, v in self.model_dump(exclude_none=True).items()}


class Claim(BaseModel):
    model_config = STRICT

    id: Name
    source: str
    claim: str
    published: str
    select: Select
    checks: list[Check] = Field(min_length=1)
    profiles: list[str] = Field(min_length=1)
    success: Check | None = None
    reading: Literal["typical", "contrast"] = "typical"
    against: Select | None = None
    bound: Literal["conv-only-executed-savings"] | None = None
    reason: str = ""

    @model_validator(mode="after")
    def _reading_fits(self) -> "Claim":
        if (self.reading == "contrast") != (self.against is not None):
            raise ValueError("against: reading 'contrast' needs the cells it is compared against, "
                             "and only 'contrast' takes them")
        if self.reading == "contrast" and not self.reason:
            raise ValueError("reason: reading 'contrast' needs one (claims.md: typical decides unless a "
                             "reason says otherwise)")
        if self.bound is not None and not any(ch.metric == "savings_executed" and ch.comparator == ">="
                                              for ch in self.checks):
            raise ValueError("bound: 'conv-only-executed-savings' bounds a check 'savings_executed >= x'; "
                             "this claim has none")
        return self


class RegistryFile(BaseModel):
    """The file's shape; each claim is parsed on its own so an error names the claim's id."""
    model_config = ConfigDict(extra="forbid", strict=True)

    comment: str = ""
    claims: list[Any] = Field(min_length=1)


def load_registry(path: Path = REGISTRY) -> list[Claim]:
    """Every claim of a registry file, or ConfigError with one line."""
    try:
        doc = json.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as e:
        raise ConfigError(f"claims file: cannot read '{path}' ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"claims file: '{path}' is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"claims file: '{path}' is not valid JSON "
                          f"({e.msg} at line {e.lineno} column {e.colno})") from None
    raw = parse(RegistryFile, doc, "claims file").claims
    claims, seen = [], set()
    for i, c in enumerate(raw):
        cid = c.get("id") if isinstance(c, dict) else None
        claim = parse(Claim, c, f"claim {cid}" if isinstance(cid, str) else f"claims[{i}]")
        if claim.id in seen:
            raise ConfigError(f"claim {claim.id}: duplicate id (claims[{i}])")
        seen.add(claim.id)
        claims.append(claim)
    return claims
