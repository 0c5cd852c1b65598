"""The sections beyond the six points, and the whole AuditFindings
record of an audit run: everything AUDIT.md says, as data, before anything is rendered."""
from __future__ import annotations

import json

import pandas as pd

from tasks import make_task

from suite.audit.analysis import ANALYSIS, CONTROLS
from suite.audit.common import RUNS_USAGE, STORED_USAGE, Limits, budget_note, fmt_interval
from suite.audit.findings import AuditFindings, Figures, Section, SourceRef, Table
from suite.audit.inputs import AuditInputs
from suite.audit.points import point1, point2, point3, point5
from suite.audit.regret_point import group_name, point6  # noqa: F401 (group_name: the parts' names)
from suite.audit.shortcut import point4
from suite.judge.claims import check_claims
from suite.judge.registry import Claim, load_registry
from suite.judge.stats import interval
from suite.schema.rows import ok_rows

REGRET = "regret.csv"
#: the files of an audit run, with what each holds
FILES = {CONTROLS: "decision swaps per model",
         ANALYSIS: "per-layer usage, precision and recall against the scored positions, the whole-layer test",
         REGRET: "", "figures/": ""}


def precision_section(analysis: pd.DataFrame) -> Section:
    """The router's precision and recall against the scored (query) positions, mean over seeds."""
    intro = ["Precision: the share of a layer's attention positions that are scored (query) cells of their row; "
             "recall: the share of scored cells attended in that layer ('any': in some layer). Mean over seeds."]
    title = "Router precision and recall against the scored positions"
    a = analysis[analysis["source"] == "weights"] if len(analysis) else analysis
    if a.empty:
        return Section(title=title, intro=intro + ["No routed model with kept weights analysed yet."])
    layer_cols = sorted(c for c in a.columns if c.startswith(("precision_layer_", "recall_layer_")))
    cols = ["usage", "precision_any", "recall_any", "query_share"] + layer_cols
    g = a.groupby(["task", "distance", "tier", "router", "lambda_target"])
    return Section(title=title, intro=intro,
                   table=Table.of(g[cols].mean().assign(seeds=g.size()).reset_index(), floatfmt=".3f",
                                  note=STORED_USAGE))


def curriculum_text(headline: pd.DataFrame, curriculum, registry: list[Claim]) -> str:
    if curriculum is None:
        return "The `curriculum` run (faithful-constant λ0.5 at 126) has not been run yet."
    c = ok_rows(curriculum.runs())
    c = c[(c["protocol"] == "faithful-constant")] if len(c) else c
    if c.empty:
        return f"The curriculum run {curriculum.path.name} has no finished cell yet."
    claims = check_claims(curriculum.runs(), curriculum.manifest()["profile"], registry)
    v = claims[claims["claim_id"] == "T2-const05-126"]
    verdict = ""
    if len(v):
        v = v.iloc[0]
        more = f"; {v['more_to_decide']}" if isinstance(v["more_to_decide"], str) and v["more_to_decide"] else ""
        verdict = (f"T2-const05-126 ('λ = 0.5 from the first step fails at 126'): {v['successes']} of {v['n_seeds']} "
                   f"seeds succeed; the claim's verdict (suite.judge): {v['verdict']}, {v['stopped']}{more}. "
                   f"Magnitude: {v['details']}. ")
    return verdict + (f"At 126, faithful size: λ=0.5 from the first step ({len(c)} seeds, run {curriculum.path.name}) "
                      f"reaches accuracy {fmt_interval('accuracy', c['accuracy'])}; the ramp (headline, {len(headline)} "
                      f"seeds) {fmt_interval('accuracy', headline['accuracy']) if len(headline) else 'n/a'}. Per seed "
                      "(constant): " + ", ".join(f"seed {int(s)}: {a:.3f}" for s, a in zip(c["seed"], c["accuracy"]))
                      + ".")


