"""`python -m suite audit`: train the `audit` profile, swap the decisions of every routed model
that kept its weights, and answer the original's questionable points in AUDIT.md.

Seven other runs feed it when they exist under the same results folder: the `headline` run (the
faithful Routed lambda->0.5 at 126 over 8 seeds), the `curriculum` run (faithful-constant at 126),
the `battery-mini` run (the card's three tasks in the mini tier), the `mqar-mini` run
(shortcut-resistant recall at 254 / 510 in the mini tier), the `swaps-faithful` run (three
headline cells retrained with their weights kept, for decision swaps at faithful size) and the
`mqar-learnable` run (mqar at a short distance on a longer budget: models that did learn it) and
the `mqar-controls` run (the fixed routers trained from scratch in that same setting).
Each paragraph of AUDIT.md names the run it reads, its tier and its seeds, and any protocol other
than the faithful budget; whatever is missing is said to be missing.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from baselines import ModelConfig, build_model
from tasks import IGNORE, make_task

from suite.audit.routing import routing_analysis, whole_layer_test
from suite.audit.swaps import decision_swaps
from suite.pipeline.options import Command, add_run_options, open_executor
from suite.pipeline.reproduce import reproduce
from suite.run.devices import resolve_device
from suite.errors import ConfigError
from suite.figures import audit as figs
from suite.figures.style import style
from suite.judge.claims import check_claims, load_registry
from suite.judge.stats import interval, wilson
from suite.run.profiles import load_profile
from suite.run.protocol import FAITHFUL, get_protocol
from suite.run.store import ROUTING, RunStore, write_csv
from suite.schema.rows import ok_rows

AUDIT = "AUDIT.md"
CONTROLS, ANALYSIS = "controls.csv", "routing_analysis.csv"
#: the learned routers (the rest are fixed policies: trained-from-scratch controls)
LEARNED = ("gumbel", "threshold")
SCRATCH = ("last", "layer", "random")
SWAPS = ("random", "last", "oracle", "one_layer", "conv", "attn")
#: a group whose learned router reaches this mean accuracy has solved its task
SOLVED = 0.9
_HEADLINE = next(claim for claim in load_registry() if claim.id == "T1-r05-126")
#: the headline claim's usage threshold (claims.json: <= 0.5%), the bound of its low mode
PUBLISHED_USAGE = next(c.threshold for c in _HEADLINE.checks if c.metric == "usage")
#: the accuracy a seed needs to count as a success (the claim's 'success' check)
SUCCESS_ACCURACY = _HEADLINE.success.threshold
#: accuracy margin of "as good as": the regress rule's margin, doubled for seed noise in the mini tier
MARGIN = 0.02
#: the other runs the audit reads, by profile name
SOURCES = {"headline": "headline", "curriculum": "curriculum", "battery": "battery-mini", "mqar": "mqar-mini",
           "swaps": "swaps-faithful", "mqar-learnable": "mqar-learnable", "mqar-controls": "mqar-controls"}
#: the sources whose cells join the audit's own (swaps, routing analysis, regret, maps)
SWAP_SOURCES = ("battery", "mqar", "swaps", "mqar-learnable", "mqar-controls")


# -- finding runs -----------------------------------------------------------------------------------
def newest_run(results_dir: Path, profile: str) -> RunStore | None:
    """The newest complete run of a profile, else the newest unfinished one (partial data is still
    data; the paragraph that reads it says how many cells it holds)."""
    for complete in (True, False):
        runs = RunStore.of_profile(results_dir, profile, complete=complete)
        if runs:
            return runs[0]
    return None


def tier(row) -> str:
    return "faithful" if bool(row.get("faithful_model")) else "mini"


def budget_note(protocols) -> str:
    """', <name> protocol (<b> / <p> epochs)' for each protocol among `protocols` whose epoch budget is
    not the faithful one, so a row trained longer (or shorter) never reads as the original's."""
    key = ("steps_per_epoch", "baseline_max_epochs", "phase1_max_epochs", "phase2_epochs")
    faithful = tuple(getattr(FAITHFUL, k) for k in key)
    off = []
    for name in sorted({str(x) for x in protocols if isinstance(x, str) and x}):
        p = get_protocol(name)
        if tuple(getattr(p, k) for k in key) != faithful:
            off.append(f"{name} protocol: {p.baseline_max_epochs} baseline / {p.phase1_max_epochs} phase-1 epochs "
                       f"of {p.steps_per_epoch} steps")
    return "".join(f", {o}" for o in off)


def group_protocols(df: pd.DataFrame, **where) -> list:
    """The protocol names of the rows matching `where` (none where the table has no protocol column)."""
    if "protocol" not in df.columns or df.empty:
        return []
    mask = pd.Series(True, index=df.index)
    for k, v in where.items():
        mask &= df[k] == v
    return list(df.loc[mask, "protocol"].unique())


def router_of(row) -> str:
    r = row.get("router")
    return r if isinstance(r, str) and r else "gumbel"


# -- analysis of stored models ------------------------------------------------------------------------
def test_set(row, device):
    task = make_task(row["task"], **json.loads(row["task_params"]))
    bs = get_protocol(row["protocol"]).batch_size(task.seq_len)
    return task, [b.to(device) for b in task.fixed_set("test", int(row["seed"]), int(row["test_sequences"]), bs)]


def ident(row, source: RunStore) -> dict:
    return {"run_id": source.path.name, "config_hash": row["config_hash"], "task": row["task"],
            "distance": int(row["distance"]), "tier": tier(row), "router": router_of(row),
            "lambda_target": float(row["lambda_target"]), "seed": int(row["seed"]), "protocol": row["protocol"]}


