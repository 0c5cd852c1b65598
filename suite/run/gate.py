"""The router gate: before anything trains, every router (built-in or plugin) is run through the
whole routed model on random tokens and must keep its contract (baselines.routers.Router):

- gates of shape (B, T), exactly 0 or 1, in training and in evaluation;
- deterministic in evaluation (the same input twice gives the same gates and logits);
- causal: changing the tokens after t changes no decision and no output at positions <= t.

A router that breaks it stops the run with one line naming the first position that leaked.
"""
from __future__ import annotations

import torch

from baselines import ModelConfig, build_model

from suite.errors import ConfigError

LOGIT_TOLERANCE = 1e-4
CUTS = 12          # cut points t checked per router (spread over the sequence, ends included)


def cut_points(T: int, n: int = CUTS) -> list[int]:
    """Positions t after which the tokens are changed: both ends and evenly between."""
    if T < 2:
        return []
    picks = {0, T - 2} | {round(i * (T - 2) / (n - 1)) for i in range(n)}
    return sorted(p for p in picks if 0 <= p <= T - 2)


def _first_change(a: torch.Tensor, b: torch.Tensor, upto: int, tol: float) -> int | None:
    """First position <= upto where (B, T[, ...]) tensors a and b differ, or None."""
    diff = (a[:, : upto + 1] - b[:, : upto + 1]).abs()
    while diff.dim() > 2:
        diff = diff.amax(-1)
    bad = (diff > tol).any(0).nonzero()
    return int(bad[0]) if bad.numel() else None


def _check_gates(gates, B: int, T: int, mode: str, name: str) -> None:
    for layer, g in enumerate(gates):
        if tuple(g.shape) != (B, T):
            raise ConfigError(f"router: {name} returned gates of shape {tuple(g.shape)} in layer {layer} "
                              f"({mode} mode); the contract is (B, T) = ({B}, {T})")
        off = ((g != 0) & (g != 1)).nonzero()
        if off.numel():
            raise ConfigError(f"router: {name} returned a gate of {float(g[tuple(off[0])]):.4g} at position "
                              f"{int(off[0][1])} of layer {layer} ({mode} mode); gates must be exactly 0 or 1")


def check_router(cfg: ModelConfig, seq_len: int, device: torch.device | str = "cpu", seed: int = 0) -> None:
    """Run the gate for a routed model of this config at this sequence length; ConfigError if it fails."""
    name = f"'{cfg.router}'"
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):       # the gate leaves the global RNG as it found it
        torch.manual_seed(seed)
        model = build_model("routed", cfg).to(device)
        gen = torch.Generator().manual_seed(seed)
        V, T = cfg.vocab_size, seq_len
        ids = torch.randint(0, V, (2, T), generator=gen).to(device)
        with torch.no_grad():
            model.train()
            _check_gates(model(ids).gates, 2, T, "training", name)
            model.eval()
            base = model(ids)
            _check_gates(base.gates, 2, T, "evaluation", name)
            again = model(ids)
            for layer, (a, b) in enumerate(zip(base.gates, again.gates)):
                p = _first_change(a, b, T - 1, 0.0)
                if p is not None:
                    raise ConfigError(f"router: {name} is not deterministic in evaluation mode: the same input "
                                      f"gave another decision at position {p} of layer {layer}")
            for t in cut_points(T):
                changed = ids.clone()
                shift = torch.randint(1, V, (2, T - t - 1), generator=gen).to(device)
                changed[:, t + 1:] = (changed[:, t + 1:] + shift) % V   # every later token differs
                out = model(changed)
                for layer, (a, b) in enumerate(zip(base.gates, out.gates)):
                    p = _first_change(a, b, t, 0.0)
                    if p is not None:
                        raise ConfigError(f"router: {name} is not causal: changing the tokens after position {t} "
                                          f"changed the decision at position {p} of layer {layer}")
                p = _first_change(base.logits, out.logits, t, LOGIT_TOLERANCE)
                if p is not None:
                    raise ConfigError(f"router: {name} is not causal: changing the tokens after position {t} "
                                      f"changed the model's output at position {p}")
