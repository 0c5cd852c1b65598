"""Documented limits on every input. Values outside them stop before any work (README: bad input).

The sizes are what this suite can train or count without surprising anyone: a sequence of
MAX_SEQ_LEN tokens at the protocol's batch already needs gigabytes, and the memory estimate in
`suite.compute.memory` is checked against the machine before anything is allocated.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

SEED_MAX = 2**31                 # seeds in [0, 2^31)
MAX_SEQ_LEN = 16384              # tokens per sequence (distance and seq_len)
MAX_DISTANCE = MAX_SEQ_LEN - 2
LAMBDA_MAX = 10.0                # attention cost lambda in [0, 10]
TEST_SEQUENCES_MAX = 10**6       # held-out test sequences per cell
MAX_EPOCHS = 10_000
MAX_SEEDS = 32                   # seeds per cell `--until-decided` may reach: what the verdict simulation covers
NAME_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$"   # names and run ids: no path separators, no leading dot

Seed = Annotated[int, Field(ge=0, lt=SEED_MAX)]
Distance = Annotated[int, Field(ge=1, le=MAX_DISTANCE)]
SeqLen = Annotated[int, Field(ge=2, le=MAX_SEQ_LEN)]
Lambda = Annotated[float, Field(ge=0.0, le=LAMBDA_MAX, allow_inf_nan=False)]
TestSequences = Annotated[int, Field(ge=1, le=TEST_SEQUENCES_MAX)]
EpochCap = Annotated[int, Field(ge=1, le=MAX_EPOCHS)]
SeedBudget = Annotated[int, Field(ge=1, le=MAX_SEEDS)]
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=128)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