def analyse_cell(row, source: RunStore, device) -> tuple[list[dict], dict]:
    """Decision swaps (learned routers only) and the routing analysis of one stored routed model."""
    ck = source.load_checkpoint(row["config_hash"])
    model = build_model("routed", ModelConfig.from_dict(ck["model_config"]))
    model.load_state_dict(ck["state"])
    model.to(device).eval()
    _, batches = test_set(row, device)
    base = ident(row, source)
    controls = []
    if router_of(row) in LEARNED:
        for c in decision_swaps(model, batches, seed=int(row["seed"])):
            controls.append({**base, **c, "usage_per_layer": json.dumps([round(u, 6) for u in c["usage_per_layer"]])})
    per_layer = json.loads(row["usage_per_layer"])
    analysis = {**base, "source": "weights", **routing_analysis(model, batches), **whole_layer_flat(per_layer)}
    return controls, analysis


def whole_layer_flat(per_layer) -> dict:
    w = whole_layer_test([float(u) for u in per_layer])
    return {"plateau": bool(w["plateau"]), "whole_layer": bool(w["whole_layer"]),
            "full_layers": json.dumps(list(w["full_layers"])), "label": w["label"]}


def analysis_from_rates(row, rates: pd.DataFrame, source: RunStore) -> dict | None:
    """The routing analysis of a cell whose weights were not kept, from its stored attention rates
    (routing.csv: per layer and position, the share of test sequences routed there). Exact for
    tasks whose scored positions are the same in every row; the any-layer recall needs the joint
    decisions and is left empty."""
    task = make_task(row["task"], **json.loads(row["task_params"]))
    b = task.sample(1, torch.Generator().manual_seed(0))
    if (b.targets == IGNORE).any():
        return None
    scored = [int(p) for p in b.positions]
    grid = rates.pivot_table(index="layer", columns="position", values="attention_rate", aggfunc="mean")
    out = {**ident(row, source), "source": "rates"}
    total = hits = 0.0
    for layer, r in grid.iterrows():
        at = float(r.reindex(scored).fillna(0).sum())
        all_ = float(r.sum())
        out[f"usage_layer_{int(layer)}"] = all_ / len(r)
        out[f"precision_layer_{int(layer)}"] = at / all_ if all_ > 0 else math.nan
        out[f"recall_layer_{int(layer)}"] = at / len(scored)
        out[f"attention_positions_per_sequence_layer_{int(layer)}"] = all_
        total, hits = total + all_, hits + at
    out["usage"] = total / grid.size
    out["precision_any"] = out["recall_any"] = math.nan
    out["query_share"] = hits / total if total > 0 else math.nan
    out.update(whole_layer_flat(json.loads(row["usage_per_layer"])))
    return out


def analyse(store: RunStore, sources: list[RunStore], device, progress: bool = True) -> None:
    """controls.csv and routing_analysis.csv in the audit run: every routed cell of every source,
    from its weights if kept, else from its stored rates. One cell at a time, each written at
    once, so an interruption loses at most the cell in hand and a rerun continues."""
    controls, analysis = store.table(CONTROLS), store.table(ANALYSIS)
    done = set(zip(analysis["run_id"], analysis["config_hash"])) if len(analysis) else set()
    todo = []
    for source in sources:
        runs = ok_rows(source.runs())
        if runs.empty:
            continue
        for _, row in runs[runs["model"] == "routed"].iterrows():
            if (source.path.name, row["config_hash"]) not in done:
                todo.append((source, row))
    rates_by_run = {}
    for source, row in tqdm(todo, desc="audit analysis", unit="cell", disable=not progress, dynamic_ncols=True):
        if source.model_path(row["config_hash"]).is_file():
            c, a = analyse_cell(row, source, device)
        else:
            if source.path.name not in rates_by_run:
                rates_by_run[source.path.name] = source.table(ROUTING)
            rates = rates_by_run[source.path.name]
            rates = rates[rates["config_hash"] == row["config_hash"]] if len(rates) else rates
            c, a = [], (analysis_from_rates(row, rates, source) if len(rates) else None)
        if c:
            controls = pd.concat([controls, pd.DataFrame(c)], ignore_index=True)
            write_csv(store.path / CONTROLS, controls)
        if a is not None:
            analysis = pd.concat([analysis, pd.DataFrame([a])], ignore_index=True)
            write_csv(store.path / ANALYSIS, analysis)


# -- router regret ------------------------------------------------------------------------------------
GROUP = ["task", "distance", "tier"]


def scratch_controls(runs: pd.DataFrame) -> pd.DataFrame:
    """Trained-from-scratch control cells (fixed routers) as control rows named 'trained: <router>'."""
    if runs.empty:
        return runs
    r = runs[(runs["model"] == "routed")].copy()
    r["router"] = [router_of(x) for x in r.to_dict("records")]
    r = r[r["router"].isin(SCRATCH)]
    r["tier"] = [tier(x) for x in r.to_dict("records")]
    r["control"] = "trained: " + r["router"]
    return r


