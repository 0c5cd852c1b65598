"""Audit point 6 as a finding: per group of distinct learned models, the regret against the best
control at equal or lower usage, with its paired interval over seeds and what the control is (a
swap on weights the learned gates trained, or a router trained from scratch on its own budget)."""
from __future__ import annotations

import pandas as pd

from suite.audit.common import MARGIN, SOLVED, Limits, budget_note, plural
from suite.audit.findings import Figures, Finding, evidence, no_data, overall
from suite.audit.points import TITLES
from suite.audit.regret import INTERVAL
from suite.audit.retrain import retrain_note

SWAP_NOTE = "a decision swap: it runs on weights trained under the learned gates, which favours the learned router"


def group_name(r) -> str:
    """The name of one regret group among a finding's parts."""
    lams = str(getattr(r, "lambdas", f"{r.lambda_target:g}")).replace(", ", "=")
    return f"{r.task} {r.tier} d={r.distance} λ→{lams} {r.router}"


def _control(r) -> str:
    if getattr(r, "control_kind", "swap") == "swap":
        return SWAP_NOTE
    mine, theirs = getattr(r, "learned_epochs", None), getattr(r, "control_epochs", None)
    if pd.notna(mine) and pd.notna(theirs) and abs(mine - theirs) > 1e-9:
        return (f"trained from scratch, {theirs:.1f} epochs on average against the learned router's {mine:.1f}: "
                "another epoch budget")
    return "trained from scratch"


def _line(r, learned: pd.DataFrame, headline: pd.DataFrame, runs: pd.DataFrame, limits: Limits) -> str:
    note = budget_note(str(getattr(r, "protocol", "")).split("+"))
    lams = str(getattr(r, "lambdas", f"{r.lambda_target:g}"))
    shared = ", " + "λ→" + lams.replace(", ", " and λ→") + " are one phase-1 model per seed (phase 2 never ran)" \
        if ", " in lams else f", λ→{lams}"
    head = f"{r.task} ({r.tier}, d={r.distance}{shared}, {plural(int(getattr(r, 'models', r.seeds)), 'model')}{note})"
    if r.verdict == "NO CONTROL AT THIS BUDGET":
        return f"{head}: no control at or below usage {r.learned_usage:.4f}"
    iv = (f"{INTERVAL} over {int(r.pairs)} seeds [{r.regret_low:+.4f}, {r.regret_high:+.4f}]"
          if pd.notna(getattr(r, "regret_low", None)) else "no interval (fewer than 2 paired seeds)")
    why = f" (the learned router does not solve it: accuracy below {SOLVED})" if r.learned_accuracy < SOLVED else ""
    g = learned[(learned["task"] == r.task) & (learned["distance"] == r.distance) & (learned["tier"] == r.tier)
                & (learned["lambda_target"] == r.lambda_target) & (learned["router"] == r.router)]
    retrain = retrain_note(g, headline, runs, limits) if r.tier == "faithful" else ""
    return (f"{head}: learned accuracy {r.learned_accuracy:.3f} at usage {r.learned_usage:.4f} and "
            f"{r.learned_macs / 1e6:.2f} MMAC; best control '{r.best_control}' ({_control(r)}) "
            f"{r.control_accuracy:.3f} at usage {r.control_usage:.4f} and {r.control_macs / 1e6:.2f} MMAC: regret "
            f"{r.accuracy_regret:+.3f}, {iv}, MACs ratio {r.macs_ratio:.3f} -> {r.verdict}{why}"
            + (f"; {retrain}" if retrain else ""))


def point6(table: pd.DataFrame, controls: pd.DataFrame, headline: pd.DataFrame | None = None,
           runs: pd.DataFrame | None = None, limits: Limits | None = None) -> Finding:
    if table.empty:
        return no_data(6, TITLES[6], "No learned routed model has been analysed yet.")
    limits = limits or Limits.of()
    headline = headline if headline is not None else pd.DataFrame()
    learned = controls[controls["control"] == "learned"]
    parts = {group_name(r): r.verdict for r in table.itertuples()}
    lines = [_line(r, learned, headline, runs, limits) for r in table.itertuples()]
    counts = table["verdict"].value_counts()
    intro = ("Router regret: per group of distinct learned models (a seed's λ→0.1 and λ→0.5 cells whose phase 2 "
             "never ran report one phase-1 model and count once), the learned router's mean accuracy and executed "
             "forward MACs against the best control whose mean usage is at most the learned one's (decision swaps of "
             "the same trained models, and fixed routers trained from scratch on the same task). The regret is the "
             f"control's accuracy minus the learned one, paired by seed (a swap with its own model, a scratch "
             f"control with the learned model of the same seed and test set); its 95% interval is a {INTERVAL} "
             "(t rather than the bootstrap: over 3 to 5 seeds a percentile bootstrap cannot reach beyond the seeds' "
             f"own range). 'LEARNED BETTER' / 'CONTROL BETTER': the interval lies below / above 0; 'TIE': it lies "
             f"within ±{MARGIN}; 'UNDECIDED': it reaches across 0 and beyond ±{MARGIN}; 'NEITHER SOLVES': the "
             f"learned router stays below {SOLVED} accuracy and so does the control, whatever the interval, since "
             "beating a control there says nothing about routing."
             + ("" if (controls["tier"] == "faithful").any() else
                " No faithful-size model kept its weights (the headline profile does not save them), so no "
                "faithful model has decision swaps and every row here is a mini-tier model; the faithful-size "
                "swaps are in `paper`."))
    return Finding(point=6, title=TITLES[6], verdict=overall(parts), parts=parts,
                   summary=", ".join(f"{k} {v}" for k, v in counts.items()) + f" ({plural(len(table), 'group')} "
                   "of distinct models)",
                   numbers={str(k): int(v) for k, v in counts.items()}, evidence=evidence(learned),
                   intro=[intro], lines=lines,
                   figures=[Figures(key="pareto", alt="accuracy against executed MACs", missing="")])
