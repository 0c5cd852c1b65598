"""A memory estimate checked before anything is allocated, so an impossible size stops with one
line instead of an out-of-memory kill minutes later.

The estimate is deliberately generous (an upper bound, not a prediction): float32 weights,
gradients and two AdamW moments; activations kept for backward at about 32 floats per token,
layer and width unit (attention, conv, router and FFN branches together) plus one (B, H, T, T)
score matrix; and the held-out test set, which is generated whole (int64 ids).
"""
from __future__ import annotations

import os

import torch

from baselines import ModelConfig, build_model, count_params

from suite.errors import ConfigError

FLOAT = 4
ACTIVATION_FLOATS_PER_TOKEN_LAYER = 32  # in units of d_model; see the module docstring


def param_count(model_name: str, cfg: ModelConfig) -> int:
    """Exact parameter count, from a model built on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        return count_params(build_model(model_name, cfg))


def training_bytes(model_name: str, cfg: ModelConfig, seq_len: int, batch: int, test_sequences: int = 0) -> int:
    weights = 4 * param_count(model_name, cfg) * FLOAT
    acts = batch * seq_len * cfg.d_model * (ACTIVATION_FLOATS_PER_TOKEN_LAYER * cfg.n_layers + 2) * FLOAT
    scores = batch * cfg.n_heads * seq_len * seq_len * FLOAT
    test = test_sequences * seq_len * 8
    return weights + acts + scores + test


def available_bytes(device: torch.device) -> int:
    """Free memory where the tensors will live: the GPU's free memory, or the host's available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(what: str, need: int, device: torch.device) -> None:
    """Stop with one line naming `what` when the estimate exceeds the free memory."""
    have = available_bytes(device)
    if need > have:
        raise ConfigError(f"{what}: needs about {need / 2**30:.1f} GiB by the memory estimate "
                          f"(suite/compute/memory.py), more than the {have / 2**30:.1f} GiB free on {device}")
