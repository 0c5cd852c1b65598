"""Routers: per-position hard decisions conv (0) / attention (1), causal in time.

A router is any `nn.Module` class following the `Router` protocol below. Built-ins are found by
name in ROUTERS; anything else is named by import path, `package.module:Class`, so a user's
router needs no edit here (`resolve_router`).
"""
from __future__ import annotations

import importlib
import inspect
import math
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig, ModelConfigError


@runtime_checkable
class Router(Protocol):
    """The contract every router meets (the suite's causality gate checks the last three).

    - construction: `Class(cfg: ModelConfig, layer_index: int, **router_kwargs)`;
    - `forward(x)`: x (B, T, d) is the block's LayerNorm-normalised input; returns gates (B, T),
      exactly 0 or 1 in the forward pass (1 = attention computes position t);
    - training: a gradient path from the gates to the router's parameters (a straight-through
      estimator, say), or none for a fixed policy;
    - causal: the gate at t depends on x[:, :t+1] only; deterministic in eval mode.
    """

    def __init__(self, cfg: ModelConfig, layer_index: int, **kwargs) -> None: ...

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...


def causal_ema(x: torch.Tensor, decay: float, chunk: int = 64) -> torch.Tensor:
    """c_t = decay * c_{t-1} + (1 - decay) * x_t with c_{-1} = 0, over dim 1 of (B, T, d).

    Exact, not truncated: within chunks of `chunk` steps a lower-triangular decay matrix, across
    chunks a short loop carrying the state (T / chunk iterations instead of T).
    """
    B, T, d = x.shape
    n = math.ceil(T / chunk)
    xp = F.pad(x, (0, 0, 0, n * chunk - T)).view(B, n, chunk, d)
    i = torch.arange(chunk, device=x.device)
    lag = (i.unsqueeze(1) - i.unsqueeze(0)).to(torch.float64)
    w = torch.where(lag >= 0, (1 - decay) * decay ** lag.clamp(min=0), torch.zeros((), dtype=torch.float64))
    # each chunk from a zero state; (.., d, chunk) @ (chunk, chunk) keeps MAC counters exact
    intra = torch.matmul(xp.transpose(2, 3), w.to(x.dtype).t()).transpose(2, 3)
    carry_in = decay ** (i + 1).to(torch.float64)                    # weight of the previous state
    carry_in = carry_in.to(x.dtype).view(1, chunk, 1)
    # the state entering each chunk, by a loop over (B, d) states only; then one broadcast add
    # (a loop of full-chunk adds and a cat cost as much as the matmul at short batches)
    states = [x.new_zeros(B, d)]
    for j in range(n - 1):
        states.append(intra[:, j, -1] + carry_in[0, -1] * states[-1])
    out = intra + carry_in * torch.stack(states, 1).unsqueeze(2)
    return out.reshape(B, n * chunk, d)[:, :T]


class GumbelRouter(nn.Module):
    """The original router: MLP on [x_t ; EMA_t(x)] -> logits [conv, attention].

    Training: hard Gumbel-softmax (tau 1), exact 0/1 forward, straight-through gradient.
    Evaluation: argmax of the logits, no noise.
    """

    def __init__(self, cfg: ModelConfig, layer_index: int = 0):
        super().__init__()
        self.decay = cfg.ema_decay
        d = cfg.d_model
        self.net = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 2))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, causal_ema(x, self.decay)], dim=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.logits(x)
        if self.training:
            return F.gumbel_softmax(logits, tau=1.0, hard=True)[..., 1]
        return (logits.argmax(dim=-1) == 1).to(x.dtype)