BATTERY_NOTE = ("Chance is each task's stated level (its docstring in tasks/). 'phase 2 ran' counts the routed seeds "
                "whose phase 1 solved the task; the others report their phase-1 result (the original's rule), which "
                "λ→0.1 and λ→0.5 share. For mqar it is a uniform guess among the sequence's own values; a model that "
                "has not learned which tokens are values scores below it (about 1/200 over the symbol range).")


def battery_table(runs: pd.DataFrame) -> Table | None:
    """Per (task, distance, series): seeds, mean accuracy with its 95% interval, the per-seed range
    (bimodal seeds show there), mean usage and the task's chance level; None without a finished cell."""
    r = ok_rows(runs)
    if r.empty:
        return None
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
    return Table.of(pd.DataFrame(rows), numparse=False, note=RUNS_USAGE)


def battery_section(title: str, runs: pd.DataFrame, what: str) -> Section:
    table = battery_table(runs)
    if table is None:
        return Section(title=title, intro=[f"{what} has no finished cell yet."])
    return Section(title=title, table=table, after=[BATTERY_NOTE])


def sections(inputs: AuditInputs, registry: list[Claim]) -> list[Section]:
    found = inputs.found
    out = [precision_section(inputs.analysis),
           Section(title="Curriculum: constant λ against the ramp",
                   intro=[curriculum_text(inputs.headline, found["curriculum"], registry)]),
           Section(title="Routing maps, every seed", figures=[
               Figures(key="maps_headline", caption="The headline (faithful):", alt="routing maps",
                       missing="(no headline routing stored yet)"),
               Figures(key="maps_groups", alt="routing maps", missing="(none stored yet)",
                       caption="Every learned-router group of the mini-tier runs, one figure per (task, distance, λ):")])]
    if found["battery"] is not None:
        out.append(battery_section(f"The card's battery (mini tier, run `{found['battery'].path.name}`)",
                                   found["battery"].runs(), "The battery run"))
    if found["mqar"] is not None:
        out.append(battery_section(f"Shortcut-resistant recall at longer distances (mini tier, run "
                                   f"`{found['mqar'].path.name}`)", found["mqar"].runs(), "The mqar-mini run"))
    if found["mqar-learnable"] is not None:
        learnable = found["mqar-learnable"]
        note = budget_note(learnable.runs()["protocol"]) if len(learnable.runs()) else ""
        out.append(battery_section(f"Can mqar be learned? (mini tier{note}; run `{learnable.path.name}`)",
                                   learnable.runs(), "The mqar-learnable run"))
    if len(inputs.table):
        out.append(Section(title=f"Router regret table ({REGRET})", table=Table.of(inputs.table, floatfmt=".4g",
                                                                                        note=STORED_USAGE)))
    return out


def audit_findings(inputs: AuditInputs, registry: list[Claim] | None = None) -> AuditFindings:
    """Every point and section of the audit run `inputs` reads, judged against `registry`'s claims."""
    registry = registry if registry is not None else load_registry()
    limits = Limits.of(registry)
    h, m = inputs.headline, inputs.store.manifest()
    points = [point1(h), point2(h, inputs.analysis, inputs.runs, inputs.faithful_routed()), point3(h, inputs.headline_store, registry, limits),
              point4(inputs.controls, inputs.runs, limits, h), point5(inputs),
              point6(inputs.table, inputs.controls, h, inputs.runs, limits)]
    env = m.get("environment", {})
    sources = [SourceRef(key=k) if s is None else
               SourceRef(key=k, run_id=s.path.name, status=s.manifest().get("status"), cells=len(ok_rows(s.runs())))
               for k, s in inputs.found.items()]
    return AuditFindings(run_id=m["run_id"], suite_version=m.get("suite_version"), profile=m["profile"]["name"],
                         status=m.get("status"), git_sha=str(env.get("git_sha", "?")),
                         device=str(env.get("device_name", "?")), sources=sources, points=points,
                         sections=sections(inputs, registry), files=FILES)
