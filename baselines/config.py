"""Model configuration: defaults are the original script's."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


class ModelConfigError(ValueError):
    """A model parameter is unknown or impossible; the message is one line naming it."""


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    kernel_size: int = 64
    ffn_mult: int = 4
    ema_decay: float = 0.9   # the router's causal moving average
    router: str = "gumbel"   # name in baselines.routers.ROUTERS

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "kernel_size", "ffn_mult"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ModelConfigError(f"{name}: must be a positive integer, got {v!r}")
        if self.d_model % self.n_heads:
            raise ModelConfigError(
                f"n_heads: must divide d_model ({self.d_model}), got {self.n_heads}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ModelConfigError(f"ema_decay: must be in [0, 1), got {self.ema_decay}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ModelConfigError(
                f"{unknown[0]}: not a model parameter; allowed: {', '.join(sorted(allowed))}")
        return cls(**values)