class ThresholdRouter(nn.Module):
    """A learned alternative: one sigmoid score per position from the same causal features
    ([x_t ; EMA_t(x)], one hidden layer), attention where the score exceeds 1/2.

    Training: straight-through (forward the hard 0/1, backward the sigmoid's gradient), no noise,
    so the decision is the same in training and evaluation.
    """

    def __init__(self, cfg: ModelConfig, layer_index: int = 0, hidden: int | None = None):
        super().__init__()
        self.decay = cfg.ema_decay
        d = cfg.d_model
        self.net = nn.Sequential(nn.Linear(2 * d, hidden or d), nn.GELU(), nn.Linear(hidden or d, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(self.net(torch.cat([x, causal_ema(x, self.decay)], dim=-1)).squeeze(-1))
        hard = (p > 0.5).to(x.dtype)
        return hard + (p - p.detach()) if self.training else hard  # (p - p) is exactly 0: gates stay 0/1


class FixedRouter(nn.Module):
    """Base of the fixed policies: no parameters and no gradient path; the gates depend on the
    position (and layer) only, never on content."""

    def __init__(self, cfg: ModelConfig, layer_index: int = 0):
        super().__init__()
        self.layer_index = layer_index

    def pattern(self, B: int, T: int, like: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pattern(x.shape[0], x.shape[1], x)


class LastRouter(FixedRouter):
    """Attention at the last position only, in every layer: the recall task's shortcut (its only
    scored position is the last, and the value token is identifiable by its range)."""

    def pattern(self, B, T, like):
        g = like.new_zeros(B, T)
        g[:, T - 1] = 1
        return g


class AlwaysAttnRouter(FixedRouter):
    """Attention everywhere: AttnOnly's decisions inside the routed model (both branches kept)."""

    def pattern(self, B, T, like):
        return like.new_ones(B, T)


class AlwaysConvRouter(FixedRouter):
    """Conv everywhere: ConvOnly's decisions inside the routed model."""

    def pattern(self, B, T, like):
        return like.new_zeros(B, T)


class LayerRouter(FixedRouter):
    """The one-layer hybrid: attention at every position of layer `layer`, conv in the others
    (the "25% usage" pattern of a 4-layer model)."""

    def __init__(self, cfg: ModelConfig, layer_index: int = 0, layer: int = 0):
        super().__init__(cfg, layer_index)
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < cfg.n_layers:
            raise ValueError(f"layer: must be an integer in [0, {cfg.n_layers}), got {layer!r}")
        self.on = layer_index == layer

    def pattern(self, B, T, like):
        return like.new_full((B, T), 1.0 if self.on else 0.0)


class RandomRouter(FixedRouter):
    """Attention with probability p at each position, independently: usage p without any skill.

    Seeded (`seed`, plus the layer index) and fresh per sequence: in training the generator runs
    on, so every step draws anew; in evaluation it restarts at every call, so the same batch gets
    the same decisions (deterministic) while each sequence of a batch gets its own.
    """

    def __init__(self, cfg: ModelConfig, layer_index: int = 0, p: float = 0.5, seed: int = 0):
        super().__init__(cfg, layer_index)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"p: must be a number in [0, 1], got {p!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
            raise ValueError(f"seed: must be an integer in [0, 2^31), got {seed!r}")
        self.p, self.seed = float(p), seed * 1009 + layer_index
        self.train_gen = torch.Generator().manual_seed(self.seed)

    def pattern(self, B, T, like):
        gen = self.train_gen if self.training else torch.Generator().manual_seed(self.seed)
        u = torch.rand(B, T, generator=gen)
        return (u < self.p).to(like.dtype).to(like.device)


ROUTERS: dict[str, type[nn.Module]] = {
    "gumbel": GumbelRouter, "threshold": ThresholdRouter, "last": LastRouter, "random": RandomRouter,
    "layer": LayerRouter, "always_attn": AlwaysAttnRouter, "always_conv": AlwaysConvRouter,
}


def resolve_router(spec: str) -> type[nn.Module]:
    """A built-in name, or `package.module:Class` imported here; one-line ModelConfigError if not."""
    if not isinstance(spec, str):
        raise ModelConfigError(f"router: must be a name or 'package.module:Class', got {spec!r}")
    if spec in ROUTERS:
        return ROUTERS[spec]
    if ":" not in spec:
        raise ModelConfigError(f"router: unknown '{spec}'; allowed: {', '.join(ROUTERS)}, or a plugin "
                               f"as 'package.module:Class'")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ModelConfigError(f"router: cannot import module '{module_name}' of '{spec}' ({e})") from None
    except Exception as e:  # a plugin whose import itself fails: its error, in one line
        raise ModelConfigError(f"router: importing '{module_name}' raised {type(e).__name__}: "
                               f"{_first_line(e)}") from None
    except SystemExit as e:  # sys.exit(0) at import time must not end the run as a success
        raise ModelConfigError(f"router: '{spec}' called {_exit_text(e)} while being imported") from None
    except KeyboardInterrupt:  # perhaps a Ctrl-C: the suite tells (suite.core.plugins)
        raise
    except BaseException as e:  # GeneratorExit, a BaseException of the plugin's own
        raise ModelConfigError(f"router: importing '{module_name}' raised {type(e).__name__}: "
                               f"{_first_line(e)}") from None
    cls = getattr(module, attr, None) if attr else None
    if cls is None:
        raise ModelConfigError(f"router: module '{module_name}' has no attribute '{attr}'")
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise ModelConfigError(f"router: '{spec}' is not an nn.Module class")
    return cls


def router_source(spec: str) -> str | None:
    """The file a plugin router is defined in (None for a built-in): its hash goes into results."""
    if spec in ROUTERS:
        return None
    return inspect.getsourcefile(resolve_router(spec))


def check_router_spec(cfg: ModelConfig) -> None:
    """Import the router and construct it for every layer on the meta device (nothing allocated):
    a bad spec or kwargs the constructor rejects stop here, before any model is built."""
    with torch.device("meta"):
        for layer in range(cfg.n_layers):
            make_router(cfg, layer)


def make_router(cfg: ModelConfig, layer_index: int = 0) -> nn.Module:
    """The router of one layer; whatever its constructor raises (sys.exit included) is one
    ModelConfigError line naming the spec, so a plugin cannot crash or end the run from here."""
    cls = resolve_router(cfg.router)
    try:
        return cls(cfg, layer_index, **cfg.router_kwargs)
    except (TypeError, ValueError) as e:
        raise ModelConfigError(f"router_kwargs: {cfg.router} rejected {cfg.router_kwargs} "
                               f"({_first_line(e)})") from None
    except Exception as e:  # RuntimeError (a negative dimension, say), KeyError, MemoryError...
        raise ModelConfigError(f"router: '{cfg.router}' raised {type(e).__name__} while being constructed "
                               f"for layer {layer_index} with {cfg.router_kwargs}: {_first_line(e)}") from None
    except SystemExit as e:
        raise ModelConfigError(f"router: '{cfg.router}' called {_exit_text(e)} while being constructed "
                               f"for layer {layer_index}") from None
    except KeyboardInterrupt:  # perhaps a Ctrl-C: the suite tells (suite.core.plugins)
        raise
    except BaseException as e:
        raise ModelConfigError(f"router: '{cfg.router}' raised {type(e).__name__} while being constructed "
                               f"for layer {layer_index} with {cfg.router_kwargs}: {_first_line(e)}") from None


def _first_line(err: BaseException, limit: int = 300) -> str:
    text = " ".join(str(err).strip().splitlines()[0].split()) if str(err).strip() else "(no message)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _exit_text(err: SystemExit) -> str:
    return f"sys.exit({err.code!r})" if err.code is not None else "sys.exit()"
