"""Copy: reproduce a random segment after a separator, each token exactly `distance` later."""
from __future__ import annotations

from typing import Annotated, ClassVar

import torch
from pydantic import Field

from .base import Batch, Task, task_dataclass, uniform

SEPARATOR = 1
SYMBOLS = (10, 210)
FILLER = (210, 256)


@task_dataclass
class Copy(Task):
    """A segment s_0..s_{L-1}, filler, a separator, then the segment again (teacher-forced).

    Layout (D = distance, L = segment_len, T = seq_len = D + L), vocabulary 256:
      0 .. L-1           segment s_i ~ U[10, 210), i.i.d.
      L .. D-1           filler ~ U[210, 256), i.i.d. (absent when D = L)
      D                  separator (id 1)
      D+1 .. D+L-1       s_0 .. s_{L-2} (the reproduction so far, as next-token input)
    Scored: positions D .. D+L-1, where position D+i must predict s_i. Every scored token is
    exactly D positions after the copy it reproduces. Accuracy is per scored token.
    Chance: 1/200 (a guess over the segment symbols).
    """

    name: ClassVar[str] = "copy"
    segment_len: Annotated[int, Field(ge=1)] = 8

    def __post_init__(self):
        if self.distance < self.segment_len:
            raise ValueError(
                f"distance: copy needs distance >= segment_len ({self.segment_len}), got {self.distance}")

    @property
    def seq_len(self) -> int:
        return self.distance + self.segment_len

    @property
    def chance(self) -> float:
        return 1.0 / (SYMBOLS[1] - SYMBOLS[0])

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        D, L = self.distance, self.segment_len
        seg = uniform(*SYMBOLS, (batch_size, L), generator)
        ids = uniform(*FILLER, (batch_size, D + L), generator)
        ids[:, :L] = seg
        ids[:, D] = SEPARATOR
        ids[:, D + 1:] = seg[:, :L - 1]
        return Batch(ids, torch.arange(D, D + L), seg)
