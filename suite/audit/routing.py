"""Where a trained router sends attention, read against where the task scores.

`routing_analysis` compares the model's own eval gates with the scored cells (row, position with
a target other than IGNORE); `whole_layer_test` asks whether a usage plateau near 1/n_layers is
one layer doing all its positions with attention, i.e. a fixed hybrid rather than a routing.
"""
from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict

from suite.audit.swaps import learned_gates, routed_mixers

#: a layer routing at least this share of its positions counts as a whole attention layer
FULL_LAYER = 0.95
#: a model usage within this fraction of 1/n_layers is a plateau near one layer's worth
NEAR_PLATEAU = 0.2


def _share(num: int, den: int) -> float:
    return num / den if den else float("nan")


def routing_analysis(model, batches) -> dict:
    """Per layer and over all layers, how the model's own eval gates on `batches` meet the scored
    cells. A flat dict of floats:

    - `usage_layer_<l>`: mean gate over every sequence x position; `usage`: their mean;
    - `precision_layer_<l>`: share of layer l's attention positions that are scored cells of their
      row (NaN if the layer routed none); `recall_layer_<l>`: share of scored cells that layer l
      sent to attention (NaN if nothing is scored);
    - `precision_any`, `recall_any`: the same with a cell counted as attended if any layer routed it;
    - `query_share`: share of all attention positions, summed over layers, that are scored cells;
    - `attention_positions_per_sequence_layer_<l>`: mean count of attention positions per
      sequence in layer l, and `attention_positions_per_sequence` over all layers: a count shows
      what a small usage means ("0.25%" may be one position in one of four layers).
    """
    batches = list(batches)
    if not batches:
        raise ValueError("routing analysis needs at least one test batch")
    routed_mixers(model)
    gates = learned_gates(model, batches)
    L = gates[0].shape[0]
    attended = [0] * L
    hit = [0] * L
    any_attended = any_hit = scored_total = cells = sequences = 0
    for g, b in zip(gates, batches):
        on = g.round().bool().cpu()                       # (L, B, T)
        scored = b.mask.cpu()                             # (B, T)
        for layer in range(L):
            attended[layer] += int(on[layer].sum())
            hit[layer] += int((on[layer] & scored).sum())
        union = on.any(0)
        any_attended += int(union.sum())
        any_hit += int((union & scored).sum())
        scored_total += int(scored.sum())
        cells += scored.numel()
        sequences += scored.shape[0]
    out: dict = {}
    for layer in range(L):
        out[f"usage_layer_{layer}"] = attended[layer] / cells
        out[f"precision_layer_{layer}"] = _share(hit[layer], attended[layer])
        out[f"recall_layer_{layer}"] = _share(hit[layer], scored_total)
        out[f"attention_positions_per_sequence_layer_{layer}"] = attended[layer] / sequences
    out["usage"] = sum(out[f"usage_layer_{layer}"] for layer in range(L)) / L
    out["precision_any"] = _share(any_hit, any_attended)
    out["recall_any"] = _share(any_hit, scored_total)
    out["query_share"] = _share(sum(hit), sum(attended))
    out["attention_positions_per_sequence"] = sum(attended) / sequences
    return out


#: slack on the plateau bound, so a mean on the boundary is not lost to float rounding
_EPS = 1e-12


def whole_layer_test(usage_per_layer: list[float], full: float = FULL_LAYER, near: float = NEAR_PLATEAU) -> dict:
    """Is a usage plateau near 1/n_layers exactly one layer routing (nearly) all its positions?

    A routed model whose mean usage settles near 1/L can get there two ways: one layer attends
    at (almost) every position and the others never do (the fixed one-layer hybrid, no routing
    by content at all), or the budget is spread over layers and positions. This tells them apart
    from the per-layer usage table:

    - `plateau`: |mean usage - 1/L| <= near / L (within `near` of the 1/L level, relative);
    - `full_layers`: indices of the layers with usage >= `full`;
    - `whole_layer`: a plateau and exactly one full layer;
    - `label`: "one whole layer" (whole_layer), "spread over layers" (a plateau without exactly
      one full layer), or "no plateau".
    """
    usage = [float(u) for u in usage_per_layer]
    if not usage:
        raise ValueError("usage_per_layer: needs at least one layer")
    if not all(math.isfinite(u) and 0.0 <= u <= 1.0 for u in usage):
        raise ValueError(f"usage_per_layer: every value must be in [0, 1], got {usage_per_layer!r}")
    if not 0.0 < full <= 1.0:
        raise ValueError(f"full: must be in (0, 1], got {full!r}")
    if not near >= 0.0:
        raise ValueError(f"near: must be >= 0, got {near!r}")
    L = len(usage)
    mean = sum(usage) / L
    plateau = abs(mean - 1.0 / L) <= near / L + _EPS
    full_layers = [i for i, u in enumerate(usage) if u >= full]
    whole = plateau and len(full_layers) == 1
    label = "one whole layer" if whole else ("spread over layers" if plateau else "no plateau")
    return {"plateau": plateau, "full_layers": full_layers, "whole_layer": whole, "label": label}


#: a model whose attention sits at least this share in one layer attends in that layer alone
ONE_LAYER_MASS = 0.95


class RoutingMode(BaseModel):
    """Where one model's attention goes, named from its per-layer usage alone (the rules of
    `routing_mode`), with the numbers the name rests on."""
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    usage: float
    #: the layer holding most of the attention, its usage (share of its positions routed) and its
    #: share of all attention positions
    layer: int
    layer_usage: float
    mass_share: float

    def describe(self) -> str:
        return (f"{self.label}: {self.mass_share:.1%} of the attention in layer {self.layer}, which routes "
                f"{self.layer_usage:.1%} of its positions")


def mode_rules(published_usage: float) -> str:
    """The rules of `routing_mode` in words, with its thresholds, for the report."""
    return (f"'≤ {published_usage:.1%}': total usage at most the published {published_usage:.1%}; 'one whole "
            f"layer': one layer routes ≥ {FULL_LAYER:.0%} of its positions; 'one layer partly attended': ≥ "
            f"{ONE_LAYER_MASS:.0%} of the attention positions sit in one layer, which routes < {FULL_LAYER:.0%} of "
            "its positions; 'spread over layers': anything else (suite/audit/routing.py `routing_mode`)")


def routing_mode(usage_per_layer: list[float], published_usage: float) -> RoutingMode:
    """The routing mode of one model, tested in this order: '≤ <published usage>', 'one whole layer'
    (exactly one layer at >= FULL_LAYER), 'one layer partly attended' (>= ONE_LAYER_MASS of all
    attention in one layer, no full layer), 'spread over layers'. Two models share a mode only
    when these rules give both the same label."""
    usage = [float(u) for u in usage_per_layer]
    if not usage or not all(math.isfinite(u) and 0.0 <= u <= 1.0 for u in usage):
        raise ValueError(f"usage_per_layer: needs values in [0, 1], got {usage_per_layer!r}")
    mean, total = sum(usage) / len(usage), sum(usage)
    top = max(range(len(usage)), key=lambda i: (usage[i], -i))
    share = usage[top] / total if total > 0 else 0.0
    full = [i for i, u in enumerate(usage) if u >= FULL_LAYER]
    label = (f"≤ {published_usage:.1%}" if mean <= published_usage + _EPS else
             "one whole layer" if len(full) == 1 else
             "one layer partly attended" if share >= ONE_LAYER_MASS and not full else "spread over layers")
    return RoutingMode(label=label, usage=mean, layer=top, layer_usage=usage[top], mass_share=share)
