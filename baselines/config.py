"""Model configuration: defaults are the original script's. Validated on construction (strict
types, bounds below); bad values raise pydantic's ValidationError naming the field."""
from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any

import pydantic
from pydantic import Field

#: largest sizes accepted (README: bad input); far above anything the suite trains
MAX_WIDTH = 8192
MAX_LAYERS = 64
MAX_KERNEL = 4096
MAX_VOCAB = 1 << 20
#: router_kwargs: nesting depth and JSON size accepted (a router's settings, not a data set)
MAX_KWARGS_DEPTH = 32
MAX_KWARGS_BYTES = 64 * 1024


def json_depth(value) -> int:
    """Nesting depth of JSON-like data (a scalar 0, {} 1), level by level: no recursion, so any
    depth is measured, never a RecursionError."""
    depth, level = 0, [value]
    while True:
        containers = [x for x in level if isinstance(x, (dict, list, tuple))]
        if not containers:
            return depth
        depth += 1
        level = [v for x in containers for v in (x.values() if isinstance(x, dict) else x)]


class ModelConfigError(ValueError):
    """An unknown model, router or config key; the message is one line naming it."""



@pydantic.dataclasses.dataclass(frozen=True, config=pydantic.ConfigDict(extra="forbid", strict=True,
                                                                          allow_inf_nan=False))
class ModelConfig:
    vocab_size: Annotated[int, Field(ge=1, le=MAX_VOCAB)] = 256
    d_model: Annotated[int, Field(ge=1, le=MAX_WIDTH)] = 128
    n_layers: Annotated[int, Field(ge=1, le=MAX_LAYERS)] = 4
    n_heads: Annotated[int, Field(ge=1, le=MAX_WIDTH)] = 4
    kernel_size: Annotated[int, Field(ge=1, le=MAX_KERNEL)] = 64
    ffn_mult: Annotated[int, Field(ge=1, le=64)] = 4
    ema_decay: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9   # the router's causal moving average
    router: str = "gumbel"   # a name in baselines.routers.ROUTERS, or a plugin 'package.module:Class'
    router_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)  # JSON values, to the router

    def __post_init__(self):
        depth = json_depth(self.router_kwargs)
        if depth > MAX_KWARGS_DEPTH:
            raise ValueError(f"router_kwargs: nested {depth} levels deep; at most {MAX_KWARGS_DEPTH} are accepted")
        try:
            size = len(json.dumps(self.router_kwargs, allow_nan=False))
        except (TypeError, ValueError):
            raise ValueError(f"router_kwargs: must be a JSON object of finite values, got {self.router_kwargs!r}") \
                from None
        if size > MAX_KWARGS_BYTES:
            raise ValueError(f"router_kwargs: {size} bytes of JSON; at most {MAX_KWARGS_BYTES // 1024} KiB are "
                             f"accepted (a router's settings, not data)")
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads: must divide d_model ({self.d_model}), got {self.n_heads}")

    def __hash__(self):  # router_kwargs is a dict: hash the canonical JSON of every field
        return hash(json.dumps(dataclasses.asdict(self), sort_keys=True))

    def identity(self) -> dict:
        """The fields that define the model, for hashes: router_kwargs only when given, so the
        hashes of cells stored before routers took kwargs do not move."""
        out = dataclasses.asdict(self)
        if not out["router_kwargs"]:
            del out["router_kwargs"]
        return out

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        if not isinstance(values, dict):
            raise ModelConfigError(f"model: must be an object of model parameters, got {values!r}")
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ModelConfigError(
                f"{unknown[0]}: not a model parameter; allowed: {', '.join(sorted(allowed))}")
        return cls(**values)
