"""Closed-form forward MACs (1 MAC = one multiply-accumulate) per sequence, by part.

Conventions (shared/spec/compute-accounting.md): one sequence of T positions, logits at every
position; LayerNorm, GELU, softmax, the gate mix and other elementwise work are not counted;
biases are not counted. Readings of the attention core (query-key scores + weighted values):
  dense     every scored query against every key it is handed (T x T for causal attention)
  causal    only the pairs the causal mask keeps (query i sees i + 1 keys)
  executed  what our kernels run: the causal SDPA kernel skips the masked triangle (counted
            causal); gathered query rows are scored against all T keys and then masked (counted
            dense rows)
"""
from __future__ import annotations

import math
from collections import Counter

from baselines import ModelConfig

PARTS = ("attention_proj", "attention_core", "conv_proj", "conv", "router", "ffn", "head")
READINGS = ("dense", "causal", "executed")
EMA_CHUNK = 64  # baselines.routers.causal_ema's chunk


def _pairs_causal(T: int, reading: str) -> int:
    return T * T if reading == "dense" else T * (T + 1) // 2


def attention_layer(cfg: ModelConfig, T: int, reading: str) -> Counter:
    d = cfg.d_model
    return Counter(attention_proj=4 * T * d * d, attention_core=2 * d * _pairs_causal(T, reading))


def conv_layer(cfg: ModelConfig, T: int) -> Counter:
    d = cfg.d_model
    return Counter(conv_proj=2 * T * d * d, conv=T * d * cfg.kernel_size)


def router(cfg: ModelConfig, T: int) -> Counter:
    """MLP Linear(2d, d) -> Linear(d, 2) at every position, plus the chunked moving average
    (a chunk x chunk matrix per chunk, the last chunk padded)."""
    d = cfg.d_model
    ema = math.ceil(T / EMA_CHUNK) * EMA_CHUNK * EMA_CHUNK * d
    return Counter(router=T * (2 * d * d + 2 * d) + ema)


def sparse_routed_layer(cfg: ModelConfig, T: int, routed: list[int], reading: str) -> Counter:
    """A routed layer that really skips: `routed` are the positions sent to attention.

    Attention (if any position is routed): K and V for all T positions, Q and the output
    projection for the routed rows only. Conv (if any position is not routed): value projection
    and the depthwise conv at all T positions (the taps reach 63 back), output projection only
    for the conv rows. The router always runs.
    """
    return sparse_routed_layer_counts(cfg, T, len(routed), sum(i + 1 for i in routed), reading)


def sparse_routed_layer_counts(cfg: ModelConfig, T: int, r: int, causal_pairs: int, reading: str) -> Counter:
    """The same from the routed count r and the causal pairs sum(i + 1) over routed positions i."""
    d = cfg.d_model
    c = router(cfg, T)
    if r:
        pairs = r * T if reading in ("dense", "executed") else causal_pairs
        c += Counter(attention_proj=2 * T * d * d + 2 * r * d * d, attention_core=2 * d * pairs)
    if r < T:
        c += Counter(conv_proj=T * d * d + (T - r) * d * d, conv=T * d * cfg.kernel_size)
    return c


def ffn(cfg: ModelConfig, T: int) -> Counter:
    return Counter(ffn=2 * T * cfg.d_model * cfg.ffn_mult * cfg.d_model)


def head(cfg: ModelConfig, T: int) -> Counter:
    return Counter(head=T * cfg.d_model * cfg.vocab_size)


def model_macs(model: str, cfg: ModelConfig, T: int, reading: str = "executed", execution: str = "dense",
               routed: list[list[int]] | None = None, routed_counts: list[tuple] | None = None) -> dict:
    """Forward MACs of one sequence by part, plus 'total'.

    model 'routed' with execution 'dense' is the original (both branches everywhere, gates
    irrelevant); with execution 'sparse', `routed` gives each layer's attention positions, or
    `routed_counts` each layer's (routed count, causal pairs).
    """
    if reading not in READINGS:
        raise ValueError(f"reading: unknown '{reading}'; allowed: {', '.join(READINGS)}")
    total = Counter()
    for layer in range(cfg.n_layers):
        if model == "attn":
            total += attention_layer(cfg, T, reading)
        elif model == "conv":
            total += conv_layer(cfg, T)
        elif execution == "dense":
            total += attention_layer(cfg, T, reading) + conv_layer(cfg, T) + router(cfg, T)
        elif routed_counts is not None:
            total += sparse_routed_layer_counts(cfg, T, *routed_counts[layer], reading)
        else:
            total += sparse_routed_layer(cfg, T, routed[layer], reading)
        total += ffn(cfg, T)
    total += head(cfg, T)
    out = {p: int(total.get(p, 0)) for p in PARTS}
    out["total"] = sum(out.values())
    return out
