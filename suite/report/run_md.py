"""The human-readable side of a run: claims table, the original's main table, REPORT.md."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from suite.judge.claims import stopped_by_cut
from suite.judge.published import key, load_published, pct, text
from suite.report.markdown import md_table
from suite.schema.rows import faithful_rows, ok_rows

T1_COLUMNS = (("AttnOnly", "attn", None), ("ConvOnly", "conv", None),
              ("Routed lambda->0.1", "routed", 0.1), ("Routed lambda->0.5", "routed", 0.5))


def main_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The original's table in its own format, ours (mean over seeds, test set) beside published."""
    rows = []
    faithful = faithful_rows(runs)
    if faithful.empty:
        return pd.DataFrame()
    faithful = faithful[(faithful["protocol"] == "faithful") & (faithful["task"] == "assoc_recall")]
    published = load_published()
    for d in sorted(set(faithful["distance"]) | {k[0] for k in published}):
        row = {"distance": d}
        for title, model, lam in T1_COLUMNS:
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
                    if lam is not None:  # usage is often bimodal over seeds: show the spread
                        ours += f", usage {pct(cell['usage'].min())}-{pct(cell['usage'].max())}"
                if stopped_by_cut(cell):
                    ours += " (stopped by the epoch cap)"
            pub = published.get(key(d, model, lam))
            row[title] = f"{ours} | pub. {text(pub)}" if pub else ours
        rows.append(row)
    return pd.DataFrame(rows)


CLAIM_COLUMNS = ["claim_id", "claim", "published", "verdict", "seeds meeting it", "why it stopped", "magnitude",
                 "achievable"]


def _magnitude(row) -> str:
    if pd.isna(row["measured"]):
        return ""
    return f"{row['measured']:.4f} [{row['low']:.4f}, {row['high']:.4f}] ({row['interval']})"


def _why(row) -> str:
    if row["decided_by"] == "arithmetic":
        return "by arithmetic: " + row["statistic"]
    if row["decided_by"] == "contrast":
        return f"{row['statistic']}; {row['stopped']}" + (f"; {row['more_to_decide']}" if row["more_to_decide"] else "")
    more = f"; {row['more_to_decide']}" if row["more_to_decide"] else ""
    return f"{row['stopped']}{more}"


def claims_table(claims: pd.DataFrame) -> pd.DataFrame:
    """The claims this run measured (NOT-RUN ones are listed by `not_run_line`): the verdict, the
    seeds it rests on, why the test stopped (or what would decide it), magnitude beside it."""
    df = claims[claims["verdict"] != "NOT-RUN"].copy()
    if df.empty:
        return pd.DataFrame(columns=CLAIM_COLUMNS)
    df["seeds meeting it"] = [ss if d == "contrast" else "" if d == "arithmetic" else f"{k}/{n}" for k, n, d, ss in
                              zip(df["successes"], df["n_seeds"], df["decided_by"], df["seed_success"])]
    df["why it stopped"] = df.apply(_why, axis=1)
    df["magnitude"] = df.apply(_magnitude, axis=1)
    return df[CLAIM_COLUMNS]


HOW_TO_READ = ("A seed succeeds when it meets every check of the claim (accuracy on the held-out test set). "
               "The verdict asks whether the median run meets the claim: an anytime-valid test of the seed success "
               "rate against 1/2 (mixture likelihood ratio, Ville's bound, alpha 0.05 per side, valid however seeds "
               "are added; six agreeing seeds decide, three cannot). Contrast claims compare two cells' seed "
               "success by a one-sided Fisher exact test; a claim no run of the architecture can meet FAILs by "
               "arithmetic. *magnitude*: mean of the first check's metric over seeds with a percentile bootstrap "
               "95% interval (below 3 seeds: Wilson over test examples for accuracy, else the range); it never "
               "decides. *achievable*: seeds meeting the claim, exact 95% interval: an existence proof, not a "
               "verdict. How each published number is read: `suite/data/claims.json`.")


def not_run_line(claims: pd.DataFrame) -> str:
    ids = claims.loc[claims["verdict"] == "NOT-RUN", "claim_id"].tolist()
    return f"NOT-RUN ({len(ids)}, no faithful cell of the claim in this run): {', '.join(ids)}" if ids else ""


def verdict_counts(claims: pd.DataFrame) -> str:
    counts = claims["verdict"].value_counts()
    return ", ".join(f"{v} {counts.get(v, 0)}" for v in ("PASS", "FAIL", "INCONCLUSIVE", "NOT-RUN"))


COMPUTE_COLUMNS = ["task", "distance", "model", "protocol", "lambda_target", "seed", "usage", "macs_forward_executed",
                   "macs_forward_dense_original", "macs_forward_attn_ref", "savings_notional", "savings_executed",
                   "savings_latency", "latency_ms_model", "latency_ms_attn", "train_flops_phase1", "train_flops_phase2"]


