"""REGRESS.md and the terminal summary of a regress run, rendered from its typed comparisons
(suite.judge.regress.TaskComparison): seed success decides, magnitudes only describe."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from suite.judge import regress as rule
from suite.judge.regress import COSTS, SOLVED, TaskComparison
from suite.run.tiers import REPO, Tier
from suite.report.markdown import md_table


def shown(path) -> str:
    """A path as the report prints it: relative to the repository when inside it (no machine paths)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def _success(comparisons: list[TaskComparison]) -> pd.DataFrame:
    return pd.DataFrame([{
        "task": c.task, "distance": c.distance, "against": c.against,
        "candidate solves": f"{c.success.successes}/{c.success.n}",
        "reference solves": f"{c.success.ref_successes}/{c.success.ref_n}",
        "difference [90%]": f"{c.success.difference:+.2f} [{c.success.low:+.2f}, {c.success.high:+.2f}]",
        "p worse": f"{c.success.p_worse:.2g}", "p better": f"{c.success.p_better:.2g}",
        "verdict": c.success.verdict, "more seeds to decide": c.success.more_text(),
        "failed cells": len(c.failed), "degenerate": c.degenerate()} for c in comparisons])


def _failures(comparisons: list[TaskComparison]) -> pd.DataFrame:
    """Every failed candidate cell once (each appears in every reference's comparison)."""
    seen, out = set(), []
    for c in comparisons:
        for f in c.failed:
            if (c.task, c.distance, f.seed) not in seen:
                seen.add((c.task, c.distance, f.seed))
                out.append({"task": c.task, "distance": c.distance, "seed": f.seed, "error": f.error})
    return pd.DataFrame(out)


def _degenerate(comparisons: list[TaskComparison]) -> list[str]:
    seen = {}
    for c in comparisons:
        if c.degenerate():
            seen.setdefault((c.task, c.distance), c.degenerate())
    return [f"- **degenerate** {t} d={d}: the candidate {text}" for (t, d), text in seen.items()]


def _magnitude(comparisons: list[TaskComparison]) -> pd.DataFrame:
    text = lambda m: m.text() if m else ""
    return pd.DataFrame([{
        "task": c.task, "distance": c.distance, "against": c.against,
        "candidate accuracy": text(c.accuracy), "reference accuracy": text(c.ref_accuracy),
        "candidate usage": text(c.usage), "reference usage": text(c.ref_usage),
        "interval": c.accuracy.kind if c.accuracy else ""} for c in comparisons])


def _costs(comparisons: list[TaskComparison]) -> pd.DataFrame:
    return pd.DataFrame([{
        "task": c.task, "distance": c.distance, "against": c.against, "metric": m.metric,
        "candidate": f"{m.candidate:.4g}", "reference": f"{m.reference:.4g}",
        "difference [95%]": f"{m.difference:.4g} [{m.low:.4g}, {m.high:.4g}]", "n_seeds": m.n_seeds,
        "verdict": m.verdict} for c in comparisons for m in c.costs.values()])


def _md(df: pd.DataFrame) -> str:
    return md_table(df) if not df.empty else "(none)"


def regress_markdown(manifest: dict, comparisons: list[TaskComparison], verdict: str, reasons: list[str],
                     tier: Tier, imported: int) -> str:
    r = manifest["regress"]
    # runs from before `reused_from` was recorded read their cells from `against` alone
    sources = r.get("reused_from") or ([shown(r["against"])] if r.get("against") and imported else [])
    return "\n".join([
        f"# Regression report: `{r['router']}` on the {r['tier']} tier",
        "", f"Run `{manifest['run_id']}`; {r['seeds']} seed(s); router kwargs `{json.dumps(r['router_kwargs'])}`; "
            f"cells reused from {', '.join(f'`{x}`' for x in sources) or 'no stored run'} "
            f"({imported}; the rest trained here).",
        "", f"**Tier {r['tier']}**: {tier.description}" + ("" if tier.faithful else
                                                             " Every row is labelled not faithful."),
        "", f"## Verdict: {verdict}", "", *[f"- {x}" for x in reasons], *_degenerate(comparisons),
        "", "## Failed candidate cells", "",
        "A failed cell (it raised, exited or its worker died) is a seed that does not solve the task, and "
        "WORSE where the reference's cell of that seed trained.", "", _md(_failures(comparisons)),
        "", "## Seed success (decides)", "",
        f"A seed solves a task when its held-out test accuracy is >= {SOLVED:g} (the registry's reading of a "
        "published \"100%\"); a failed candidate cell is a seed that does not. "
        f"Method: {comparisons[0].success.method if comparisons else ''}.",
        "", _md(_success(comparisons)),
        "", "## Magnitude (describes, never decides)", "",
        "Mean over seeds with its 95% interval (suite/judge/stats.py), candidate and reference.",
        "", _md(_magnitude(comparisons)),
        "", "## Cost (paired by seed)", "",
        f"Executed forward MACs decide cost (SAME within {COSTS['macs_forward_executed']:.0%} of the reference); "
        "latency is shown and decides nothing.",
        "", _md(_costs(comparisons)),
        "", "![pareto](figures/pareto.png)", "", "*Accuracy against executed forward MACs per cell.*",
        "", "## The rule", "", "```", (rule.__doc__ or "").strip(), "```", "",
    ])


def print_regress(comparisons: list[TaskComparison], verdict: str, reasons: list[str], out=None) -> None:
    out = out or sys.stdout
    rows = pd.DataFrame([{"task": c.task, "distance": c.distance, "against": c.against,
                          "solves": f"{c.success.successes}/{c.success.n} vs {c.success.ref_successes}/{c.success.ref_n}",
                          "seed success": c.success.verdict, "executed MACs": c.cost("macs_forward_executed"),
                          "failed": len(c.failed), "degenerate": c.degenerate() or "-"}
                         for c in comparisons])
    print("\nCandidate against each reference, per task (seed success decides; MACs paired by seed):", file=out)
    print(rows.set_index(["task", "distance", "against"]).to_string() if len(rows) else "(no candidate cells)",
          file=out)
    print(f"\nVerdict: {verdict}", file=out)
    for r in reasons:
        print(f"  - {r}", file=out)
    for line in _degenerate(comparisons):
        print(f"  {line.replace('**', '')}", file=out)
