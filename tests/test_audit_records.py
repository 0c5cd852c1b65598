"""The audit's findings on hand-made tables, asserted on the records: routing modes from per-layer
usage, router regret over distinct models with a paired interval, and the positional-shortcut
verdict, which a `last` swap on assoc_recall alone can never confirm."""
import json

import pandas as pd
import pytest

from suite.audit.build import point6
from suite.audit.common import Limits
from suite.audit.points import point2
from suite.audit.regret import regret, regret_verdict
from suite.audit.routing import routing_mode
from suite.audit.shortcut import faithful_swap_lines, point4
from suite.judge.registry import load_registry
from suite.judge.stats import t_interval
from suite.schema.rows import FAITHFUL_SIZE, tier_of

LIMITS = Limits(published_usage=0.005, success_accuracy=0.99)


def test_routing_mode_names_each_of_the_four_modes():
    assert Limits.of(load_registry()) == LIMITS  # the thresholds come from the registry
    low = routing_mode([0.001, 0.009, 0.0, 0.0], 0.005)
    assert low.label == "≤ 0.5%" and low.layer == 1
    whole = routing_mode([0.964, 0.0, 0.006, 0.0], 0.005)
    assert whole.label == "one whole layer" and whole.layer_usage == pytest.approx(0.964)
    partly = routing_mode([0.003167, 0.244349, 0.0, 0.0], 0.005)  # swaps-faithful seed 6
    assert partly.label == "one layer partly attended" and partly.layer == 1
    assert partly.mass_share == pytest.approx(0.244349 / 0.247516)
    spread = routing_mode([0.024331, 0.009859, 0.0, 0.0], 0.005)  # the headline's seed 6: 71% in layer 0
    assert spread.label == "spread over layers" and spread.mass_share == pytest.approx(0.712, abs=1e-3)
    # another registry, another low mode: the bound is passed in, never read at import
    assert routing_mode([0.024331, 0.009859, 0.0, 0.0], 0.05).label == "≤ 5.0%"


def test_a_retrain_in_another_mode_is_never_called_the_same_mode():
    def row(control, acc, per_layer, key, seed):
        return {"config_hash": key, "seed": seed, "tier": "faithful", "task": "assoc_recall", "distance": 126,
                "lambda_target": 0.5, "control": control, "accuracy": acc,
                "usage": sum(per_layer) / len(per_layer), "usage_per_layer": json.dumps(per_layer)}
    low, partly, spread = [0.001, 0.009, 0.0, 0.0], [0.003167, 0.244349, 0.0, 0.0], [0.024331, 0.009859, 0.0, 0.0]
    controls = pd.DataFrame([row("learned", 1.0, low, "k0", 0), row("last", 0.75, low, "k0", 0),
                             row("learned", 0.889, partly, "k6", 6), row("last", 0.997, partly, "k6", 6)])
    headline = pd.DataFrame([{"config_hash": k, "accuracy": 1.0, "usage": sum(u) / 4, "usage_per_layer": json.dumps(u)}
                             for k, u in (("k0", low), ("k6", spread))])
    same, other = faithful_swap_lines(controls, headline, LIMITS)
    assert same.startswith("faithful assoc_recall d=126 λ→0.5, seed 0 (usage 0.0025, ≤ 0.5%: ") and \
        same.endswith("the same mode")
    assert "(usage 0.0619, one layer partly attended: 98.7% of the attention in layer 1, which routes 24.4% of its" \
        in other
    assert "(spread over layers: 71.2% of the attention in layer 0" in other and other.endswith("another mode")


def _c(control, acc, seed, lam=0.5, task="assoc_recall", usage=0.02, macs=100.0, tier="mini", key=None):
    return {"task": task, "distance": 126, "tier": tier, "router": "gumbel", "lambda_target": lam, "seed": seed,
            "control": control, "accuracy": acc, "usage": usage, "macs_forward_executed": macs, "run_id": "r",
            "config_hash": key or f"{tier}{lam}{seed}", "usage_per_layer": json.dumps([usage, usage])}


def _runs(keys, phase2_ran=True):
    return pd.DataFrame([{"config_hash": k, "phase1_key": f"p1-{k[-1]}", "phase2_ran": phase2_ran,
                          "epochs_phase1": 25, "epochs_phase2": 20 * phase2_ran, "model": "routed",
                          "router": "gumbel", "seed": int(k[-1])} for k in keys])


