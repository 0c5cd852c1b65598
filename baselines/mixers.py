"""The two token mixers of the original: a softmax-kernel causal conv and causal attention.

Each mixer maps LN-normalised states (B, T, d) to (B, T, d), or to (B, P, d) when given the
positions whose output is needed (the rest of the sequence still feeds keys and conv taps).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .depthwise import causal_depthwise_conv1d


class CausalConv(nn.Module):
    """Value projection -> causal depthwise conv -> output projection ("cheap" branch).

    Each head owns `kernel_size` logits (zero at init); its kernel is their softmax, shared by
    the head's channels. Tap j weighs position t - (kernel_size - 1 - j): left zero padding only.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.kernel_size = cfg.n_heads, cfg.kernel_size
        self.v_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.kernel_logits = nn.Parameter(torch.zeros(cfg.n_heads, cfg.kernel_size))

    def kernel(self) -> torch.Tensor:
        """(d, 1, k) depthwise weights: one softmax kernel per head, repeated over its channels."""
        d = self.v_proj.out_features
        k = F.softmax(self.kernel_logits, dim=-1)
        return k.repeat_interleave(d // self.n_heads, dim=0).unsqueeze(1)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None,
                project: bool = True) -> torch.Tensor:
        """project=False stops before the output projection (the caller projects chosen rows)."""
        v = self.v_proj(x).transpose(1, 2)                      # (B, d, T)
        y = causal_depthwise_conv1d(v, self.kernel()).transpose(1, 2)
        if positions is not None:
            y = y[:, positions]
        return self.out(y) if project else y


class CausalSelfAttention(nn.Module):
    """Fused QKV, causal softmax attention per head, output projection ("expensive" branch)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None,
                qpos: torch.Tensor | None = None) -> torch.Tensor:
        """Output at every position, at `positions` (shared by the batch), or at gathered rows
        `qpos` (B, R), one set per sequence (see _rows)."""
        if qpos is not None:
            return self._rows(x, qpos)
        B, T, d = x.shape
        H = self.n_heads
        if positions is None:
            q, k, v = self.qkv(x).view(B, T, 3, H, d // H).permute(2, 0, 3, 1, 4)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            # Queries only where output is needed; keys and values for every position.
            w, b = self.qkv.weight, self.qkv.bias
            P = positions.numel()
            q = F.linear(x[:, positions], w[:d], b[:d]).view(B, P, H, d // H).transpose(1, 2)
            k, v = F.linear(x, w[d:], b[d:]).view(B, T, 2, H, d // H).permute(2, 0, 3, 1, 4)
            # Gathered rows: query at position p sees keys 0..p (not a top-left causal mask).
            allowed = positions.unsqueeze(1) >= torch.arange(T, device=x.device).unsqueeze(0)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.out(y.transpose(1, 2).reshape(B, -1, d))

    def _rows(self, x: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
        """Output at gathered query rows only: qpos (B, R) holds each row's position, -1 = padding.

        Keys and values are projected for every position of these sequences (a routed query may
        look at any earlier key); queries and the output projection only for the R rows. The
        causal mask is built from the gathered positions (not is_causal, which would align the
        mask to the top-left corner). Padded rows are computed against key 0 and must be dropped.
        """
        B, T, d = x.shape
        H, R = self.n_heads, qpos.shape[1]
        w, b = self.qkv.weight, self.qkv.bias
        valid = qpos >= 0
        rows = torch.gather(x, 1, qpos.clamp(min=0).unsqueeze(-1).expand(B, R, d))
        q = F.linear(rows, w[:d], b[:d]).view(B, R, H, d // H).transpose(1, 2)
        k, v = F.linear(x, w[d:], b[d:]).view(B, T, 2, H, d // H).permute(2, 0, 3, 1, 4)
        keys = torch.arange(T, device=x.device)
        allowed = (keys.view(1, 1, T) <= qpos.unsqueeze(-1)) | (~valid.unsqueeze(-1) & (keys == 0).view(1, 1, T))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed.unsqueeze(1))
        return self.out(y.transpose(1, 2).reshape(B, R, d))
