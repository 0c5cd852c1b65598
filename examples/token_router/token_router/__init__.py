"""An example router plugin for routed-attention-bench, kept outside the suite on purpose.

`TokenRouter` decides from each position's own state only (no moving average of the past): a
small MLP gives one score per position, and attention is used where its sigmoid exceeds 1/2.
Training passes the gradient straight through the hard 0/1 decision. It is causal by
construction (position t looks at x_t only) and has no noise, so evaluation is deterministic.

Use it with:  python -m suite regress --router token_router:TokenRouter --router-kwargs '{"hidden": 16}'
"""
import torch
from torch import nn


class TokenRouter(nn.Module):
    """Attention where a per-token score says so; `hidden` sets the size of its MLP."""

    def __init__(self, cfg, layer_index: int, hidden: int = 16):
        super().__init__()
        if not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden: must be a positive integer, got {hidden!r}")
        self.score = nn.Sequential(nn.Linear(cfg.d_model, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(self.score(x).squeeze(-1))          # (B, T)
        hard = (p > 0.5).to(x.dtype)
        # forward: exactly 0/1; backward: the sigmoid's gradient ((p - p) is exactly 0)
        return hard + (p - p.detach()) if self.training else hard
