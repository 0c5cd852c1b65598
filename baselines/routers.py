"""Routers: per-position hard decisions conv (0) / attention (1), causal in time."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig, ModelConfigError


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
    state = x.new_zeros(B, d)
    outs = []
    for j in range(n):
        outs.append(intra[:, j] + carry_in * state.unsqueeze(1))
        state = outs[-1][:, -1]
    return torch.cat(outs, dim=1)[:, :T]


class GumbelRouter(nn.Module):
    """The original router: MLP on [x_t ; EMA_t(x)] -> logits [conv, attention].

    Training: hard Gumbel-softmax (tau 1), exact 0/1 forward, straight-through gradient.
    Evaluation: argmax of the logits, no noise.
    """

    def __init__(self, cfg: ModelConfig):
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


ROUTERS: dict[str, type[nn.Module]] = {"gumbel": GumbelRouter}


def make_router(cfg: ModelConfig) -> nn.Module:
    if cfg.router not in ROUTERS:
        raise ModelConfigError(f"router: unknown '{cfg.router}'; allowed: {', '.join(sorted(ROUTERS))}")
    return ROUTERS[cfg.router](cfg)
