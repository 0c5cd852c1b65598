"""Decision swaps: a trained routed model evaluated under other routing decisions.

The claim under test is that the router's *choice* of positions matters, not only how many
positions get attention. So the trained weights are kept and only the decisions are swapped:
every routed layer's gates are forced (`RoutedMixer.forced_gate`; the router still runs and is
still counted) and the same held-out batches are scored again. Each control answers one
question:

- `learned`: the model's own eval decisions, forced back in. Its accuracy is `evaluate`'s; the
  row every other one is read against.
- `random`: per sequence and layer, exactly as many attention positions as the learned gates
  of that sequence and layer, placed uniformly at random (without replacement, fresh per
  sequence, from a generator seeded with `seed`). Equal budget, no skill in the placement: if it
  scores like `learned`, the router's choice of positions adds nothing.
- `last`: the same per-sequence, per-layer counts at the last positions of the sequence. Equal
  budget, a content-free placement that exploits tasks whose query sits at the end.
- `oracle`: attention exactly at the positions that row scores, in every layer (its usage is its
  own, not the learned one): the ideal placement for the scored outputs, an upper reference.
- `one_layer`: each sequence's total learned count over all layers (capped at T) put in one
  layer, at its last positions, every other layer all conv. Equal total budget, different
  spread over layers. Evaluated for every layer (`one_layer_<k>` rows); the `one_layer` row is
  the best of them (ties: the lowest layer), named in `note`.
- `conv` / `attn`: every gate 0 / every gate 1: the two ends of the budget with these weights.

`random` and `last` keep each sequence's per-layer count exactly, so their per-layer usage equals
the learned one exactly; `one_layer` keeps each sequence's total count (unless the cap at T
bites). Executed MACs are read the way `suite.compute.readings` reads them: `read_routing` of the
forced run, counted by `executed_macs`.
"""
from __future__ import annotations

import torch

from baselines.models import RoutedMixer
from suite.compute.readings import Routing, executed_macs, read_routing
from tasks import IGNORE

COLUMNS = ("control", "accuracy", "test_correct", "test_total", "usage", "usage_per_layer",
           "macs_forward_executed", "note")


def routed_mixers(model) -> list[RoutedMixer]:
    """Each block's RoutedMixer, in layer order; TypeError if the model is not routed throughout."""
    mixers = [getattr(block, "mixer", None) for block in getattr(model, "blocks", ())]
    if not mixers or not all(isinstance(m, RoutedMixer) for m in mixers):
        raise TypeError(f"decision swaps need a routed model (every block a RoutedMixer), got "
                        f"{type(model).__name__}")
    return mixers


class _Kept:
    """Restores the model's training flag and every mixer's forced_gate on exit."""

    def __init__(self, model):
        self.model, self.mixers = model, routed_mixers(model)

    def __enter__(self):
        self.training = self.model.training
        self.forced = [m.forced_gate for m in self.mixers]
        return self.mixers

    def __exit__(self, *exc):
        self.model.force_gates(self.forced)
        self.model.train(self.training)
        return False


@torch.no_grad()
def learned_gates(model, batches) -> list[torch.Tensor]:
    """The model's own eval decisions: per batch a (L, B, T) 0/1 tensor, as `evaluate` sees them."""
    with _Kept(model):
        model.eval()
        return [torch.stack(model(b.inputs, b.positions).gates).round() for b in batches]