def regret(controls: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per learned cell group (task, distance, tier, lambda): the learned router's mean accuracy
    and executed MACs against the best control whose mean usage is at most the learned one's
    (decision swaps of the same models, and routers trained from scratch on the same task)."""
    if controls.empty:
        return pd.DataFrame()
    learned = controls[controls["control"] == "learned"]
    cols = ["accuracy", "usage", "macs_forward_executed"]
    swaps = controls[controls["control"].isin(SWAPS)]
    scratch = scratch_controls(runs)
    out = []
    for key, g in learned.groupby(GROUP + ["lambda_target", "router"]):
        task, distance, t, lam, router = key
        mean = g[cols].mean()
        same = (swaps["task"] == task) & (swaps["distance"] == distance) & (swaps["tier"] == t) \
            & (swaps["lambda_target"] == lam) & (swaps["router"] == router)
        cands = swaps[same].groupby("control")[cols].mean()
        if len(scratch):
            s = scratch[(scratch["task"] == task) & (scratch["distance"] == distance) & (scratch["tier"] == t)]
            cands = pd.concat([cands, s.groupby("control")[cols].mean()])
        within = cands[cands["usage"] <= mean["usage"] + 1e-9]
        row = {"task": task, "distance": int(distance), "tier": t, "router": router, "lambda_target": lam,
               "seeds": len(g), "learned_accuracy": mean["accuracy"], "learned_usage": mean["usage"],
               "learned_macs": mean["macs_forward_executed"]}
        if "protocol" in g.columns:
            row["protocol"] = "+".join(sorted(map(str, g["protocol"].unique())))
        if len(within):
            best = within.sort_values(["accuracy", "macs_forward_executed"], ascending=[False, True]).iloc[0]
            row.update({"best_control": best.name, "control_accuracy": best["accuracy"],
                        "control_usage": best["usage"], "control_macs": best["macs_forward_executed"],
                        "accuracy_regret": best["accuracy"] - mean["accuracy"],
                        "macs_ratio": mean["macs_forward_executed"] / best["macs_forward_executed"]})
            row["verdict"] = ("LEARNED BETTER" if mean["accuracy"] > best["accuracy"] + MARGIN else
                              "CONTROL BETTER" if best["accuracy"] > mean["accuracy"] + MARGIN else
                              # equal at chance is no tie between two solutions
                              "NEITHER SOLVES" if max(mean["accuracy"], best["accuracy"]) < SOLVED else "TIE")
        else:
            row["verdict"] = "NO CONTROL AT THIS BUDGET"
        out.append(row)
    return pd.DataFrame(out)


# -- the report ------------------------------------------------------------------------------------
def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"


def fmt_interval(metric, values) -> str:
    iv = interval(metric, values)
    if iv is None:
        return "n/a"
    return f"{iv.mean:.4f} [{iv.low:.4f}, {iv.high:.4f}] ({iv.kind})"


def headline_rows(runs: pd.DataFrame) -> pd.DataFrame:
    r = ok_rows(runs)
    if r.empty:
        return r
    return r[(r["model"] == "routed") & (r["task"] == "assoc_recall") & (r["distance"] == 126)
             & (r["protocol"] == "faithful") & (r["lambda_target"] == 0.5)].sort_values("seed")


def baseline_rows(source: RunStore | None) -> pd.DataFrame:
    """A run's AttnOnly and ConvOnly cells (the headline's join the faithful Pareto figure)."""
    r = ok_rows(source.runs()) if source is not None else pd.DataFrame()
    return r[r["model"].isin(("attn", "conv"))] if len(r) else r


def fig_link(paths, title: str) -> str:
    png = [p for p in paths if str(p).endswith(".png")]
    return "\n\n".join(f"![{title}](figures/{Path(p).name})" for p in png) if png else "(figure not drawn: no data)"


def point1(headline: pd.DataFrame, out: Path) -> tuple[str, str]:
    if headline.empty:
        return "NO DATA", "The headline run has no finished routed cell yet."
    n, e, l = headline["savings_notional"], headline["savings_executed"], headline["savings_latency"]
    ni, ei = interval("savings_notional", n), interval("savings_executed", e)
    verdict = ("NOTIONAL OVERSTATES" if ei is not None and ni is not None and ei.high < ni.low else
               "CONSISTENT" if ei is not None and ni is not None and ei.low <= ni.mean <= ei.high else "UNDECIDED")
    text = (f"Over {len(headline)} seeds of the faithful Routed λ→0.5 at distance 126, the notional savings "
            f"(1 − usage, as published) are {fmt_interval('savings_notional', n)}; the executed forward FLOPs "
            f"saved against AttnOnly (counted by FlopCounterMode under the model's own gates, router and "
            f"conv included, sparse execution) are {fmt_interval('savings_executed', e)}; measured latency "
            f"savings {fmt_interval('savings_latency', l)}. Per seed (notional / executed): "
            + ", ".join(f"seed {int(s)}: {a:.4f} / {b:.4f}" for s, a, b in zip(headline["seed"], n, e)) + ". "
            "The original computes both branches densely, so what it actually executed saved nothing; the "
            "executed reading is what a sparse implementation of the same decisions would save at best. "
            + fig_link(figs.savings_readings(headline, out), "savings readings"))
    return verdict, text


def point2(headline: pd.DataFrame, analysis: pd.DataFrame, runs: pd.DataFrame, out: Path) -> tuple[str, str]:
    rows = []
    for _, r in headline.iterrows():
        rows.append({"run": "headline", "tier": "faithful", "task": r["task"], "distance": int(r["distance"]),
                     "lambda_target": r["lambda_target"], "seed": int(r["seed"]),
                     **whole_layer_flat(json.loads(r["usage_per_layer"]))})
    if len(analysis):
        # the headline's cells are read above; a retrain of one (swaps-faithful) is the same cell
        a = analysis[~analysis["config_hash"].isin(set(headline.get("config_hash", [])))]
        for _, r in a.iterrows():
            rows.append({"run": r["run_id"], "tier": r["tier"], "task": r["task"], "distance": int(r["distance"]),
                         "lambda_target": r["lambda_target"], "seed": int(r["seed"]),
                         "plateau": bool(r["plateau"]), "whole_layer": bool(r["whole_layer"]), "label": r["label"]})
    df = pd.DataFrame(rows)
    if df.empty:
        return "NO DATA", "No routed cell has been analysed yet."
    verdicts = []
    for t in ("faithful", "mini"):
        sub = df[df["tier"] == t]
        if len(sub):
            verdicts.append(f"{t}: {plateau_verdict(sub)}")
    verdict = "; ".join(verdicts)
    by = df.groupby(["tier", "task", "distance"]).agg(cells=("seed", "size"), plateaus=("plateau", "sum"),
                                                       whole=("whole_layer", "sum")).reset_index()
    lines = [f"- {r.tier} {r.task} d={r.distance}: {r.cells} routed cells, {r.plateaus} at a plateau near "
             f"1/n_layers, {r.whole} of them one layer routing ≥ 95% of its positions" for r in by.itertuples()]
    routed = ok_rows(runs)
    if len(routed):
        mini = pd.Series([tier(x) == "mini" for x in routed.to_dict("records")], index=routed.index, dtype=bool)
        routed = routed[(routed["model"] == "routed") & mini]
    paths = figs.per_layer_usage(headline, out, name="audit_layers_headline") if len(headline) else []
    paths += figs.per_layer_usage(routed, out, name="audit_layers_mini") if len(routed) else []
    text = ("A usage near 1/n_layers (within 20% of it) is called a plateau; it is 'one whole layer' when exactly "
            "one layer routes at least 95% of its positions (suite/audit/routing.py `whole_layer_test`).\n\n"
            + "\n".join(lines) + "\n\n" + fig_link(paths, "per-layer usage"))
    return verdict, text


def plateau_verdict(df: pd.DataFrame) -> str:
    plateau = df[df["plateau"]]
    whole = plateau[plateau["whole_layer"]]
    if plateau.empty:
        return f"NO PLATEAU in {len(df)} cells"
    if len(whole) == len(plateau):
        return f"ONE WHOLE LAYER ({len(whole)} of {len(plateau)} plateaus)"
    if len(whole) == 0:
        return f"SPREAD OVER LAYERS ({len(plateau)} plateaus)"
    return f"MIXED ({len(whole)} of {len(plateau)} plateaus are one whole layer)"


def point3(headline: pd.DataFrame, headline_store: RunStore | None, out: Path) -> tuple[str, str]:
    if headline.empty:
        return "NO DATA", "The headline run has no finished routed cell yet."
    claims = check_claims(headline_store.runs(), headline_store.manifest()["profile"], load_registry())
    row = claims[claims["claim_id"] == "T1-r05-126"].iloc[0]
    ok = ((headline["accuracy"] >= SUCCESS_ACCURACY) & (headline["usage"] <= PUBLISHED_USAGE)).sum()
    lo, hi = wilson(int(ok), len(headline))
    modes = "bimodal" if headline["usage"].min() <= 0.005 and headline["usage"].max() >= 0.2 else "one mode"
    per_seed = "; ".join(f"seed {int(r.seed)}: accuracy {r.accuracy:.4f}, usage {r.usage:.4f} "
                         f"(layers {', '.join(f'{float(u):.3f}' for u in json.loads(r.usage_per_layer))})"
                         for r in headline.itertuples())
    text = (f"T1-r05-126 ('100% accuracy at 0.3% usage'), read as the typical outcome over seeds: **{row['verdict']}** "
            f"({row['details']}). Per seed: {per_seed}. Mean accuracy {fmt_interval('accuracy', headline['accuracy'])}; "
            f"mean usage {fmt_interval('usage', headline['usage'])}. Usage over seeds is {modes}. "
            f"Seeds meeting the published outcome (accuracy ≥ {SUCCESS_ACCURACY:g} and usage ≤ "
            f"{PUBLISHED_USAGE:.1%}): {ok}/{len(headline)}, "
            f"Wilson 95% [{lo:.2f}, {hi:.2f}]; the achievable reading (at least one seed) is {row['achievable']}. "
            f"Run: {headline_store.path.name} ({headline_store.manifest().get('status')}). "
            + fig_link(figs.seed_strip(headline, out), "seeds"))
    return f"T1-r05-126 {row['verdict']} ({len(headline)} seeds, {modes})", text


def control_summary(controls: pd.DataFrame, task: str, control: str) -> pd.DataFrame:
    c = controls[(controls["task"] == task) & (controls["control"].isin(["learned", control]))]
    return c.groupby(["tier", "distance", "lambda_target", "control"])["accuracy"].mean().unstack("control")


def shortcut_verdict(same: list[bool]) -> str:
    return "SHORTCUT CONFIRMED" if all(same) else "NOT CONFIRMED" if not any(same) else "PARTLY CONFIRMED"


def resistance_verdict(short: list[bool]) -> str:
    """mqar, solved groups: does the last-positions swap fall short of the learned router?"""
    return "RESISTS THE SHORTCUT" if all(short) else "DOES NOT RESIST" if not any(short) else "PARTLY RESISTS"


def point4(controls: pd.DataFrame, runs: pd.DataFrame, out: Path,
           headline: pd.DataFrame | None = None) -> tuple[str, str]:
    if controls.empty:
        return "NO DATA", "No routed model with kept weights has been analysed yet."
    lines, shortcut, counted = [], {}, {}
    learned = controls[controls["control"] == "learned"]
    keys = ["task", "tier", "distance", "lambda_target"]
    models = learned.groupby(keys).size()
    solved_models = learned[learned["accuracy"] >= SOLVED].groupby(keys).size()
    for task in ("assoc_recall", "mqar"):
        s = control_summary(controls, task, "last")
        for (t, d, lam), r in s.iterrows():
            if "last" not in r:
                continue
            solved = r["learned"] >= SOLVED
            n = int(models.get((task, t, d, lam), 0))
            note = budget_note(group_protocols(controls, task=task, tier=t, distance=d, lambda_target=lam))
            k = int(solved_models.get((task, t, d, lam), 0))
            why = ("" if solved else f" (the learned router did not solve it: accuracy below {SOLVED})" if not k else
                   f" (mean accuracy below {SOLVED}: {k} of {plural(n, 'seed')} solved it, "
                   + ("each listed below)" if task == "mqar" else "the group does not count)"))
            lines.append(f"- {task} ({t}, d={d}, λ→{lam:g}, {plural(n, 'model')}{note}): learned {r['learned']:.3f}, the "
                         f"same budget at the last positions {r['last']:.3f}" + why)
            if solved and task == "assoc_recall":
                shortcut.setdefault(t, []).append(r["last"] >= r["learned"] - MARGIN)
                counted[t] = counted.get(t, 0) + n
    mqar_lines, resistant, solved_seeds = mqar_model_lines(controls)
    lines += faithful_swap_lines(controls, headline if headline is not None else pd.DataFrame())
    lines += mqar_lines
    lines += baseline_lines(runs, "mqar", solved_seeds)
    scratch = scratch_controls(runs)
    if len(scratch):
        for (task, d, t, ctl), g in scratch.groupby(["task", "distance", "tier", "router"]):
            note = budget_note(g["protocol"]) if "protocol" in g.columns else ""
            lines.append(f"- {task} ({t}, d={d}{note}) {ctl} router trained from scratch: accuracy "
                         f"{fmt_interval('accuracy', g['accuracy'])}, usage {g['usage'].mean():.4f}")
    parts = [f"assoc_recall, {t}: the last positions match the learned router in {sum(v)} of {len(v)} solved groups"
             for t, v in sorted(shortcut.items())]
    if resistant:
        parts.append(f"mqar: the last positions fall short of the learned router in {sum(resistant)} of "
                     f"{plural(len(resistant), 'solved model')}")
    if shortcut:
        verdict = "; ".join(f"{t}: {shortcut_verdict(v)} ({plural(len(v), 'group')}, {plural(counted[t], 'model')})"
                            for t, v in sorted(shortcut.items()))
    else:
        verdict = "NO SOLVED assoc_recall MODEL ANALYSED"
    if resistant:
        verdict += (f"; mqar: {resistance_verdict(resistant)} (the last positions fall short in {sum(resistant)} of "
                    f"{plural(len(resistant), 'solved model')})")
    text = ("If routing every layer's budget to the last positions (decision swap 'last') does as well as the "
            "learned decisions, the learned router has found the task's positional shortcut, not key matching. "
            "mqar puts pairs and queries at random positions and draws keys and values from one range, so "
            "neither a position nor a token range gives the answer away. As in the original, no model has a "
            "positional encoding: AttnOnly has no direct way to tell which token sits right before a value (the "
            "routed model's conv branch does), and every cell trains for the faithful budget (baselines at most "
            f"{FAITHFUL.baseline_max_epochs} epochs of {FAITHFUL.steps_per_epoch} steps) unless its line names "
            "another protocol. Only groups whose learned "
            f"router solved the task (mean accuracy ≥ {SOLVED}) count toward the verdict; for mqar, whose seeds "
            "either learn it or stay near chance, every model that solved it (accuracy ≥ "
            f"{SOLVED}) counts, each with its own swaps"
            + (f" ({'; '.join(parts)})" if parts else "") + ".\n\n" + "\n".join(lines) + "\n\n"
            + "Every decision swap, mean accuracy over seeds (usage in brackets); 'oracle' is attention exactly at "
            "each row's scored positions in every layer, which is not an upper bound once a model has several "
            "layers (an earlier layer may need attention elsewhere):\n\n" + swap_table(controls) + "\n\n"
            + fig_link(figs.controls_bars(controls[controls["control"].isin(("learned",) + SWAPS)], out),
                       "decision swaps"))
    return verdict, text


def swap_accuracies(acc: pd.Series) -> str:
    """One model's accuracy under its own decisions and under each swap it has, in a fixed order."""
    return ", ".join(f"{k} {acc[k]:.3f}" for k in ("learned",) + SWAPS if k in acc)


