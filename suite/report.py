"""The human-readable side of a run: claims table, the original's main table, REPORT.md."""
from __future__ import annotations

import json

import pandas as pd

#: the original's main table (original-experiment.md): distance -> column -> "acc (usage)"
PUBLISHED_T1 = {
    126: ("100%", "1%", "100% (16%)", "100% (0.3%)"),
    254: ("100%", "2%", "100% (25%)", "99% (0.2%)"),
    510: ("100%", "2%", "100% (25%)", "100% (25%)"),
    1022: ("99%", "2%", "36% (74%)", "98% (90%)"),
    2046: ("82%", "2%", "2% (35%)", "97% (38%)"),
}
T1_COLUMNS = (("AttnOnly", "attn", None), ("ConvOnly", "conv", None),
              ("Routed lambda->0.1", "routed", 0.1), ("Routed lambda->0.5", "routed", 0.5))


def pct(x: float) -> str:
    """Whole percent as the original prints it, one decimal below 1%."""
    return f"{x:.1%}" if 0 < x < 0.01 else f"{x:.0%}"


def main_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The original's table in its own format, ours (mean over seeds, test set) beside published."""
    rows = []
    if runs.empty:
        return pd.DataFrame()
    faithful = runs[(runs["faithful_model"].astype(bool)) & (runs["protocol"] == "faithful")
                    & (runs["task"] == "assoc_recall")]
    for d in sorted(set(faithful["distance"]) | set(PUBLISHED_T1)):
        row = {"distance": d}
        for i, (title, model, lam) in enumerate(T1_COLUMNS):
            cell = faithful[(faithful["distance"] == d) & (faithful["model"] == model)]
            if lam is not None:
                cell = cell[cell["lambda_target"] == lam]
            if cell.empty:
                ours = "not run"
            else:
                acc = cell["accuracy"].mean()
                ours = pct(acc) if lam is None else f"{pct(acc)} ({pct(cell['usage'].mean())} attn)"
                if len(cell) > 1:
                    ours += f" n={len(cell)}"
            pub = PUBLISHED_T1.get(d, ("",) * 4)[i]
            row[title] = f"{ours} | pub. {pub}" if pub else ours
        rows.append(row)
    return pd.DataFrame(rows)


CLAIM_COLUMNS = ["claim_id", "claim", "published", "measured", "low", "high", "n_seeds", "verdict"]


def claims_table(claims: pd.DataFrame) -> pd.DataFrame:
    df = claims[CLAIM_COLUMNS].copy()
    for col in ("measured", "low", "high"):
        df[col] = df[col].map(lambda v: "" if pd.isna(v) else f"{v:.4f}")
    return df


def verdict_counts(claims: pd.DataFrame) -> str:
    counts = claims["verdict"].value_counts()
    return ", ".join(f"{v} {counts.get(v, 0)}" for v in ("PASS", "FAIL", "INCONCLUSIVE", "NOT-RUN"))


def cells_table(runs: pd.DataFrame) -> pd.DataFrame:
    cols = ["task", "distance", "model", "lambda_target", "seed", "protocol", "epoch_cap", "accuracy",
            "accuracy_low", "accuracy_high", "val_accuracy", "usage", "usage_per_layer", "epochs_phase1",
            "epochs_phase2", "phase2_ran", "seconds"]
    return runs[[c for c in cols if c in runs.columns]]


def report_markdown(manifest: dict, plan: str, runs: pd.DataFrame, claims: pd.DataFrame) -> str:
    prof = manifest["profile"]
    env = manifest["environment"]
    lines = [
        f"# Reproduction report: run `{manifest['run_id']}`",
        "",
        f"Profile **{prof['name']}**: {prof['description']}",
        f"Status: {manifest.get('status')}; started {manifest.get('started')}, finished {manifest.get('finished', '-')}; "
        f"wall time {manifest.get('wall_seconds', 0) / 60:.1f} min.",
        "",
        "## Claims",
        "",
        f"Verdicts: {verdict_counts(claims)}. Accuracy is measured on a held-out test set of "
        f"{prof['test_sequences']} sequences per cell. Interval: Student t over seeds with >= 3 seeds; "
        "with fewer, Wilson over the pooled test examples (accuracy) or the point value (other metrics). "
        "How each published number is read: `suite/data/claims.json`.",
        "",
        claims_table(claims).to_markdown(index=False),
        "",
        "### Details",
        "",
        claims[["claim_id", "comparator", "details", "seed_success", "note"]].to_markdown(index=False),
        "",
        "## The original's main table, reproduced",
        "",
        "Ours: mean over seeds of held-out test accuracy (and attention usage, argmax routing); "
        "`pub.` the published value. `not run`: this profile did not train the cell.",
        "",
        main_table(runs).to_markdown(index=False),
        "",
        "## Cells",
        "",
        cells_table(runs).to_markdown(index=False),
        "",
        "## Plan",
        "",
        "```",
        plan.rstrip(),
        "```",
        "",
        "## Environment",
        "",
        "```",
        json.dumps(env, indent=2, sort_keys=True),
        "```",
        "",
    ]
    if prof.get("cuts"):
        lines[5:5] = ["", "**Cuts in this profile** (recorded in every row):", ""] + [f"- {c}" for c in prof["cuts"]] + [""]
    return "\n".join(lines)