def test_regret_reads_a_paired_interval_and_stays_undecided_across_zero():
    learned, last = [0.95, 0.93, 0.94], [0.99, 0.98, 0.985]
    controls = pd.DataFrame([_c("learned", a, s) for s, a in enumerate(learned)]
                            + [_c("last", a, s, macs=90.0) for s, a in enumerate(last)]
                            + [_c("attn", 1.0, s, usage=1.0, macs=900.0) for s in range(3)])  # above the budget
    (row,) = regret(controls, pd.DataFrame()).to_dict("records")
    low, high = t_interval([b - a for a, b in zip(learned, last)])
    assert row["best_control"] == "last" and row["control_kind"] == "swap" and row["pairs"] == 3
    assert (row["regret_low"], row["regret_high"]) == pytest.approx((low, high)) and low > 0
    assert row["verdict"] == "CONTROL BETTER" and row["interval"] == "paired t interval over 3 seeds"
    six = point6(regret(controls, pd.DataFrame()), controls, limits=LIMITS)
    assert six.numbers == {"CONTROL BETTER": 1}
    assert "runs on weights trained under the learned gates, which favours the learned router" in six.lines[0]
    assert "MMAC" in six.lines[0] and six.lines[0].endswith("-> CONTROL BETTER")
    # the faithful group of the committed audit: regret +0.001, -0.028, +0.108, interval [-0.15, +0.21]
    assert regret_verdict(0.960, 0.986, *t_interval([0.001, -0.028, 0.108])) == "UNDECIDED"
    assert regret_verdict(0.99, 0.985, -0.01, 0.005) == "TIE"
    assert regret_verdict(0.99, 0.90, None, None) == "UNDECIDED"  # one pair: no interval, no verdict


def test_regret_counts_lambda_rows_that_share_one_phase1_model_once():
    """Phase 2 never ran: the λ→0.1 and λ→0.5 cells of a seed are one phase-1 model, one group."""
    rows = [_c(ctl, a, s, lam=lam) for lam in (0.1, 0.5) for s in range(3)
            for ctl, a in (("learned", 0.99 - 0.01 * s), ("random", 0.5))]
    controls = pd.DataFrame(rows)
    runs = _runs(controls["config_hash"].unique(), phase2_ran=False)
    table = regret(controls, runs)
    assert len(table) == 1 and table["lambdas"].tolist() == ["0.1, 0.5"] and table["models"].tolist() == [3]
    six = point6(table, controls, limits=LIMITS)
    assert six.numbers == {"LEARNED BETTER": 1} and list(six.parts) == ["assoc_recall mini d=126 λ→0.1=0.5 gumbel"]
    assert "λ→0.1 and λ→0.5 are one phase-1 model per seed (phase 2 never ran), 3 models" in six.lines[0]
    # where phase 2 ran, each λ trained its own models: two groups
    assert len(regret(controls, _runs(controls["config_hash"].unique(), phase2_ran=True))) == 2


def test_neither_solves_when_the_learned_router_is_below_the_solve_threshold_even_if_it_wins():
    controls = pd.DataFrame([_c("learned", a, s) for s, a in enumerate([0.80, 0.79, 0.81])]
                            + [_c("random", a, s) for s, a in enumerate([0.70, 0.71, 0.69])])
    (row,) = regret(controls, pd.DataFrame()).to_dict("records")
    assert row["regret_high"] < 0  # the interval says the learned router beats the control
    assert row["verdict"] == "NEITHER SOLVES"
    assert point6(regret(controls, pd.DataFrame()), controls, limits=LIMITS).lines[0].endswith(
        "-> NEITHER SOLVES (the learned router does not solve it: accuracy below 0.9)")


def test_a_scratch_control_pairs_by_seed_and_names_its_epoch_budget():
    """A `paper` control is full size with faithful_model False: its tier is 'faithful' (read off the
    model size), so it is set against the faithful learned rows, never a mini one."""
    def cell(router, acc, seed, size):
        return {"model": "routed", "router": router, "task": "assoc_recall", "distance": 126, "accuracy": acc,
                "usage": 0.001, "macs_forward_executed": 50.0, "faithful_model": False, "status": "ok", "seed": seed,
                "config_hash": f"{router}{seed}", "epochs_phase1": 25, "epochs_phase2": 0, **size}
    mini = {"d_model": 16, "n_layers": 2, "n_heads": 2, "kernel_size": 4}
    runs = pd.DataFrame([cell("last", a, s, FAITHFUL_SIZE) for s, a in enumerate([0.99, 0.98, 0.985])]
                        + [cell("random", 0.1, s, mini) for s in range(3)])
    runs["tier"] = tier_of(runs)
    learned = pd.DataFrame([_c("learned", a, s, usage=0.002, tier=t) for t in ("faithful", "mini")
                            for s, a in enumerate([0.95, 0.93, 0.94])])
    runs = pd.concat([runs, _runs(learned["config_hash"])], ignore_index=True)
    got = regret(learned, runs).set_index("tier")
    assert got.loc["faithful", "best_control"] == "trained: last" and got.loc["faithful", "pairs"] == 3
    assert got.loc["faithful", "verdict"] == "CONTROL BETTER"
    assert got.loc["mini", "best_control"] == "trained: random" and got.loc["mini", "verdict"] == "LEARNED BETTER"
    line = point6(regret(learned, runs), learned, limits=LIMITS).lines[0]
    assert "trained from scratch, 25.0 epochs on average against the learned router's 45.0" in line