def usage_mode(usage: float, per_layer) -> str:
    """The headline's three outcomes: the published usage, one whole layer, or positions spread."""
    if usage <= PUBLISHED_USAGE:
        return f"≤ {PUBLISHED_USAGE:.1%}"
    return "one whole layer" if whole_layer_flat(per_layer)["whole_layer"] else "spread over layers"


def faithful_swap_lines(controls: pd.DataFrame, headline: pd.DataFrame) -> list[str]:
    """Per faithful-size model with kept weights, every swap's accuracy; where it retrains a headline
    cell (same config hash), the two outcomes side by side: on another CPU a seed may land in another
    usage mode, and its swaps then speak for that mode."""
    c = controls[controls["tier"] == "faithful"] if len(controls) else controls
    if c.empty:
        return []
    old = headline.set_index("config_hash") if len(headline) else pd.DataFrame()
    out = []
    for (key, seed), g in c.groupby(["config_hash", "seed"]):
        acc = g.set_index("control")["accuracy"]
        mine = g[g["control"] == "learned"].iloc[0]
        per_layer = json.loads(mine["usage_per_layer"])
        line = (f"- faithful assoc_recall d={int(mine['distance'])} λ→{mine['lambda_target']:g}, seed {int(seed)} "
                f"(usage {mine['usage']:.4f}, {usage_mode(mine['usage'], per_layer)}): "
                + swap_accuracies(acc))
        if key in old.index:
            h = old.loc[key]
            same = usage_mode(h["usage"], json.loads(h["usage_per_layer"])) == usage_mode(mine["usage"], per_layer)
            line += (f"; the headline's run of this cell: accuracy {h['accuracy']:.4f}, usage {h['usage']:.4f} "
                     f"({usage_mode(h['usage'], json.loads(h['usage_per_layer']))}), "
                     + ("the same mode" if same else "another mode"))
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
        lines.append(f"- mqar ({mine['tier']}, d={place[0]}, λ→{mine['lambda_target']:g}, seed {int(seed)}{note}; "
                     f"usage {mine['usage']:.4f}, solved): "
                     + swap_accuracies(acc))
    return lines, short, seeds


