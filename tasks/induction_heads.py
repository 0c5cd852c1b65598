"""Induction heads: find the earlier occurrence of a trigger and copy the token after it."""
from __future__ import annotations

from typing import Annotated, ClassVar

import torch
from pydantic import Field

from .base import Batch, Task, task_dataclass, uniform

TRIGGER = 2
SYMBOLS = (10, 256)


@task_dataclass
class InductionHeads(Task):
    """Random tokens with one (trigger, target) pair; the trigger returns at the end.

    Layout (D = distance, T = seq_len >= D + 2, default D + 2), vocabulary 256:
      every position   a symbol ~ U[10, 256), i.i.d. (246 symbols; the trigger never appears)
      index T-2-D      trigger (id 2)
      index T-1-D      target ~ U[10, 256)
      index T-1        trigger again (the query)
    Scored: the last position only; target = the token after the first trigger, exactly D
    positions earlier. Unlike assoc_recall, the target shares its range with the filler, so it
    must be found by matching the trigger, not by its value range. The pair's position is fixed
    for a given (D, T), so a positional solution remains possible.
    Chance: 1/246.
    """

    name: ClassVar[str] = "induction_heads"
    seq_len_: Annotated[int, Field(ge=3)] | None = None

    def __post_init__(self):
        if self.seq_len_ is not None:
            if self.seq_len_ < self.distance + 2:
                raise ValueError(
                    f"distance: induction_heads needs distance <= seq_len - 2 "
                    f"({self.seq_len_ - 2}), got {self.distance}")

    @property
    def seq_len(self) -> int:
        return self.seq_len_ if self.seq_len_ is not None else self.distance + 2

    @property
    def chance(self) -> float:
        return 1.0 / (SYMBOLS[1] - SYMBOLS[0])

    def params(self) -> dict:
        return {"distance": self.distance, "seq_len": self.seq_len}

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        T, D = self.seq_len, self.distance
        ids = uniform(*SYMBOLS, (batch_size, T), generator)
        ids[:, T - 2 - D] = TRIGGER
        ids[:, T - 1] = TRIGGER
        return Batch(ids, torch.tensor([T - 1]), ids[:, T - 1 - D].clone().unsqueeze(1))
