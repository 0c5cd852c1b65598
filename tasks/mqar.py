"""Multi-query associative recall (after Zoology's MQAR): several key-value pairs, some keys asked again."""
from __future__ import annotations

from typing import Annotated, ClassVar

import torch
from pydantic import Field

from .base import IGNORE, Batch, Task, task_dataclass, uniform

SYMBOLS = (10, 210)   # keys and values, one shared range
NOISE = (210, 256)
#: the suite's bound on tokens per sequence (suite.schema.bounds.MAX_SEQ_LEN; tasks do not import the suite)
MAX_SEQ_LEN = 16384


def random_subsets(rows: int, n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """(rows, k) int64: per row, k distinct integers of [0, n) in random order (the first k of a
    random permutation of [0, n))."""
    return torch.rand(rows, n, generator=generator).argsort(dim=1, stable=True)[:, :k]


@task_dataclass
class MQAR(Task):
    """n_pairs key-value pairs in random slots, then n_queries of the keys again; predict each value.

    Layout (n = n_pairs, q = n_queries, W = 8n, S = 4n slots, T = seq_len = 2W + distance - 1),
    vocabulary 256 (ids 0-9 unused):
      keys, values      2n distinct symbols ~ U[10, 210) without replacement, per sequence (keys
                        and values share the range)
      0 .. W-1          pair window: pair i sits in slot s_i (n distinct slots, uniform among the
                        S slots of width 2): key at 2 s_i, value at 2 s_i + 1
      T-W .. T-1        query window: q distinct random positions, each holding the key of a
                        distinct pair (a random subset of the pairs, in random order)
      everywhere else   noise ~ U[210, 256), i.i.d. (46 symbols)
    Scored: positions T-W .. T-1 (the whole query window, the same for every batch); a row scores
    only its q query positions, target = the value of the pair whose key sits there, and has
    IGNORE at the other W - q. The gap from a value to its query is between `distance` (the
    minimum: last slot's value at W-1, first query position W + distance - 1) and
    distance + 2W - 3.
    Chance: 1/n, a guess uniform over the sequence's n values (the tokens that can be the answer;
    slot alignment tells values from keys).
    Unlike assoc_recall (the value is the only token of its range and always at index 1), neither
    a fixed position nor a token range gives the answer away: the queried value sits in a uniformly
    random slot, so any one position holds it with probability 1/S = 1/(4n), and its range also
    holds the other 2n - 1 keys and values of the sequence, so the key must be matched.
    """

    name: ClassVar[str] = "mqar"
    n_pairs: Annotated[int, Field(ge=1, le=50)] = 4
    n_queries: Annotated[int, Field(ge=1)] = 2

    def __post_init__(self):
        if self.n_queries > self.n_pairs:
            raise ValueError(
                f"n_queries: mqar needs n_queries <= n_pairs ({self.n_pairs}), got {self.n_queries}")
        if self.seq_len > MAX_SEQ_LEN:
            raise ValueError(
                f"distance: mqar needs seq_len = 16 * n_pairs + distance - 1 <= {MAX_SEQ_LEN} "
                f"(distance <= {MAX_SEQ_LEN + 1 - 2 * self.window} for n_pairs {self.n_pairs}), "
                f"got {self.distance}")

    @property
    def window(self) -> int:
        """W: the length of the pair window and of the query window."""
        return 8 * self.n_pairs

    @property
    def seq_len(self) -> int:
        return 2 * self.window + self.distance - 1

    @property
    def chance(self) -> float:
        return 1.0 / self.n_pairs

    def params(self) -> dict:
        return {"distance": self.distance, "n_pairs": self.n_pairs, "n_queries": self.n_queries}

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        n, q, W, T = self.n_pairs, self.n_queries, self.window, self.seq_len
        rows = torch.arange(batch_size).unsqueeze(1)
        symbols = random_subsets(batch_size, SYMBOLS[1] - SYMBOLS[0], 2 * n, generator) + SYMBOLS[0]
        keys, values = symbols[:, :n], symbols[:, n:]
        slots = random_subsets(batch_size, W // 2, n, generator)   # (B, n) distinct slots
        at = random_subsets(batch_size, W, q, generator)           # (B, q) query offsets in the window
        asked = random_subsets(batch_size, n, q, generator)        # (B, q) distinct pairs, random order
        ids = uniform(*NOISE, (batch_size, T), generator)
        ids[rows, 2 * slots] = keys
        ids[rows, 2 * slots + 1] = values
        ids[rows, T - W + at] = keys.gather(1, asked)
        targets = torch.full((batch_size, W), IGNORE, dtype=torch.long)
        targets[rows, at] = values.gather(1, asked)
        return Batch(ids, torch.arange(T - W, T), targets)
