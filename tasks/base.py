"""The task contract: a seeded, vectorised generator of scored batches."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, ClassVar

import pydantic
import torch
from pydantic import Field

SPLITS = ("train", "validation", "test")

#: a target equal to IGNORE means "this row does not score this position". It is torch's
#: `F.cross_entropy` default `ignore_index`, so the training loss already skips these targets;
#: accuracy counts only targets != IGNORE (an argmax is never negative, so it never matches one).
IGNORE = -100


class TaskConfigError(ValueError):
    """An unknown task or split; the message is one line naming it. Bad parameters of a known
    task raise pydantic's ValidationError (the suite prints it as one line)."""


#: strict types (no 2.5 or True for an integer), unknown keys refused, frozen
STRICT = pydantic.ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
task_dataclass = pydantic.dataclasses.dataclass(frozen=True, config=STRICT)


@dataclass(frozen=True)
class Batch:
    """Input ids, the scored positions (shared by every row) and the targets there.

    Every task here has a fixed layout, so `positions` is one index vector for the whole batch:
    it holds every position scored in at least one row (a task may list a fixed superset, e.g.
    mqar's whole query window). That lets a model compute its head only there. A row that does
    not score one of these positions has the target IGNORE there; tasks whose rows all score the
    same positions have no IGNORE targets.
    """

    inputs: torch.Tensor     # (B, T) int64
    positions: torch.Tensor  # (P,) int64, sorted, every position scored in at least one row
    targets: torch.Tensor    # (B, P) int64, the token expected at each position, IGNORE where not scored

    @property
    def mask(self) -> torch.Tensor:
        """(B, T) bool, True at (row, position) where that row scores that position."""
        m = torch.zeros_like(self.inputs, dtype=torch.bool)
        m[:, self.positions] = self.targets != IGNORE
        return m

    def to(self, device) -> "Batch":
        return Batch(self.inputs.to(device), self.positions.to(device), self.targets.to(device))


def split_seed(seed: int, split: str) -> int:
    """Seed of one data stream; injective in (seed, split), so splits never share a stream."""
    if split not in SPLITS:
        raise TaskConfigError(f"split: unknown '{split}'; allowed: {', '.join(SPLITS)}")
    return 3 * int(seed) + SPLITS.index(split) + 1


@task_dataclass
class Task:
    """Base of every task. Subclasses are frozen, validated dataclasses whose fields are their
    parameters (`task_dataclass`); cross-field rules raise ValueError in __post_init__."""

    name: ClassVar[str]
    vocab_size: ClassVar[int] = 256

    distance: Annotated[int, Field(ge=1)]

    @property
    def seq_len(self) -> int:
        raise NotImplementedError

    @property
    def chance(self) -> float:
        """Accuracy of a guess uniform over the tokens that can be a target."""
        raise NotImplementedError

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        raise NotImplementedError

    def params(self) -> dict:
        return dataclasses.asdict(self)

    def generator(self, split: str, seed: int) -> torch.Generator:
        """The seeded CPU generator of one split's stream: `sample(batch_size, it)` repeatedly is the
        stream. A caller that owns it can save and restore its state (`get_state`/`set_state`)."""
        return torch.Generator(device="cpu").manual_seed(split_seed(seed, split))

    def stream(self, split: str, seed: int, batch_size: int, device="cpu") -> "BatchStream":
        """Endless fresh batches of one split. Generated on the CPU so every device sees the same data."""
        if batch_size < 1:
            raise TaskConfigError(f"batch_size: must be >= 1, got {batch_size}")
        return BatchStream(self, split, seed, batch_size, device)

    def fixed_set(self, split: str, seed: int, n: int, batch_size: int) -> list[Batch]:
        """The first n sequences of a split's stream, batched (a held-out set of a fixed size)."""
        if n < 1:
            raise TaskConfigError(f"n: must be >= 1, got {n}")
        gen = self.generator(split, seed)
        out, left = [], n
        while left > 0:
            b = min(batch_size, left)
            out.append(self.sample(b, gen))
            left -= b
        return out


def uniform(low: int, high: int, shape, generator: torch.Generator) -> torch.Tensor:
    """Integers uniform in [low, high)."""
    return torch.randint(low, high, shape, generator=generator, dtype=torch.long)


class BatchStream:
    """A split's endless batches from a generator this object owns, so a training run can save its
    position and resume from it (`state`, `load_state`)."""

    def __init__(self, task: Task, split: str, seed: int, batch_size: int, device="cpu"):
        self.task, self.split, self.batch_size, self.device = task, split, batch_size, device
        self.generator = task.generator(split, seed)
        self.drawn = 0  # batches drawn so far

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        self.drawn += 1
        return self.task.sample(self.batch_size, self.generator).to(self.device)

    def state(self) -> dict:
        return {"generator": self.generator.get_state(), "drawn": self.drawn}

    def load_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.drawn = int(state["drawn"])
