"""Audit point 4, the positional shortcut: does routing every layer's budget to the last positions
do as well as the learned decisions? Per tier for assoc_recall (groups of seeds), per solved model
for mqar (its seeds are bimodal), with the baselines and the fixed routers trained from scratch."""
from __future__ import annotations

import json

import pandas as pd

from suite.audit.common import (MARGIN, SOLVED, STORED_USAGE, SWAPS, Limits, budget_note, fmt_interval, group_protocols,
                                model_keys, plural)
from suite.audit.findings import Figures, Finding, Table, evidence, no_data
from suite.audit.points import TITLES
from suite.audit.regret import scratch_controls
from suite.audit.retrain import retrain_note
from suite.audit.routing import RoutingMode, mode_rules, routing_mode
from suite.run.protocol import FAITHFUL
from suite.schema.rows import ok_rows


def control_summary(controls: pd.DataFrame, task: str, control: str) -> pd.DataFrame:
    c = controls[(controls["task"] == task) & (controls["control"].isin(["learned", control]))]
    return c.groupby(["tier", "distance", "lambda_target", "control"])["accuracy"].mean().unstack("control")


def resistance_verdict(short: list[bool]) -> str:
    """mqar, solved groups: does the last-positions swap fall short of the learned router?"""
    return "RESISTS THE SHORTCUT" if all(short) else "DOES NOT RESIST" if not any(short) else "PARTLY RESISTS"


def swap_accuracies(acc: pd.Series) -> str:
    """One model's accuracy under its own decisions and under each swap it has, in a fixed order."""
    return ", ".join(f"{k} {acc[k]:.3f}" for k in ("learned",) + SWAPS if k in acc)


def usage_mode(per_layer, limits: Limits) -> RoutingMode:
    """The routing mode of one model (suite/audit/routing.py `routing_mode`), at the headline
    claim's published usage from the registry given."""
    return routing_mode([float(u) for u in per_layer], limits.published_usage)


def faithful_swap_lines(controls: pd.DataFrame, headline: pd.DataFrame, limits: Limits) -> list[str]:
    """Per faithful-size model with kept weights, every swap's accuracy; where it retrains a headline
    cell (same config hash), the two routing modes side by side, 'the same mode' only when the rules
    of `routing_mode` give both one label: its swaps speak for its own mode, not the headline's."""
    c = controls[controls["tier"] == "faithful"] if len(controls) else controls
    if c.empty:
        return []
    old = headline.set_index("config_hash") if len(headline) else pd.DataFrame()
    out = []
    for (key, seed), g in c.groupby(["config_hash", "seed"]):
        acc = g.set_index("control")["accuracy"]
        mine = g[g["control"] == "learned"].iloc[0]
        mode = usage_mode(json.loads(mine["usage_per_layer"]), limits)
        line = (f"faithful assoc_recall d={int(mine['distance'])} λ→{mine['lambda_target']:g}, seed {int(seed)} "
                f"(usage {mine['usage']:.4f}, {mode.describe()}): " + swap_accuracies(acc))
        if key in old.index:
            h = old.loc[key]
            theirs = usage_mode(json.loads(h["usage_per_layer"]), limits)
            line += (f"; the headline's run of this cell: accuracy {h['accuracy']:.4f}, usage {h['usage']:.4f} "
                     f"({theirs.describe()}), " + ("the same mode" if theirs.label == mode.label else "another mode"))
        out.append(line)
    return out


def mqar_model_lines(controls: pd.DataFrame) -> tuple[list[str], list[bool], dict]:
    """Every mqar model whose learned router solved it, with all its swaps: its seeds are bimodal (a seed
    learns the task or stays near chance), so a group mean hides the solved ones. Returns the lines, per
    solved model whether the last positions fall short of it, and per (distance, tier) the solved and
    analysed seed counts."""
    c = controls[controls["task"] == "mqar"] if len(controls) else controls
    lines, short, seeds = [], [], {}
    if c.empty:
        return lines, short, seeds
    for (key, seed), g in c.groupby(["config_hash", "seed"]):
        acc = g.set_index("control")["accuracy"]
        mine = g[g["control"] == "learned"]
        if mine.empty:
            continue
        mine = mine.iloc[0]
        place = (int(mine["distance"]), mine["tier"])
        solved, total = seeds.get(place, (0, 0))
        ok = acc["learned"] >= SOLVED
        seeds[place] = (solved + ok, total + 1)
        if not ok or "last" not in acc:
            continue
        short.append(bool(acc["last"] < acc["learned"] - MARGIN))
        note = budget_note(g["protocol"]) if "protocol" in g.columns else ""
        lines.append(f"mqar ({mine['tier']}, d={place[0]}, λ→{mine['lambda_target']:g}, seed {int(seed)}{note}; "
                     f"usage {mine['usage']:.4f}, solved): " + swap_accuracies(acc))
    return lines, short, seeds


