"""Training protocols as named, frozen objects. The faithful one is the original script's."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Annotated, Literal

import pydantic
from pydantic import Field

from suite.errors import ConfigError, build
from suite.schema.bounds import EpochCap

PositiveInt = Annotated[int, Field(ge=1, le=100_000)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


@pydantic.dataclasses.dataclass(frozen=True, config=pydantic.ConfigDict(extra="forbid", strict=True,
                                                                          allow_inf_nan=False))
class Protocol:
    """Everything that defines one training run except the task, model and seed."""

    name: str
    # optimiser: AdamW, one instance for the whole run (kept from phase 1 into phase 2)
    lr: Annotated[float, Field(gt=0.0, le=10.0)] = 1e-3
    betas: tuple[Annotated[float, Field(ge=0.0, lt=1.0)], Annotated[float, Field(ge=0.0, lt=1.0)]] = (0.9, 0.999)
    weight_decay: Annotated[float, Field(ge=0.0, le=10.0)] = 0.01
    clip_norm: Annotated[float, Field(gt=0.0)] = 1.0
    # batch size by sequence length: first (max_T, batch) with T <= max_T, else the fallback
    batch_sizes: tuple[tuple[PositiveInt, PositiveInt], ...] = ((256, 32), (512, 24), (1024, 16), (2048, 8))
    batch_size_fallback: PositiveInt = 4
    steps_per_epoch: PositiveInt = 100   # an "epoch" is this many fresh batches
    eval_batches: PositiveInt = 50       # fresh validation batches after every epoch
    solved_above: Probability = 0.99     # "solved" = eval accuracy strictly above this
    # baselines: up to this many epochs, stop when solved, report the BEST eval accuracy
    baseline_max_epochs: PositiveInt = 30
    # routed phase 1: lambda = 0 up to this many epochs, stop when solved; if never solved,
    # phase 2 is skipped and the run reports (best phase-1 accuracy, last usage)
    phase1_max_epochs: PositiveInt = 25
    # routed phase 2: lambda_e = lambda_target * e / phase2_epochs for e = 1..phase2_epochs,
    # stop early when eval accuracy < phase2_floor; report the LAST phase-2 epoch
    phase2_epochs: PositiveInt = 20
    phase2_floor: Probability = 0.90
    # "curriculum": phase 1 at lambda 0, phase 2 ramps to lambda_target. "constant" (the T2
    # ablation): the same phases and stop rules, with lambda_target from the first step.
    schedule: Literal["curriculum", "constant"] = "curriculum"
    # a profile's budget cut: at most this many epochs for a baseline or routed phase 1
    # (never phase 2, whose length sets the lambda ramp); None = no cap. Rows record it.
    epoch_cap: EpochCap | None = None
    # numerics (suite/run/devices.py): float32 with TF32 off, as the original ran; anything else is
    # an explicit protocol of its own, so it shows in the protocol's name, hash and every row
    precision: Literal["float32", "tf32", "bf16"] = "float32"

    def batch_size(self, seq_len: int) -> int:
        for max_t, bs in self.batch_sizes:
            if seq_len <= max_t:
                return bs
        return self.batch_size_fallback

    def lambda_at(self, phase: int, epoch: int, lambda_target: float) -> float:
        """Attention cost in `epoch` (1-based) of `phase` (1 or 2)."""
        if self.schedule == "constant":
            return lambda_target
        return 0.0 if phase == 1 else lambda_target * epoch / self.phase2_epochs

    def capped(self, epochs: int) -> int:
        """Epoch budget of a baseline or of routed phase 1 after the profile's cut."""
        return epochs if self.epoch_cap is None else min(epochs, self.epoch_cap)

    def to_dict(self) -> dict:
        """The protocol as data; the default precision is left out, so protocols (and every cell
        hash) from before the field existed are unchanged."""
        out = dataclasses.asdict(self)
        if out["precision"] == "float32":
            del out["precision"]
        return out

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, values: dict) -> "Protocol":
        """From JSON (lists where the dataclass holds tuples); one ConfigError line on bad input."""
        if not isinstance(values, dict):
            raise ConfigError(f"protocol: must be an object, got {values!r}")
        values = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
                  for k, v in values.items()}
        return build(cls, "protocol", **values)


FAITHFUL = Protocol(name="faithful")

PROTOCOLS: dict[str, Protocol] = {
    "faithful": FAITHFUL,
    # the ablation of T2: the attention cost applies from the first step, no curriculum
    "faithful-constant": dataclasses.replace(FAITHFUL, name="faithful-constant", schedule="constant"),
    # plumbing only: the faithful rules with a handful of steps (decides nothing)
    "smoke": dataclasses.replace(FAITHFUL, name="smoke", steps_per_epoch=5, eval_batches=2,
                                 baseline_max_epochs=2, phase1_max_epochs=2, phase2_epochs=2),
}
PROTOCOLS["smoke-constant"] = dataclasses.replace(PROTOCOLS["smoke"], name="smoke-constant", schedule="constant")
# a learnability probe, never a published claim's: the faithful rules with 6x the epoch budget of
# baselines and phase 1 (phase 2, which sets the lambda ramp, unchanged). The faithful 30 epochs
# are too few for the mini tier to learn mqar at all; this asks whether the task can be learned.
PROTOCOLS["long"] = dataclasses.replace(FAITHFUL, name="long", baseline_max_epochs=180, phase1_max_epochs=150)
# the faithful rules in faster numerics on a GPU: explicit, never the default, never a published claim's
PROTOCOLS["faithful-tf32"] = dataclasses.replace(FAITHFUL, name="faithful-tf32", precision="tf32")
PROTOCOLS["faithful-bf16"] = dataclasses.replace(FAITHFUL, name="faithful-bf16", precision="bf16")


def adopt(protocol: Protocol) -> None:
    """In a worker process: know the driver's protocol under its name (one registered at run time,
    as a test or a user's script does, exists only in the driver). A name the worker already holds
    must mean the same rules there."""
    known = PROTOCOLS.setdefault(protocol.name, protocol)
    if known != protocol:
        raise ConfigError(f"protocol: '{protocol.name}' differs between the driver and this worker")


def get_protocol(name) -> Protocol:
    if not isinstance(name, str) or name not in PROTOCOLS:
        raise ConfigError(f"protocol: unknown '{name}'; allowed: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
