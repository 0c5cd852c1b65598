"""The router gate: before anything trains, every router (built-in or plugin) is run through the
whole routed model on random tokens and must keep its contract (baselines.routers.Router):

- gates of shape (B, T), exactly 0 or 1, in training and in evaluation;
- deterministic in evaluation (the same input twice gives the same gates and logits);
- causal: changing the tokens after t changes no decision and no output at positions <= t.

Every router call is watched (a forward hook): its output must be a tensor of the input's dtype
and device, shape (B, T), values 0/1. A router that breaks any rule, raises (an impossible
allocation, say), calls sys.exit or raises a KeyboardInterrupt no one typed stops the run with
one line naming the spec and the rule (the first position that leaked, for causality).
"""
from __future__ import annotations

import contextlib

import torch

from baselines import ModelConfig, build_model, check_router_spec

from suite.core.plugins import exit_text, fault_line, typed_by_nobody
from suite.errors import INPUT_ERRORS, ConfigError

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


def _shape_and_values(g: torch.Tensor, B: int, T: int, name: str, where: str) -> None:
    """Gates of shape (B, T), every value exactly 0 or 1 (NaN is neither)."""
    if tuple(g.shape) != (B, T):
        raise ConfigError(f"router: {name} returned gates of shape {tuple(g.shape)} {where}; "
                          f"the contract is (B, T) = ({B}, {T})")
    off = ((g != 0) & (g != 1)).nonzero()
    if off.numel():
        raise ConfigError(f"router: {name} returned a gate of {float(g[tuple(off[0])]):.4g} at position "
                          f"{int(off[0][1])} {where}; gates must be exactly 0 or 1")


def _check_gates(gates, B: int, T: int, mode: str, name: str) -> None:
    for layer, g in enumerate(gates):
        _shape_and_values(g, B, T, name, f"in layer {layer} ({mode} mode)")


def _check_call(g, x: torch.Tensor, name: str, where: str) -> None:
    """One router call's output against the contract, before the model uses it."""
    B, T = x.shape[:2]
    if not isinstance(g, torch.Tensor):
        raise ConfigError(f"router: {name} returned {type(g).__name__}, not a tensor, {where}; the contract "
                          f"is gates (B, T) = ({B}, {T}) of the input's dtype ({x.dtype})")
    if g.device != x.device:
        raise ConfigError(f"router: {name} returned gates on device {g.device} {where}; the contract is the "
                          f"input's device ({x.device})")
    if g.dtype != x.dtype:
        raise ConfigError(f"router: {name} returned gates of dtype {g.dtype} {where}; the contract is the "
                          f"input's dtype ({x.dtype}), values exactly 0 or 1")
    _shape_and_values(g, B, T, name, where)


@contextlib.contextmanager
def _watched(model, name: str):
    """A forward hook on every router: each output is checked before the model uses it."""
    handles = []
    for layer, block in enumerate(getattr(model, "blocks", [])):
        router = getattr(getattr(block, "mixer", None), "router", None)
        if router is None:
            continue

        def hook(module, args, out, layer=layer):
            mode = "training" if module.training else "evaluation"
            _check_call(out, args[0], name, f"in layer {layer} ({mode} mode)")
        handles.append(router.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def check_spec(cfg: ModelConfig) -> None:
    """Import the router and construct it for every layer (baselines.check_router_spec), with a
    KeyboardInterrupt the plugin raises itself refused in one line like every other fault."""
    try:
        check_router_spec(cfg)
    except KeyboardInterrupt:
        if not typed_by_nobody():
            raise
        raise ConfigError(f"router: '{cfg.router}' raised KeyboardInterrupt while being imported or constructed "
                          f"(no Ctrl-C was pressed)") from None


def check_router(cfg: ModelConfig, seq_len: int, device: torch.device | str = "cpu", seed: int = 0) -> None:
    """Run the gate for a routed model of this config at this sequence length; ConfigError if it
    fails, whatever the router does (raise, sys.exit, a KeyboardInterrupt of its own)."""
    name = f"'{cfg.router}'"
    stage = ["while being constructed"]
    try:
        _gate(cfg, seq_len, torch.device(device), seed, name, stage)
    except INPUT_ERRORS:
        raise
    except SystemExit as e:
        raise ConfigError(f"router: {name} called {exit_text(e)} {stage[0]}") from None
    except KeyboardInterrupt:
        if not typed_by_nobody():
            raise
        raise ConfigError(f"router: {name} raised KeyboardInterrupt {stage[0]} (no Ctrl-C was pressed)") from None
    except BaseException as e:  # an impossible allocation, a bug, a GeneratorExit: its error, one line
        raise ConfigError(f"router: {name} raised {fault_line(e)} {stage[0]}") from None


def _gate(cfg: ModelConfig, seq_len: int, device: torch.device, seed: int, name: str, stage: list) -> None:
    with torch.random.fork_rng(devices=[]):       # the gate leaves the global RNG as it found it
        torch.manual_seed(seed)
        model = build_model("routed", cfg).to(device)
        gen = torch.Generator().manual_seed(seed)
        V, T = cfg.vocab_size, seq_len
        ids = torch.randint(0, V, (2, T), generator=gen).to(device)
        with torch.no_grad(), _watched(model, name):
            model.train()
            stage[0] = "in its forward pass (training mode)"
            _check_gates(model(ids).gates, 2, T, "training", name)
            model.eval()
            stage[0] = "in its forward pass (evaluation mode)"
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
