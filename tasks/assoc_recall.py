"""The original single-pair associative recall task (`generate_recall_batch`), exactly."""
from __future__ import annotations

from typing import Annotated, ClassVar

import torch
from pydantic import Field

from .base import Batch, Task, task_dataclass, uniform

KEYS = (10, 110)
VALUES = (110, 210)
NOISE = (210, 256)


@task_dataclass
class AssocRecall(Task):
    """Single key-value pair at the start, its key again at the end; predict the value.

    Layout (T = seq_len = distance + 2), vocabulary 256 (ids 0-9 unused):
      index 0      key   k ~ U[10, 110)
      index 1      value v ~ U[110, 210)
      2 .. T-2     noise   ~ U[210, 256), i.i.d. (46 symbols)
      index T-1    k again (the query)
    Scored: the last position only; target v. Chance: 1/100 (a guess over the value range).
    Known shortcut: v is the only token of the value range and always sits at index 1, so no
    key matching is needed.
    """

    name: ClassVar[str] = "assoc_recall"
    distance: Annotated[int, Field(ge=2)]   # seq_len = distance + 2 >= 4
    seq_len_: Annotated[int, Field(ge=4)] | None = None  # optional; if given it must equal distance + 2

    def __post_init__(self):
        if self.seq_len_ is not None:
            if self.seq_len_ != self.distance + 2:
                raise ValueError(
                    f"distance: assoc_recall needs distance = seq_len - 2 "
                    f"(seq_len {self.seq_len_} -> distance {self.seq_len_ - 2}), got {self.distance}")

    @property
    def seq_len(self) -> int:
        return self.distance + 2

    @property
    def chance(self) -> float:
        return 1.0 / (VALUES[1] - VALUES[0])

    def params(self) -> dict:
        return {"distance": self.distance}

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        T = self.seq_len
        key = uniform(*KEYS, (batch_size,), generator)
        value = uniform(*VALUES, (batch_size,), generator)
        ids = uniform(*NOISE, (batch_size, T), generator)
        ids[:, 0] = key
        ids[:, 1] = value
        ids[:, T - 1] = key
        return Batch(ids, torch.tensor([T - 1]), value.unsqueeze(1))
