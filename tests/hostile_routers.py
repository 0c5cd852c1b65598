"""Hostile router plugins (tests/test_plugin_faults.py): each breaks the Router contract in one
way, so the gate and the cell guard can be shown to turn every one into a verdict, never a crash
or a false pass. Imported by name (`hostile_routers:Class`) from the tests folder."""
import os
import sys

import torch
from torch import nn

from baselines.routers import GumbelRouter


class Base(nn.Module):
    """Attention everywhere, in the input's dtype and device: what the faults below depart from."""

    def __init__(self, cfg, layer_index=0):
        super().__init__()

    def forward(self, x):
        return x.new_ones(x.shape[:2])


class RaisesInInit(Base):
    def __init__(self, cfg, layer_index=0):
        raise RuntimeError("hostile router refuses to be built")


class KeyErrorInInit(Base):
    def __init__(self, cfg, layer_index=0):
        raise KeyError("missing_setting")


class Hidden(Base):
    """A hidden layer of `hidden` units: {"hidden": -1} asks for a negative dimension."""

    def __init__(self, cfg, layer_index=0, hidden=8):
        super().__init__(cfg, layer_index)
        self.net = nn.Linear(cfg.d_model, hidden)


class ExitInInit(Base):
    def __init__(self, cfg, layer_index=0):
        sys.exit(0)


class ReturnsNone(Base):
    def forward(self, x):
        return None


class ReturnsList(Base):
    def forward(self, x):
        return x.new_ones(x.shape[:2]).tolist()


class BoolGates(Base):
    def forward(self, x):
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)


class IntGates(Base):
    def forward(self, x):
        return torch.ones(x.shape[:2], dtype=torch.int64, device=x.device)


class DoubleGates(Base):
    def forward(self, x):
        return torch.ones(x.shape[:2], dtype=torch.float64, device=x.device)


class OtherDevice(Base):
    """Gates on another device (meta stands in for a GPU on a CPU-only machine)."""

    def forward(self, x):
        return torch.ones(x.shape[:2], dtype=x.dtype, device="meta")


class ShapeB2(Base):
    def forward(self, x):
        return x.new_ones(x.shape[0], 2)


class ShapeTB(Base):
    def forward(self, x):
        return x.new_ones(x.shape[1], x.shape[0])


class Soft(Base):
    def forward(self, x):
        return torch.sigmoid(x[..., 0])


class HugeAlloc(Base):
    """Asks for 2^50 floats (4 PiB): the allocation fails inside the router."""

    def forward(self, x):
        torch.empty(1 << 50, device=x.device)
        return super().forward(x)


class ExitInForward(Base):
    def forward(self, x):
        sys.exit(0)


class InterruptInForward(Base):
    def forward(self, x):
        raise KeyboardInterrupt


class Trains(GumbelRouter):
    """The original router until the first training step with gradients (the gate runs without),
    then `how`: 'exit' calls sys.exit(0), 'os_exit' os._exit(0), 'interrupt' raises KeyboardInterrupt,
    'raise' RuntimeError."""

    def __init__(self, cfg, layer_index=0, how="exit"):
        super().__init__(cfg, layer_index)
        self.how = how

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            if self.how == "exit":
                sys.exit(0)
            if self.how == "interrupt":
                raise KeyboardInterrupt
            if self.how == "os_exit":
                os._exit(0)
            raise RuntimeError("hostile router fails in training")
        return super().forward(x)


class FailsAtLength(GumbelRouter):
    """The original router, except that it raises while training on sequences of length `length`
    (one task of a battery): its other cells train and succeed."""

    def __init__(self, cfg, layer_index=0, length=0):
        super().__init__(cfg, layer_index)
        self.length = length

    def forward(self, x):
        if self.training and torch.is_grad_enabled() and x.shape[1] == self.length:
            raise RuntimeError(f"hostile router fails at length {self.length}")
        return super().forward(x)


class Never(Base):
    """Never attends: gates all 0 (a legal, degenerate router)."""

    def forward(self, x):
        return x.new_zeros(x.shape[:2])


#: the fault grammar of the property test: what a Faulty router does at its `at`-th call
FAULTS = ("shape_b2", "shape_tb", "shape_b", "bool", "int64", "float64", "meta", "soft", "half", "none", "list",
          "tuple", "nan")
RAISES = {"RuntimeError": RuntimeError, "ValueError": ValueError, "KeyError": KeyError, "TypeError": TypeError,
          "MemoryError": MemoryError, "ZeroDivisionError": ZeroDivisionError, "AssertionError": AssertionError,
          "SystemExit": SystemExit, "KeyboardInterrupt": KeyboardInterrupt, "GeneratorExit": GeneratorExit}


class Faulty(Base):
    """A router built from the grammar: attention everywhere until its `at`-th forward call (or its
    construction, at = -1), then `fault` (a wrong output) or `raises` (an exception type by name)."""

    def __init__(self, cfg, layer_index=0, at=0, fault="", raises=""):
        if at < 0 and raises:
            raise RAISES[raises]("hostile router fails while being constructed")
        super().__init__(cfg, layer_index)
        self.at, self.fault, self.raises, self.calls = at, fault, raises, 0

    def forward(self, x):
        self.calls += 1
        if self.calls <= self.at or self.at < 0:
            return super().forward(x)
        if self.raises:
            raise RAISES[self.raises](f"hostile router fails at call {self.calls}")
        B, T = x.shape[:2]
        return {"shape_b2": lambda: x.new_ones(B, 2), "shape_tb": lambda: x.new_ones(T, B),
                "shape_b": lambda: x.new_ones(B), "bool": lambda: torch.ones(B, T, dtype=torch.bool),
                "int64": lambda: torch.ones(B, T, dtype=torch.int64),
                "float64": lambda: torch.ones(B, T, dtype=torch.float64),
                "meta": lambda: torch.ones(B, T, device="meta"), "soft": lambda: x.new_full((B, T), 0.5),
                "half": lambda: torch.ones(B, T, dtype=torch.float16), "none": lambda: None,
                "list": lambda: [[1.0] * T] * B, "tuple": lambda: (x.new_ones(B, T),),
                "nan": lambda: x.new_full((B, T), float("nan"))}[self.fault]()