def baseline_lines(runs: pd.DataFrame, task: str, solved_seeds: dict | None = None) -> list[str]:
    """The task's AttnOnly and ConvOnly cells per (distance, tier): if AttnOnly does not learn it
    either, an unsolved learned router says nothing about shortcuts there. `solved_seeds` maps
    (distance, tier) to the routed seeds that solved it and those analysed."""
    r = ok_rows(runs)
    if r.empty:
        return []
    r = r[(r["task"] == task) & r["model"].isin(("attn", "conv"))]
    r = r.assign(tier=[tier(x) for x in r.to_dict("records")])
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
        out.append(f"- {task} ({t}, d={int(d)}{note}) baselines: {said}")
    return out


def swap_table(controls: pd.DataFrame) -> str:
    c = controls[controls["control"].isin(("learned",) + SWAPS)]
    g = c.groupby(["task", "distance", "tier", "lambda_target", "control"]).agg(
        accuracy=("accuracy", "mean"), usage=("usage", "mean"), seeds=("seed", "size")).reset_index()
    g["cell"] = [f"{a:.3f} ({u:.4f})" for a, u in zip(g["accuracy"], g["usage"])]
    wide = g.pivot_table(index=["task", "distance", "tier", "lambda_target"], columns="control", values="cell",
                         aggfunc="first")
    wide = wide[[k for k in ("learned",) + SWAPS if k in wide.columns]]
    seeds = g.groupby(["task", "distance", "tier", "lambda_target"])["seeds"].max()
    return wide.assign(seeds=seeds).reset_index().to_markdown(index=False)