def control_gates(learned: list[torch.Tensor], batches, seed: int = 0) -> dict[str, list[torch.Tensor]]:
    """Every control's gates, per batch (L, B, T), built from the learned ones; keys in report
    order: learned, random, last, oracle, one_layer_0 .. one_layer_{L-1}, conv, attn."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    out: dict[str, list] = {"learned": [], "random": [], "last": [], "oracle": []}
    L = learned[0].shape[0]
    for k in range(L):
        out[f"one_layer_{k}"] = []
    out["conv"], out["attn"] = [], []
    for g, b in zip(learned, batches):
        L, B, T = g.shape
        dev, dt = g.device, g.dtype
        counts = g.sum(-1).round().long().cpu()                          # (L, B)
        t = torch.arange(T)
        # uniform without replacement: the `count` positions with the smallest random keys,
        # keys drawn per (sequence, layer) so every sequence gets its own placement
        keys = torch.rand((B, L, T), generator=gen).transpose(0, 1)        # (L, B, T)
        rank = keys.argsort(-1).argsort(-1)
        out["learned"].append(g.clone())
        out["random"].append((rank < counts[..., None]).to(dev, dt))
        out["last"].append((t >= T - counts[..., None]).to(dev, dt))
        out["oracle"].append(b.mask.to(dev).unsqueeze(0).expand(L, B, T).to(dt).clone())
        total = counts.sum(0).clamp(max=T)                                 # (B,)
        for k in range(L):
            one = torch.zeros(L, B, T, dtype=torch.bool)
            one[k] = t >= T - total[:, None]
            out[f"one_layer_{k}"].append(one.to(dev, dt))
        out["conv"].append(torch.zeros_like(g))
        out["attn"].append(torch.ones_like(g))
    return out


class _Forced:
    """`model` as `read_routing` calls it, with each batch's gates forced in turn (in the order the
    batches are read); keeps every output, so one forward pass gives both the reading and the score."""

    def __init__(self, model, mixers, gates: list[torch.Tensor]):
        self.model, self.mixers, self.gates, self.outputs = model, mixers, list(gates), []

    def eval(self):
        self.model.eval()
        return self

    def __call__(self, inputs, positions=None):
        g = self.gates[len(self.outputs)]
        self.model.force_gates(list(g))
        out = self.model(inputs, positions)
        if not torch.equal(torch.stack(out.gates), g.to(out.gates[0])):
            raise RuntimeError("the model did not follow the forced gates")
        self.outputs.append(out)
        return out


@torch.no_grad()
def forced_reading(model, batches, gates: list[torch.Tensor]) -> tuple[dict, Routing]:
    """Accuracy over the scored targets and per-layer usage with every routed layer's gates forced
    to `gates` (per batch (L, B, T)), and the `read_routing` of the forced run; the model's forced
    gates and training flag are restored."""
    correct = total = seen = 0
    per_layer = None
    with _Kept(model) as mixers:
        forced = _Forced(model, mixers, gates)
        routing = read_routing(forced, batches)
        for b, out in zip(batches, forced.outputs):
            used = torch.stack(out.gates)
            scored = b.targets != IGNORE
            correct += int(((out.logits.argmax(-1) == b.targets) & scored).sum())
            total += int(scored.sum())
            n = used.round().long().sum((1, 2)).cpu()
            per_layer = n if per_layer is None else per_layer + n
            seen += used.shape[1] * used.shape[2]
    usage_per_layer = [int(x) / seen for x in per_layer]
    return {"accuracy": correct / total if total else float("nan"), "test_correct": correct,
            "test_total": total, "usage": sum(usage_per_layer) / len(usage_per_layer),
            "usage_per_layer": usage_per_layer}, routing


def evaluate_gates(model, batches, gates: list[torch.Tensor]) -> dict:
    """`forced_reading`'s scores alone."""
    return forced_reading(model, batches, gates)[0]


def decision_swaps(model, batches, seed: int = 0) -> list[dict]:
    """Every control of the module docstring on the trained routed `model` and its held-out
    `batches`: one dict per control with the columns of COLUMNS, in the order learned, random,
    last, oracle, one_layer (the best layer), one_layer_0 .. one_layer_{L-1}, conv, attn.

    The model is left as it was (weights, forced gates, training flag, execution).
    `macs_forward_executed` is the mean executed forward MACs per test sequence under that
    control's gates (`executed_macs` of a Routing of them); controls with the same per-sequence,
    per-layer counts share one count, since that reading depends on the counts only.
    """
    batches = list(batches)
    if not batches:
        raise ValueError("decision swaps need at least one test batch")
    learned = learned_gates(model, batches)
    every = control_gates(learned, batches, seed)
    notes = {"learned": "the router's own eval decisions", "random": f"seed {seed}",
             "last": "learned counts at the last positions", "oracle": "attention at the scored cells",
             "conv": "every gate 0", "attn": "every gate 1"}
    macs_by_counts: dict = {}
    rows = {}
    for name, gates in every.items():
        scores, routing = forced_reading(model, batches, gates)
        row = {"control": name, **scores}
        key = tuple(tuple(r for r, _ in c) for c in routing.counts)
        if key not in macs_by_counts:
            macs_by_counts[key] = float(executed_macs(model, routing))
        row["macs_forward_executed"] = macs_by_counts[key]
        row["note"] = notes.get(name, f"layer {name.rsplit('_', 1)[1]}" if name.startswith("one_layer_") else "")
        rows[name] = {c: row[c] for c in COLUMNS}
    L = learned[0].shape[0]
    best = max(range(L), key=lambda k: (rows[f"one_layer_{k}"]["accuracy"], -k))
    one = {**rows[f"one_layer_{best}"], "control": "one_layer", "note": f"layer {best}"}
    order = ["learned", "random", "last", "oracle"]
    out = [rows[k] for k in order] + [one] + [rows[f"one_layer_{k}"] for k in range(L)]
    return out + [rows["conv"], rows["attn"]]