def baseline_lines(runs: pd.DataFrame, task: str, solved_seeds: dict | None = None) -> list[str]:
    """The task's AttnOnly and ConvOnly cells per (distance, tier): if AttnOnly does not learn it
    either, an unsolved learned router says nothing about shortcuts there. `solved_seeds` maps
    (distance, tier) to the routed seeds that solved it and those analysed."""
    r = ok_rows(runs)
    if r.empty:
        return []
    r = r[(r["task"] == task) & r["model"].isin(("attn", "conv"))]
    out = []
    for (d, t), g in r.groupby(["distance", "tier"]):
        acc = {m: gm["accuracy"] for m, gm in g.groupby("model")}
        said = "; ".join(f"{'AttnOnly' if m == 'attn' else 'ConvOnly'} {fmt_interval('accuracy', a)}"
                         for m, a in sorted(acc.items()))
        unlearned = "attn" in acc and acc["attn"].mean() < SOLVED
        note = budget_note(g["protocol"]) if "protocol" in g.columns else ""
        k, n = (solved_seeds or {}).get((int(d), t), (0, 0))
        if unlearned and k:
            said += (f" — AttnOnly does not learn it in this budget (below {SOLVED}); the routed model does in {k} "
                     f"of {plural(n, 'seed')}")
        elif unlearned:
            said += (f" — AttnOnly does not learn it here either (below {SOLVED}), so this group cannot tell a "
                     "shortcut from key matching")
        out.append(f"{task} ({t}, d={int(d)}{note}) baselines: {said}")
    return out


def swap_table(controls: pd.DataFrame) -> Table:
    """Every decision swap per group: mean accuracy over seeds with the mean usage in brackets."""
    c = controls[controls["control"].isin(("learned",) + SWAPS)]
    g = c.groupby(["task", "distance", "tier", "lambda_target", "control"]).agg(
        accuracy=("accuracy", "mean"), usage=("usage", "mean"), seeds=("seed", "size")).reset_index()
    g["cell"] = [f"{a:.3f} ({u:.4f})" for a, u in zip(g["accuracy"], g["usage"])]
    wide = g.pivot_table(index=["task", "distance", "tier", "lambda_target"], columns="control", values="cell",
                         aggfunc="first")
    wide = wide[[k for k in ("learned",) + SWAPS if k in wide.columns]]
    seeds = g.groupby(["task", "distance", "tier", "lambda_target"])["seeds"].max()
    return Table.of(wide.assign(seeds=seeds).reset_index(), note=STORED_USAGE)


def _group_lines(controls: pd.DataFrame, runs: pd.DataFrame, headline: pd.DataFrame,
                 limits: Limits) -> tuple[list[str], dict, dict]:
    """Per (task, tier, distance) group of distinct models with a 'last' swap (λ targets sharing their
    phase-1 models count once), its line; per tier of assoc_recall, whether each solved group's
    last-positions swap matches the learned router, and its models."""
    learned = controls[controls["control"] == "learned"]
    learned = learned.assign(model_key=model_keys(learned, runs))
    keys = ["task", "tier", "distance", "lambda_target"]
    groups: dict = {}
    for task in ("assoc_recall", "mqar"):
        for (t, d, lam), r in control_summary(controls, task, "last").iterrows():
            if "last" in r:
                g = learned[(learned[keys] == pd.Series([task, t, d, lam], index=keys)).all(axis=1)]
                groups.setdefault((task, t, d, frozenset(g["model_key"])), []).append((lam, r, g))
    lines, shortcut, counted = [], {}, {}
    for (task, t, d, _), members in groups.items():
        lam, r, g = members[0]
        lams = " and ".join(f"λ→{x:g}" for x, _, _ in members) + (" (one phase-1 model per seed)" if len(members) > 1
                                                                 else "")
        solved, n, k = r["learned"] >= SOLVED, len(g), int((g["accuracy"] >= SOLVED).sum())
        note = budget_note(group_protocols(controls, task=task, tier=t, distance=d, lambda_target=lam))
        why = ("" if solved else f" (the learned router did not solve it: accuracy below {SOLVED})" if not k else
               f" (mean accuracy below {SOLVED}: {k} of {plural(n, 'seed')} solved it, "
               + ("each listed below)" if task == "mqar" else "the group does not count)"))
        retrain = retrain_note(g, headline, runs, limits) if t == "faithful" else ""
        lines.append(f"{task} ({t}, d={d}, {lams}, {plural(n, 'model')}{note}): learned {r['learned']:.3f}, the "
                     f"same budget at the last positions {r['last']:.3f}" + why + (f"; {retrain}" if retrain else ""))
        if solved and task == "assoc_recall":
            shortcut.setdefault(t, []).append(bool(r["last"] >= r["learned"] - MARGIN))
            counted[t] = counted.get(t, 0) + n
    return lines, shortcut, counted


