"""The original's three models: one pre-LN transformer, three choices of mixer.

No positional encoding of any kind. Every mixer returns its output and a per-position gate
(1 = attention computed the output, 0 = conv did), so usage is measured the same way for all.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import ModelConfig, ModelConfigError
from .mixers import CausalConv, CausalSelfAttention
from .routers import make_router


@dataclass
class Output:
    logits: torch.Tensor       # (B, T, V), or (B, P, V) at the requested positions
    gates: tuple               # per layer (B, T): 1 where attention was used


class AttentionMixer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn = CausalSelfAttention(cfg)

    def forward(self, x, positions=None):
        return self.attn(x, positions), x.new_ones(x.shape[:2])


class ConvMixer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.conv = CausalConv(cfg)

    def forward(self, x, positions=None):
        return self.conv(x, positions), x.new_zeros(x.shape[:2])


class RoutedMixer(nn.Module):
    """Both branches computed densely (as in the original), mixed by the router's hard gate."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.conv = CausalConv(cfg)
        self.attn = CausalSelfAttention(cfg)
        self.router = make_router(cfg)

    def forward(self, x, positions=None):
        gate = self.router(x)                                   # (B, T), decided everywhere
        g = (gate if positions is None else gate[:, positions]).unsqueeze(-1)
        return (1 - g) * self.conv(x, positions) + g * self.attn(x, positions), gate


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, mixer: nn.Module):
        super().__init__()
        d = cfg.d_model
        self.norm1 = nn.LayerNorm(d)
        self.mixer = mixer
        self.norm2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, cfg.ffn_mult * d), nn.GELU(), nn.Linear(cfg.ffn_mult * d, d))

    def forward(self, x, positions=None):
        y, gate = self.mixer(self.norm1(x), positions)
        if positions is not None:
            x = x[:, positions]
        x = x + y
        return x + self.ffn(self.norm2(x)), gate


class MixerLM(nn.Module):
    """Embedding -> n pre-LN blocks -> final LN -> untied linear head."""

    mixer_cls: type[nn.Module]

    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        self.config = cfg = cfg or ModelConfig()
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, self.mixer_cls(cfg)) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)

    def forward(self, ids: torch.Tensor, positions: torch.Tensor | None = None) -> Output:
        """Logits everywhere, or only at `positions` (then the last block's FFN and the head run
        only there: the same function at those positions, less work)."""
        x = self.embedding(ids)
        gates = []
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x, gate = block(x, positions if i == last else None)
            gates.append(gate)
        return Output(self.head(self.norm(x)), tuple(gates))


class AttnOnly(MixerLM):
    mixer_cls = AttentionMixer


class ConvOnly(MixerLM):
    mixer_cls = ConvMixer


class Routed(MixerLM):
    mixer_cls = RoutedMixer


MODELS: dict[str, type[MixerLM]] = {"attn": AttnOnly, "conv": ConvOnly, "routed": Routed}


def build_model(name: str, cfg: ModelConfig | None = None) -> MixerLM:
    if name not in MODELS:
        raise ModelConfigError(f"model: unknown '{name}'; allowed: {', '.join(MODELS)}")
    return MODELS[name](cfg)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
