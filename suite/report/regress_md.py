"""REGRESS.md and the terminal summary of a regress run, rendered from its comparison table."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from suite.judge import regress as rule
from suite.judge.regress import METRICS
from suite.run.tiers import REPO, Tier


def shown(path) -> str:
    """A path as the report prints it: relative to the repository when inside it (no machine paths)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def regress_markdown(manifest: dict, table: pd.DataFrame, verdict: str, reasons: list[str], tier: Tier,
                     imported: int) -> str:
    show = table.copy()
    for c in ("candidate", "reference", "difference", "low", "high"):
        show[c] = show[c].map(lambda v: f"{v:.4g}")
    doc = (rule.__doc__ or "").strip()
    r = manifest["regress"]
    return "\n".join([
        f"# Regression report: `{r['router']}` on the {r['tier']} tier",
        "", f"Run `{manifest['run_id']}`; {r['seeds']} seed(s); router kwargs `{json.dumps(r['router_kwargs'])}`; "
            f"cells reused from {', '.join(f'`{x}`' for x in r.get('reused_from', [])) or 'no stored run'} "
            f"({imported}; the rest trained here).",
        "", f"**Tier {r['tier']}**: {tier.description}" + ("" if tier.faithful else
                                                             " Every row is labelled not faithful."),
        "", f"## Verdict: {verdict}", "", *[f"- {x}" for x in reasons],
        "", "## Paired differences (candidate - reference, by seed)", "", show.to_markdown(index=False),
        "", "![pareto](figures/pareto.png)", "", "*Accuracy against executed forward MACs per cell.*",
        "", "## The rule", "", "```", doc, "```", "",
    ])


def print_regress(table: pd.DataFrame, verdict: str, reasons: list[str], out=None) -> None:
    out = out or sys.stdout
    wide = table.pivot_table(index=["task", "distance", "against"], columns="metric", values="verdict",
                             aggfunc="first")[[m for m in METRICS if m in set(table["metric"])]]
    print("\nCandidate against each reference, per metric (paired by seed):", file=out)
    print(wide.to_string(), file=out)
    print(f"\nVerdict: {verdict}", file=out)
    for r in reasons:
        print(f"  - {r}", file=out)