#: why the `last` swap cannot answer the shortcut question on assoc_recall
LAST_IS_THE_QUERY = ("its query sits at the last position, so attention there is what key matching needs too: the "
                     "'last' swap cannot separate a positional shortcut from key matching")


def point4(controls: pd.DataFrame, runs: pd.DataFrame, limits: Limits,
           headline: pd.DataFrame | None = None) -> Finding:
    if controls.empty:
        return no_data(4, TITLES[4], "No routed model with kept weights has been analysed yet.")
    headline = headline if headline is not None else pd.DataFrame()
    lines, shortcut, counted = _group_lines(controls, runs, headline, limits)
    mqar_lines, resistant, solved_seeds = mqar_model_lines(controls)
    lines += faithful_swap_lines(controls, headline, limits)
    lines += mqar_lines
    lines += baseline_lines(runs, "mqar", solved_seeds)
    scratch = scratch_controls(runs)
    numbers, parts = {}, {}
    if len(scratch):
        for (task, d, t, ctl), g in scratch.groupby(["task", "distance", "tier", "router"]):
            note = budget_note(g["protocol"]) if "protocol" in g.columns else ""
            lines.append(f"{task} ({t}, d={d}{note}) {ctl} router trained from scratch: accuracy "
                         f"{fmt_interval('accuracy', g['accuracy'])}, usage {g['usage'].mean():.4f}")
            if task == "mqar" and ctl == "last":
                numbers["mqar_scratch_last_accuracy"] = float(g["accuracy"].mean())
    matched = [f"{sum(v)} of {plural(len(v), f'{t} solved group')}" for t, v in sorted(shortcut.items())]
    for t, v in sorted(shortcut.items()):
        parts[f"assoc_recall {t}"] = "CANNOT TELL"
        numbers.update({f"{t}_groups": len(v), f"{t}_groups_matched": sum(v), f"{t}_models": counted[t]})
    said = []
    if resistant:
        parts["mqar"] = resistance_verdict(resistant)
        numbers.update({"mqar_solved_models": len(resistant), "mqar_fall_short": sum(resistant)})
        scratch_last = numbers.get("mqar_scratch_last_accuracy")
        said.append(f"mqar: {parts['mqar']} (the last positions fall short in {sum(resistant)} of "
                    f"{plural(len(resistant), 'solved model')}"
                    + (f"; a `last` router trained from scratch reaches {scratch_last:.3f}" if scratch_last is not None
                       else "") + ")")
    if shortcut:
        said.append(f"assoc_recall: CANNOT TELL ({LAST_IS_THE_QUERY}; the last positions match the learned router in "
                    + ", ".join(matched) + ")")
    verdict = parts["mqar"] if resistant else "CANNOT TELL" if shortcut else "NO SOLVED MODEL"
    summary = "; ".join(said) or "NO SOLVED MODEL ANALYSED"
    intro = ("If routing every layer's budget to the last positions (decision swap 'last') does as well as the "
             "learned decisions, the learned router may have found a positional shortcut rather than key matching. "
             f"But on assoc_recall {LAST_IS_THE_QUERY}; its assoc_recall lines below are data, not a verdict. The question rests on "
             "mqar, which puts pairs and queries at random positions and draws keys and values from one range, so "
             "neither a position nor a token range gives the answer away (runs mqar-mini, mqar-learnable, "
             "mqar-controls). As in the original, no model has a positional encoding: AttnOnly has no direct way to "
             "tell which token sits right before a value (the routed model's conv branch does), and every cell trains "
             f"for the faithful budget (baselines at most {FAITHFUL.baseline_max_epochs} epochs of "
             f"{FAITHFUL.steps_per_epoch} steps) unless its line names another protocol. For mqar, whose seeds either "
             f"learn it or stay near chance, every model that solved it (accuracy ≥ {SOLVED}) counts, each with its "
             f"own swaps. Routing modes of the faithful models: {mode_rules(limits.published_usage)}.")
    note = ("Every decision swap, mean accuracy over seeds (usage in brackets); 'oracle' is attention exactly at "
            "each row's scored positions in every layer, which is not an upper bound once a model has several "
            "layers (an earlier layer may need attention elsewhere):")
    return Finding(point=4, title=TITLES[4], verdict=verdict, parts=parts, summary=summary, numbers=numbers,
                   evidence=evidence(controls) + evidence(scratch), intro=[intro], lines=lines, table_note=note,
                   table=swap_table(controls), figures=[Figures(key="controls", alt="decision swaps")])