def precision_table(analysis: pd.DataFrame) -> str:
    """The router's precision and recall against the scored (query) positions, mean over seeds."""
    a = analysis[analysis["source"] == "weights"] if len(analysis) else analysis
    if a.empty:
        return "No routed model with kept weights analysed yet."
    layer_cols = sorted(c for c in a.columns if c.startswith(("precision_layer_", "recall_layer_")))
    cols = ["usage", "precision_any", "recall_any", "query_share"] + layer_cols
    g = a.groupby(["task", "distance", "tier", "router", "lambda_target"])
    out = g[cols].mean().assign(seeds=g.size()).reset_index()
    return out.to_markdown(index=False, floatfmt=".3f")


def point5(headline: pd.DataFrame, analysis: pd.DataFrame, out: Path) -> tuple[str, str]:
    a = analysis[analysis["config_hash"].isin(set(headline["config_hash"]))
                 & analysis["run_id"].isin(set(headline["run_id"]))] if len(analysis) and len(headline) \
        else pd.DataFrame()
    if a.empty:
        return "NO DATA", "The headline cells have not been analysed yet."
    cols = sorted(c for c in a.columns if c.startswith("attention_positions_per_sequence_layer_"))
    lines, below = [], []
    T = int(headline["seq_len"].iloc[0])
    L = len(cols)
    for _, r in a.sort_values("seed").iterrows():
        counts = [float(r[c]) for c in cols]
        lines.append(f"- seed {int(r['seed'])}: usage {r['usage']:.4f} = {sum(counts):.2f} attention positions per "
                     f"sequence over {L} layers (per layer: {', '.join(f'{c:.2f}' for c in counts)}); share at the "
                     f"query (scored) position {r['query_share']:.3f}")
        below.append(sum(1 for c in counts if c < 0.5) > 0 and r["usage"] < 1 / T)
    verdict = (f"{sum(below)} of {len(below)} seeds attend in fewer layers than they have: usage below 1/T = "
               f"{1 / T:.4f} (one query per layer) is possible only by skipping layers")
    text = (f"One routed position in one of {L} layers of a {T}-token sequence is usage 1/({T}·{L}) = "
            f"{1 / (T * L):.4%}; one query per layer is 1/{T} = {1 / T:.2%}. Counts below are the mean attention "
            "positions per test sequence in each layer.\n\n" + "\n".join(lines) + "\n\n"
            + fig_link(figs.attention_counts(a, out), "attention positions per sequence"))
    return verdict, text


def point6(table: pd.DataFrame, controls: pd.DataFrame, runs: pd.DataFrame, out: Path) -> tuple[str, str]:
    if table.empty:
        return "NO DATA", "No learned routed model has been analysed yet."
    lines = []
    for r in table.itertuples():
        note = budget_note(str(getattr(r, "protocol", "")).split("+"))
        if r.verdict == "NO CONTROL AT THIS BUDGET":
            lines.append(f"- {r.task} ({r.tier}, d={r.distance}, λ→{r.lambda_target:g}, {plural(r.seeds, 'seed')}"
                         f"{note}): no control at or below usage {r.learned_usage:.4f}")
            continue
        lines.append(f"- {r.task} ({r.tier}, d={r.distance}, λ→{r.lambda_target:g}, {plural(r.seeds, 'seed')}{note}): learned "
                     f"accuracy {r.learned_accuracy:.3f} at usage {r.learned_usage:.4f} and "
                     f"{r.learned_macs / 1e6:.2f} MMAC; best control '{r.best_control}' {r.control_accuracy:.3f} at "
                     f"usage {r.control_usage:.4f} and {r.control_macs / 1e6:.2f} MMAC: regret "
                     f"{r.accuracy_regret:+.3f}, MACs ratio {r.macs_ratio:.3f} -> {r.verdict}")
    counts = table["verdict"].value_counts()
    verdict = ", ".join(f"{k} {v}" for k, v in counts.items())
    paths = []
    for (task, d, t), _ in table.groupby(["task", "distance", "tier"]):
        points = pareto_points(controls, runs, task, d, t)
        if len(points):
            paths += figs.pareto_audit(points, out, name=f"audit_pareto_{task}_{d}_{t}",
                                       title=f"{task} d={d} ({t} tier)")
    text = ("Router regret: the learned router's mean accuracy and executed forward MACs against the best control "
            "whose mean usage is at most the learned one's (decision swaps of the same trained models, and fixed "
            f"routers trained from scratch on the same task). 'TIE' means within ±{MARGIN} accuracy; 'NEITHER "
            f"SOLVES' means within it but both below {SOLVED}, where equal accuracy says nothing about routing."
            + ("" if (controls["tier"] == "faithful").any() else
               " No faithful-size model kept its weights (the headline profile does not save them), so no "
               "faithful model has decision swaps and every row here is a mini-tier model; the faithful-size "
               "swaps are in `paper`.") + "\n\n"
            + "\n".join(lines) + "\n\n" + (fig_link(paths, "accuracy against executed MACs") if paths else ""))
    return verdict, text


