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


def usage_of(gates) -> torch.Tensor:
    """Mean over layers of each layer's mean gate over batch x time: the original's attention usage
    (the quantity its cost term multiplies by lambda)."""
    return torch.stack([g.mean() for g in gates]).mean()


class AttentionMixer(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_index: int = 0):
        super().__init__()
        self.attn = CausalSelfAttention(cfg)

    def forward(self, x, positions=None):
        return self.attn(x, positions), x.new_ones(x.shape[:2])


class ConvMixer(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_index: int = 0):
        super().__init__()
        self.conv = CausalConv(cfg)

    def forward(self, x, positions=None):
        return self.conv(x, positions), x.new_zeros(x.shape[:2])


EXECUTIONS = ("dense", "sparse")


class RoutedMixer(nn.Module):
    """Conv or attention per position, by the router's hard gate.

    execution "dense" (the original, and always in training): both branches at every position,
    mixed by the gate, so nothing is saved. "sparse" (evaluation only): each branch only where
    the gate sends a position, so skipped work is really skipped.
    """

    def __init__(self, cfg: ModelConfig, layer_index: int = 0):
        super().__init__()
        self.conv = CausalConv(cfg)
        self.attn = CausalSelfAttention(cfg)
        self.router = make_router(cfg, layer_index)
        self.execution = "dense"
        self.forced_gate = None  # (B, T) 0/1: overrides the decision (FLOP and equivalence checks)

    def forward(self, x, positions=None):
        gate = self.router(x)                                   # (B, T), decided everywhere
        if self.forced_gate is not None:
            # keeps the router in the graph (it still runs and is still counted)
            gate = gate * 0 + self.forced_gate.to(gate)
        if self.execution == "sparse" and not self.training:
            return self._sparse(x, gate, positions), gate
        g = (gate if positions is None else gate[:, positions]).unsqueeze(-1)
        return (1 - g) * self.conv(x, positions) + g * self.attn(x, positions), gate

    def _sparse(self, x, gate, positions):
        B, T, d = x.shape
        out_pos = torch.arange(T, device=x.device) if positions is None else positions
        use_attn = gate[:, out_pos] > 0.5                       # (B, P)
        y = x.new_empty(B, out_pos.numel(), d)                  # every row is written below
        conv_b, conv_p = (~use_attn).nonzero(as_tuple=True)
        if conv_b.numel():
            mixed = self.conv(x, project=False)
            y[conv_b, conv_p] = self.conv.out(mixed[conv_b, out_pos[conv_p]])
        attn_b, attn_p = use_attn.nonzero(as_tuple=True)
        if attn_b.numel():
            # sequences with at least one attention row; their rows padded to a common count
            seqs, counts = torch.unique_consecutive(attn_b, return_counts=True)
            slot = torch.arange(attn_b.numel(), device=x.device) - torch.repeat_interleave(
                torch.cumsum(counts, 0) - counts, counts)
            which = torch.repeat_interleave(torch.arange(seqs.numel(), device=x.device), counts)
            qpos = torch.full((seqs.numel(), int(counts.max())), -1, dtype=torch.long, device=x.device)
            qpos[which, slot] = out_pos[attn_p]
            # every sequence has a routed row (the usual case in a batch): no copy of the states
            out = self.attn(x if seqs.numel() == B else x[seqs], qpos=qpos)
            y[attn_b, attn_p] = out[which, slot]
        return y


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
        self.blocks = nn.ModuleList(Block(cfg, self.mixer_cls(cfg, i)) for i in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)

    def force_gates(self, gates) -> None:
        """Force every routed layer's decisions while its router still runs (FLOP checks, decision
        swaps): one (B, T) 0/1 tensor for every layer, a sequence of one per layer, or None to let
        the routers decide again."""
        mixers = [b.mixer for b in self.blocks if isinstance(b.mixer, RoutedMixer)]
        if not mixers:
            raise ValueError(f"force_gates: {type(self).__name__} has no router")
        per_layer = [gates] * len(mixers) if gates is None or isinstance(gates, torch.Tensor) else list(gates)
        if len(per_layer) != len(mixers):
            raise ValueError(f"force_gates: {len(per_layer)} gates for {len(mixers)} routed layers")
        for mixer, g in zip(mixers, per_layer):
            mixer.forced_gate = g

    def set_execution(self, execution: str) -> "MixerLM":
        """'dense' (the original) or 'sparse' (routed layers skip what their gates skip, in eval)."""
        if execution not in EXECUTIONS:
            raise ModelConfigError(f"execution: unknown '{execution}'; allowed: {', '.join(EXECUTIONS)}")
        for m in self.modules():
            if isinstance(m, RoutedMixer):
                m.execution = execution
        return self

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