def test_the_assoc_recall_shortcut_is_never_confirmed_by_a_last_swap_alone():
    def c(control, acc, seed, tier, task="assoc_recall", key=None):
        return _c(control, acc, seed, tier=tier, task=task, usage=0.01, key=key)
    controls = pd.DataFrame([c("learned", 0.99, 0, "faithful"), c("last", 0.99, 0, "faithful"),
                             c("learned", 1.0, 1, "faithful"), c("last", 0.98, 1, "faithful"),
                             c("learned", 0.99, 0, "mini"), c("last", 0.80, 0, "mini")])
    four = point4(controls, pd.DataFrame(), LIMITS)
    assert four.parts == {"assoc_recall faithful": "CANNOT TELL", "assoc_recall mini": "CANNOT TELL"}
    assert four.verdict == "CANNOT TELL" and "CONFIRMED" not in four.summary
    assert "query sits at the last position" in four.summary
    assert four.numbers == {"faithful_groups": 1, "faithful_groups_matched": 1, "faithful_models": 2,
                            "mini_groups": 1, "mini_groups_matched": 0, "mini_models": 1}
    assert point4(controls.assign(accuracy=0.01), pd.DataFrame(), LIMITS).verdict == "NO SOLVED MODEL"
    # the question rests on mqar: a solved model the last positions fall short of
    mqar = pd.DataFrame([c(ctl, acc, 0, "mini", task="mqar", key="q") for ctl, acc in (("learned", 0.98),
                                                                                       ("last", 0.30))])
    four = point4(pd.concat([controls, mqar], ignore_index=True), pd.DataFrame(), LIMITS)
    assert four.verdict == four.parts["mqar"] == "RESISTS THE SHORTCUT"
    assert four.numbers["mqar_solved_models"] == 1 and four.numbers["mqar_fall_short"] == 1
    assert four.summary.startswith("mqar: RESISTS THE SHORTCUT (the last positions fall short in 1 of 1 solved model)")
    both = point4(pd.concat([controls, mqar.assign(accuracy=0.98)], ignore_index=True), pd.DataFrame(), LIMITS)
    assert both.verdict == "DOES NOT RESIST"
    assert {e.config_hash for e in four.evidence} >= {"q", "mini0.50"}


def test_the_plateau_counts_learned_routers_once_per_model():
    """A fixed `layer` router is one whole layer by construction and λ duplicates are one model."""
    def a(key, router, lam, seed, whole):
        return {"run_id": "r", "config_hash": key, "tier": "mini", "task": "copy", "distance": 126, "router": router,
                "lambda_target": lam, "seed": seed, "plateau": True, "whole_layer": whole,
                "label": "one whole layer" if whole else "spread over layers"}
    analysis = pd.DataFrame([a("g1", "gumbel", 0.1, 0, True), a("g5", "gumbel", 0.5, 0, True),
                             a("h1", "gumbel", 0.1, 1, False), a("h5", "gumbel", 0.5, 1, False),
                             a("L", "layer", 0.5, 0, True)])
    runs = pd.DataFrame([{"config_hash": k, "phase1_key": p, "phase2_ran": False}
                         for k, p in (("g1", "P0"), ("g5", "P0"), ("h1", "P1"), ("h5", "P1"))])
    two = point2(pd.DataFrame(), analysis, runs)
    assert two.numbers == {"mini_cells": 2, "mini_plateaus": 2, "mini_whole_layer": 1}
    assert two.summary == "mini: MIXED (1 of 2 plateaus are one whole layer)"


def test_the_faithful_campaign_cells_join_the_plateau_count_once_per_model():
    """faithful 254/510 routed cells are read from their per-layer usage (no analysis): a plateau with
    one layer >= 95% is one whole layer, one at 0.91 is not; λ siblings whose phase 2 never ran are one
    model; a constant-λ collapse is no plateau."""
    def cell(key, d, lam, seed, layers, p1="P", phase2=True, protocol="faithful"):
        return {"run_id": f"faithful-{d}-x", "config_hash": key, "task": "assoc_recall", "distance": d,
                "lambda_target": lam, "seed": seed, "model": "routed", "protocol": protocol,
                "usage_per_layer": json.dumps(layers), "phase1_key": f"{p1}{seed}", "phase2_ran": phase2}
    faithful = pd.DataFrame([cell("a1", 254, 0.1, 0, [0.0, 0.996, 0.05, 0.0]),
                             cell("a5", 254, 0.5, 0, [0.0, 0.996, 0.0, 0.0]),
                             cell("b5", 254, 0.5, 2, [0.05, 0.0, 0.908, 0.0]),
                             cell("c1", 510, 0.1, 1, [0.999, 0.998, 0.0, 0.0], p1="Q", phase2=False),
                             cell("c5", 510, 0.5, 1, [0.999, 0.998, 0.0, 0.0], p1="Q", phase2=False),
                             cell("k", 254, 0.5, 0, [0.0, 0.0, 0.0, 0.0], protocol="faithful-constant")])
    two = point2(pd.DataFrame(), pd.DataFrame(), None, faithful)
    assert two.numbers == {"faithful_cells": 5, "faithful_plateaus": 3, "faithful_whole_layer": 2}
    assert two.summary == "faithful: MIXED (2 of 3 plateaus are one whole layer)"
    assert [l.split(":")[0] for l in two.lines] == ["faithful assoc_recall d=254", "faithful assoc_recall d=510"]
    assert two.lines[1].startswith("faithful assoc_recall d=510: 1 distinct learned-router model, 0 at a plateau")