def pareto_points(controls: pd.DataFrame, runs: pd.DataFrame, task, distance, t) -> pd.DataFrame:
    """Every series on one (task, distance, tier): the λ sweep, AttnOnly, ConvOnly, swaps (of the
    λ→0.5 models) and trained controls; one point per seed."""
    r = ok_rows(runs)
    pts = []
    if len(r):
        r = r[(r["task"] == task) & (r["distance"] == distance)]
        r = r[[tier(x) == t for x in r.to_dict("records")]]
        for _, x in r.iterrows():
            if x["model"] == "attn":
                name = "AttnOnly"
            elif x["model"] == "conv":
                name = "ConvOnly"
            elif router_of(x) in LEARNED:
                name = f"Routed {router_of(x)} λ→{x['lambda_target']:g}" if router_of(x) != "gumbel" \
                    else f"Routed λ→{x['lambda_target']:g}"
            else:
                name = f"trained: {router_of(x)}"
            pts.append({"series": name, "accuracy": x["accuracy"], "macs_forward_executed": x["macs_forward_executed"],
                        "seed": x["seed"]})
    c = controls[(controls["task"] == task) & (controls["distance"] == distance) & (controls["tier"] == t)
                 & (controls["lambda_target"] == 0.5) & controls["control"].isin(SWAPS)] if len(controls) else controls
    for _, x in c.iterrows():
        pts.append({"series": f"swap: {x['control']}", "accuracy": x["accuracy"],
                    "macs_forward_executed": x["macs_forward_executed"], "seed": x["seed"]})
    return pd.DataFrame(pts).drop_duplicates() if pts else pd.DataFrame()


def curriculum_text(headline: pd.DataFrame, curriculum: RunStore | None) -> str:
    if curriculum is None:
        return "The `curriculum` run (faithful-constant λ0.5 at 126) has not been run yet."
    c = ok_rows(curriculum.runs())
    c = c[(c["protocol"] == "faithful-constant")] if len(c) else c
    if c.empty:
        return f"The curriculum run {curriculum.path.name} has no finished cell yet."
    claims = check_claims(curriculum.runs(), curriculum.manifest()["profile"], load_registry())
    v = claims[claims["claim_id"] == "T2-const05-126"]
    verdict = f"**T2-const05-126 ('λ = 0.5 from the first step fails at 126'): {v['verdict'].iloc[0]}** " \
        f"({v['details'].iloc[0]}). " if len(v) else ""
    return verdict + (f"At 126, faithful size: λ=0.5 from the first step ({len(c)} seeds, run {curriculum.path.name}) reaches "
            f"accuracy {fmt_interval('accuracy', c['accuracy'])}; the ramp (headline, {len(headline)} seeds) "
            f"{fmt_interval('accuracy', headline['accuracy']) if len(headline) else 'n/a'}. Per seed (constant): "
            + ", ".join(f"seed {int(s)}: {a:.3f}" for s, a in zip(c["seed"], c["accuracy"])) + ".")



def battery_table(runs: pd.DataFrame, what: str = "The battery run") -> str:
    """Per (task, distance, series): seeds, mean accuracy with its 95% interval, the per-seed range
    (bimodal seeds show there), mean usage and the task's chance level."""
    r = ok_rows(runs)
    if r.empty:
        return f"{what} has no finished cell yet."
    r = r.assign(series=[("Routed λ→%g" % x["lambda_target"]) if x["model"] == "routed" else
                         {"attn": "AttnOnly", "conv": "ConvOnly"}[x["model"]] for x in r.to_dict("records")])
    rows = []
    for (task, d, series), g in r.groupby(["task", "distance", "series"]):
        iv = interval("accuracy", g["accuracy"], g["test_correct"], g["test_total"])
        chance = make_task(task, **json.loads(g["task_params"].iloc[0])).chance
        rows.append({"task": task, "distance": int(d), "series": series, "seeds": len(g),
                     "accuracy [95%]": f"{iv.mean:.3f} [{iv.low:.3f}, {iv.high:.3f}]",
                     "per-seed range": f"{g['accuracy'].min():.3f}-{g['accuracy'].max():.3f}",
                     "usage": f"{g['usage'].mean():.3f}", "chance": f"{chance:.4f}",
                     "phase 2 ran": (f"{int(g['phase2_ran'].astype(bool).sum())}/{len(g)}"
                                     if series.startswith("Routed") else "")})
    return (pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True) + "\n\nChance is each task's "
            "stated level (its docstring in tasks/). 'phase 2 ran' counts the routed seeds whose phase 1 solved the "
            "task; the others report their phase-1 result (the original's rule), which λ→0.1 and λ→0.5 share. For mqar it is a uniform guess among the sequence's own values; "
            "a model that has not learned which tokens are values scores below it (about 1/200 over the symbol range).")


def all_routing_maps(stores: list[RunStore], out: Path) -> list[Path]:
    """One routing-map figure per (run, task, distance, lambda) group of learned-router cells: every seed."""
    paths = []
    for source in stores:
        runs, routing = ok_rows(source.runs()), source.table(ROUTING)
        if runs.empty or routing.empty:
            continue
        learned = pd.Series([router_of(x) in LEARNED for x in runs.to_dict("records")], index=runs.index)
        runs = runs[(runs["model"] == "routed") & learned]
        for (task, d, lam), g in runs.groupby(["task", "distance", "lambda_target"]):
            r = routing[routing["config_hash"].isin(set(g["config_hash"]))]
            stem = f"audit_maps_{source.manifest()['profile']['name']}_{task}_{int(d)}_l{lam:g}"
            paths += figs.routing_maps(r, g, out, name=stem)
    return paths


