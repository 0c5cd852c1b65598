"""Claims decided by arithmetic, not by seeds.

A routed model executes at least the ConvOnly model's work: every layer runs its convolution
(and the router) at every position, and the attention it skips is all it can save. So 1 -
MACs(ConvOnly) / MACs(AttnOnly), from the FLOP closed forms (suite.compute.formulas, executed
reading), bounds the executed savings of any routed model of the architecture at that length.
At T = 128 it is 18.6%: "~99.7% compute savings" cannot hold as executed compute, whatever the
seeds do. The bound ignores the router's own MACs, so it is generous to the claim.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from baselines import ModelConfig
from suite.compute.formulas import model_macs
from tasks import make_task


class Bound(BaseModel):
    """What the architecture allows at one distance, and the numbers it rests on."""
    model_config = ConfigDict(frozen=True, extra="forbid")

    distance: int
    seq_len: int
    macs_attn: int
    macs_conv: int
    ceiling: float           # the most any routed model can save

    def evidence(self, threshold: float) -> str:
        return (f"at T = {self.seq_len} ConvOnly executes {self.macs_conv:,} forward MACs against AttnOnly's "
                f"{self.macs_attn:,} (FLOP closed forms): no routed model of this architecture saves more than "
                f"{self.ceiling:.1%} of executed compute, below {threshold:g}")


def conv_only_ceiling(task: str, distance: int) -> Bound:
    """The executed-savings ceiling at one distance for the faithful model size."""
    T = make_task(task, distance=distance).seq_len
    cfg = ModelConfig()
    attn, conv = model_macs("attn", cfg, T)["total"], model_macs("conv", cfg, T)["total"]
    return Bound(distance=distance, seq_len=T, macs_attn=attn, macs_conv=conv, ceiling=1.0 - conv / attn)


def impossible(claim) -> list[tuple[Bound, float]]:
    """(bound, threshold) for each selected distance where the claim's executed-savings check
    asks more than the architecture allows; empty when arithmetic does not decide it."""
    if claim.bound is None:
        return []
    distances = claim.select.columns()["distance"]
    out = []
    for ch in claim.checks:
        if ch.metric == "savings_executed" and ch.comparator == ">=":
            for d in distances:
                b = conv_only_ceiling(claim.select.task, int(d))
                if ch.threshold > b.ceiling:
                    out.append((b, ch.threshold))
    return out