def compute_section(runs: pd.DataFrame) -> list[str]:
    """Savings three ways for every cell: what was published, what ran, what the clock says."""
    runs = ok_rows(runs)
    if runs.empty or "macs_forward_executed" not in runs.columns:
        return []
    df = runs[[c for c in COMPUTE_COLUMNS if c in runs.columns]].copy()
    for c in ("macs_forward_executed", "macs_forward_dense_original", "macs_forward_attn_ref"):
        df[c] = (df[c] / 1e6).round(1)
    for c in ("train_flops_phase1", "train_flops_phase2"):
        df[c] = (df[c] / 1e12).round(2)
    df = df.rename(columns={"macs_forward_executed": "executed MMAC/seq", "macs_forward_dense_original":
                            "original (dense) MMAC/seq", "macs_forward_attn_ref": "AttnOnly MMAC/seq",
                            "train_flops_phase1": "train TFLOP ph1", "train_flops_phase2": "train TFLOP ph2"})
    return ["## Compute: savings three ways", "",
            "Forward MACs of one sequence (logits at every position; LayerNorm and elementwise work not "
            "counted) under the routing each test sequence actually received, with routed layers that "
            "really skip (sparse execution), each sequence run alone (a batch also pays for padded query rows); "
            "the original computes both branches everywhere ('original "
            "(dense)'). Savings against AttnOnly at the same length: notional = 1 - usage (as published), "
            "executed = 1 - executed MACs / AttnOnly's, latency = 1 - measured time / AttnOnly's (median of "
            "interleaved runs on one test batch, same process). Training FLOPs (2 per MAC, forward + "
            "backward, counted by FlopCounterMode) per phase.", "",
            md_table(df, floatfmt=".4g"), ""]


def cells_table(runs: pd.DataFrame) -> pd.DataFrame:
    cols = ["task", "distance", "model", "lambda_target", "seed", "protocol", "epoch_cap", "accuracy",
            "accuracy_low", "accuracy_high", "val_accuracy", "usage", "usage_per_layer", "epochs_phase1",
            "epochs_phase2", "phase2_ran", "seconds"]
    runs = ok_rows(runs)
    return runs[[c for c in cols if c in runs.columns]]


FAILED_COLUMNS = ["task", "distance", "model", "lambda_target", "seed", "error"]


def failed_section(runs: pd.DataFrame) -> list[str]:
    """Cells that stopped with an error: not seeds of any verdict, so the reader must see them."""
    if runs.empty or "status" not in runs.columns or not (runs["status"] == "failed").any():
        return []
    failed = runs[runs["status"] == "failed"]
    return ["## Failed cells", "",
            f"{len(failed)} cell(s) stopped with an error. Each is a seed of unknown outcome, counted against "
            "whichever verdict it could overturn.", "",
            md_table(failed[[c for c in FAILED_COLUMNS if c in failed.columns]]), ""]


FIGURE_CAPTIONS = {
    "accuracy_vs_distance": "Held-out accuracy vs distance per model (mean and interval over seeds; hollow: published).",
    "usage_vs_distance": "Attention usage of the routed models, with one routed position per sequence and one whole layer for reference.",
    "savings": "Savings three ways: notional (1 - usage, as published), executed FLOPs and measured latency, both against AttnOnly.",
    "routing_map": "Where the routed model uses attention: rate per layer and position over the test set.",
    "training_curves": "Validation accuracy and usage per epoch, lambda on the second axis, phase boundary marked.",
    "scaling": "Forward FLOPs and measured latency vs sequence length (latency benchmark).",
}


def figures_section(run_dir) -> list[str]:
    if run_dir is None:
        return []
    lines = ["## Figures", ""]
    found = False
    for name, caption in FIGURE_CAPTIONS.items():
        if (Path(run_dir) / "figures" / f"{name}.png").is_file():
            found = True
            lines += [f"![{name}](figures/{name}.png)", "", f"*{caption}* (`figures/{name}.pdf`)", ""]
    return lines if found else []


def report_markdown(manifest: dict, plan: str, runs: pd.DataFrame, claims: pd.DataFrame, run_dir=None) -> str:
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
        f"Verdicts: {verdict_counts(claims)}. Held-out test set: {prof['test_sequences']} sequences per cell. "
        + HOW_TO_READ,
        "",
        md_table(claims_table(claims)),
        "",
        not_run_line(claims),
        "",
        "### Details",
        "",
        md_table(claims[claims["verdict"] != "NOT-RUN"][["claim_id", "comparator", "method", "statistic", "details",
                                                         "note"]]),
        "",
        *failed_section(runs),
        "## The original's main table, reproduced",
        "",
        "Ours: mean over seeds of held-out test accuracy (and attention usage, argmax routing); "
        "`pub.` the published value. `not run`: this profile did not train the cell.",
        "",
        md_table(main_table(runs)),
        "",
        *compute_section(runs),
        *figures_section(run_dir),
        "## Cells",
        "",
        md_table(cells_table(runs)),
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