def write_audit(store: RunStore, results_dir: Path) -> Path:
    out = store.path / "figures"
    out.mkdir(exist_ok=True)
    found = {k: newest_run(results_dir, p) for k, p in SOURCES.items()}
    headline_store = found["headline"]
    headline = headline_rows(headline_store.runs()) if headline_store else pd.DataFrame()
    controls, analysis = store.table(CONTROLS), store.table(ANALYSIS)
    swapped = [found[k] for k in SWAP_SOURCES if found[k] is not None]
    runs = pd.concat([s.runs() for s in [store, *swapped]], ignore_index=True)
    runs = runs.drop_duplicates("config_hash") if len(runs) else runs
    table = regret(controls, runs)
    if len(table):
        write_csv(store.path / "regret.csv", table)
    with style():
        answers = [
            ("1. Notional against executed savings", *point1(headline, out)),
            ("2. Is the 25% floor one whole layer?", *point2(headline, analysis, runs, out)),
            ("3. Seed variance", *point3(headline, headline_store, out)),
            ("4. The positional shortcut", *point4(controls, runs, out, headline)),
            ("5. 0.3% against one query per layer", *point5(headline, analysis, out)),
            ("6. Does the learned router beat the controls at equal budget?",
             *point6(table, controls, pd.concat([runs, baseline_rows(headline_store)], ignore_index=True), out)),
        ]
        group_maps = all_routing_maps([store, *swapped], out)
        maps = []
        if headline_store is not None:
            hr = headline_store.table(ROUTING)
            if len(hr):
                maps = figs.routing_maps(hr[hr["config_hash"].isin(set(headline["config_hash"]))], headline, out,
                                         name="audit_routing_maps_headline")
    m = store.manifest()
    lines = [f"# Audit: {m['run_id']}", "",
             f"Suite {m.get('suite_version')}, profile `{m['profile']['name']}` (status {m.get('status')}), git "
             f"{m.get('environment', {}).get('git_sha', '?')}, device {m.get('environment', {}).get('device_name', '?')}.",
             "Sources: " + "; ".join(f"{k}: " + (f"`{s.path.name}` ({s.manifest().get('status')}, "
                                                  f"{len(ok_rows(s.runs()))} cells)" if s else "not run")
                                     for k, s in found.items()) + ".",
             "Mini-tier rows (d=32, 2 layers) illustrate; they decide no published claim.", ""]
    for title, verdict, text in answers:
        lines += [f"## {title}", "", f"**Verdict: {verdict}**", "", text, ""]
    lines += ["## Router precision and recall against the scored positions", "",
              "Precision: the share of a layer's attention positions that are scored (query) cells of their row; "
              "recall: the share of scored cells attended in that layer ('any': in some layer). Mean over seeds.", "",
              precision_table(analysis), ""]
    lines += ["## Curriculum: constant λ against the ramp", "", curriculum_text(headline, found["curriculum"]), ""]
    lines += ["## Routing maps, every seed", "", "The headline (faithful):", "",
              fig_link(maps, "routing maps") if maps else "(no headline routing stored yet)", "",
              "Every learned-router group of the mini-tier runs, one figure per (task, distance, λ):", "",
              fig_link(group_maps, "routing maps") if group_maps else "(none stored yet)", ""]
    if found["battery"] is not None:
        lines += [f"## The card's battery (mini tier, run `{found['battery'].path.name}`)", "",
                  battery_table(found["battery"].runs()), ""]
    if found["mqar"] is not None:
        lines += [f"## Shortcut-resistant recall at longer distances (mini tier, run `{found['mqar'].path.name}`)", "",
                  battery_table(found["mqar"].runs(), "The mqar-mini run"), ""]
    if found["mqar-learnable"] is not None:
        learnable = found["mqar-learnable"]
        note = budget_note(learnable.runs()["protocol"]) if len(learnable.runs()) else ""
        lines += [f"## Can mqar be learned? (mini tier{note}; run `{learnable.path.name}`)", "",
                  battery_table(learnable.runs(), "The mqar-learnable run"), ""]
    if len(table):
        lines += ["## Router regret table (regret.csv)", "", table.to_markdown(index=False, floatfmt=".4g"), ""]
    lines += ["## Files", "", f"`{CONTROLS}` (decision swaps per model), `{ANALYSIS}` (per-layer usage, precision and "
              "recall against the scored positions, the whole-layer test), `regret.csv`, `figures/`.", ""]
    store.write_text(AUDIT, "\n".join(lines))
    return store.path / AUDIT


def audit(profile_name: str, results_dir: Path, resume: str | None, device: torch.device, dry_run: bool = False,
          fresh: bool = False, progress: bool = True, executor=None) -> int:
    results_dir = Path(results_dir)
    rc = reproduce(profile_name, results_dir, resume, device, dry_run=dry_run, fresh=fresh, progress=progress,
                   executor=executor, command="audit")
    if rc != 0 or dry_run:
        return rc
    store = RunStore.find(results_dir, resume) if resume else newest_run(results_dir, load_profile(profile_name).name)
    if store is None:
        raise ConfigError(f"audit: no run of profile '{profile_name}' under {results_dir}")
    sources = [store] + [s for s in (newest_run(results_dir, SOURCES[k]) for k in (*SWAP_SOURCES, "headline"))
                         if s is not None]
    with store.lock():
        analyse(store, sources, device, progress)
        path = write_audit(store, results_dir)
    print(f"Wrote {path}")
    return 0


def add_arguments(p) -> None:
    p.add_argument("--profile", default=None,
                   help="the audit profile (default: audit; with --resume, the run's own), or a path to a .json profile")
    add_run_options(p, "continue an interrupted audit run")


def run(a) -> int:
    device = resolve_device(a.device)
    with open_executor(a, device) as executor:
        return audit(a.profile or (None if a.resume else "audit"), a.results_dir, a.resume, device, dry_run=a.dry_run,
                     fresh=a.fresh, progress=not a.quiet, executor=executor)


COMMAND = Command("audit", "train the audit profile, swap every kept model's decisions, answer the original's "
                  "questionable points in AUDIT.md", add_arguments, run)
