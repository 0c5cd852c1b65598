"""The audit command end to end on a tiny profile, and its pieces on hand-made tables: the router
regret picks the best control at or below the learned usage, the rate-based routing analysis."""
import json

import pandas as pd
import pytest

from suite.cli import main
from suite.commands.audit import (ANALYSIS, AUDIT, CONTROLS, analysis_from_rates, baseline_lines,
                                  battery_table, budget_note, faithful_swap_lines, point4, regret,
                                  usage_mode)
from suite.judge.stats import t_interval, wilson
from suite.run.store import RunStore

TINY = {"name": "tinyaudit", "description": "test", "decides_claims": False, "protocol": "smoke",
        "test_sequences": 16, "save_models": True,
        "model": {"d_model": 16, "n_layers": 2, "n_heads": 2, "kernel_size": 4},
        "grid": [{"task": "assoc_recall", "distances": [14], "models": ["attn", "conv", "routed"], "lambdas": [0.5],
                  "seeds": [0, 1]},
                 {"task": "assoc_recall", "distances": [14], "models": ["routed"], "lambdas": [0.5], "seeds": [0],
                  "model": {"router": "last"}},
                 {"task": "mqar", "distances": [8], "task_params": {"n_pairs": 2, "n_queries": 1},
                  "models": ["routed"], "lambdas": [0.5], "seeds": [0]}]}


def test_the_audit_writes_six_answers_from_its_own_run(tmp_path):
    prof = tmp_path / "a.json"
    prof.write_text(json.dumps(TINY))
    assert main(["audit", "--profile", str(prof), "--results-dir", str(tmp_path / "r"), "--quiet"]) == 0
    (run,) = [p for p in (tmp_path / "r").glob("*/*") if (p / "manifest.json").is_file()]
    text = (run / AUDIT).read_text()
    for n in range(1, 7):
        assert f"## {n}. " in text
    assert text.count("**Verdict: ") == 6
    assert "headline: not run" in text  # the sources it could not find are named
    controls = pd.read_csv(run / CONTROLS)
    learned_cells = 3  # two gumbel seeds on assoc_recall, one on mqar; the 'last' router is a control itself
    assert controls["config_hash"].nunique() == learned_cells
    per_cell = controls.groupby("config_hash")["control"].apply(set)
    assert all({"learned", "random", "last", "oracle", "one_layer", "conv", "attn"} <= s for s in per_cell)
    analysis = pd.read_csv(run / ANALYSIS)
    assert len(analysis) == 4 and set(analysis["source"]) == {"weights"}
    regret_table = pd.read_csv(run / "regret.csv")
    assert set(regret_table["task"]) == {"assoc_recall", "mqar"}
    # a rerun analyses nothing twice
    assert main(["audit", "--profile", str(prof), "--results-dir", str(tmp_path / "r"), "--quiet"]) == 0
    assert len(pd.read_csv(run / ANALYSIS)) == 4 and len(pd.read_csv(run / CONTROLS)) == len(controls)


def _audit_beside(tmp_path, source):
    """Reproduce the source profile, then a one-cell audit under the same results folder; return
    the source's run, the audit's run and its AUDIT.md text."""
    own = dict(TINY, grid=[dict(TINY["grid"][0], models=["routed"], seeds=[0])])
    for name, prof in (("source.json", source), ("a.json", own)):
        (tmp_path / name).write_text(json.dumps(prof))
    results = tmp_path / "r"
    assert main(["reproduce", "--profile", str(tmp_path / "source.json"), "--results-dir", str(results),
                 "--quiet"]) == 0
    assert main(["audit", "--profile", str(tmp_path / "a.json"), "--results-dir", str(results), "--quiet"]) == 0
    (source_run,) = RunStore.of_profile(results, source["name"], complete=True)
    (audit_run,) = RunStore.of_profile(results, "tinyaudit", complete=True)
    return source_run, audit_run, (audit_run.path / AUDIT).read_text()


def test_the_audit_reads_the_mqar_mini_run(tmp_path):
    """A run of the profile named mqar-mini under the same results folder joins the audit: its
    routed models get their decision swaps and its table gets its own section."""
    mqar = {"name": "mqar-mini", "description": "test", "decides_claims": False, "protocol": "smoke",
            "test_sequences": 16, "save_models": True, "model": TINY["model"],
            "grid": [{"task": "mqar", "distances": [10], "task_params": {"n_pairs": 2, "n_queries": 1},
                      "models": ["attn", "routed"], "lambdas": [0.5], "seeds": [0]}]}
    mqar_run, audit_run, text = _audit_beside(tmp_path, mqar)
    assert f"mqar: `{mqar_run.path.name}` (complete, 2 cells)" in text
    assert f"## Shortcut-resistant recall at longer distances (mini tier, run `{mqar_run.path.name}`)" in text
    mqar_routed = set(mqar_run.runs().query("model == 'routed'")["config_hash"])
    controls = pd.read_csv(audit_run.path / CONTROLS)
    assert mqar_routed <= set(controls["config_hash"]) and len(mqar_routed) == 1
    assert "mqar" in set(pd.read_csv(audit_run.path / "regret.csv")["task"])


def test_the_mqar_baselines_say_when_attnonly_does_not_learn_the_task_either():
    def row(model, d, acc, seed):
        return {"task": "mqar", "distance": d, "model": model, "seed": seed, "accuracy": acc, "status": "ok",
                "faithful_model": False}
    runs = pd.DataFrame([row("attn", 126, 0.005, 0), row("attn", 126, 0.007, 1), row("conv", 126, 0.006, 0),
                         row("attn", 254, 0.99, 0), row("attn", 254, 0.97, 1),
                         dict(row("attn", 510, 0.99, 0), status="failed"),
                         dict(row("attn", 126, 0.99, 0), task="assoc_recall")])
    lines = baseline_lines(runs, "mqar")
    assert len(lines) == 2  # the failed cell and the other task are not read
    assert lines[0].startswith("- mqar (mini, d=126) baselines: AttnOnly 0.0060 [")
    assert "ConvOnly 0.0060" in lines[0] and "AttnOnly does not learn it here either" in lines[0]
    assert lines[1].startswith("- mqar (mini, d=254) baselines: AttnOnly 0.9800 [")
    assert "does not learn" not in lines[1]
    # where a routed seed solved it, an unlearned AttnOnly says so instead of 'cannot tell'
    solved = baseline_lines(runs, "mqar", {(126, "mini"): (2, 3), (254, "mini"): (1, 3)})
    assert solved[0].endswith("— AttnOnly does not learn it in this budget (below 0.9); the routed model does in 2 "
                              "of 3 seeds")
    assert solved[1] == lines[1]


def _control(control, acc, usage, macs, seed=0):
    return {"task": "assoc_recall", "distance": 126, "tier": "mini", "router": "gumbel", "lambda_target": 0.5,
            "seed": seed, "control": control, "accuracy": acc, "usage": usage, "macs_forward_executed": macs}


def test_regret_compares_with_the_best_control_at_or_below_the_learned_usage():
    controls = pd.DataFrame([
        _control("learned", 0.90, 0.02, 100.0), _control("learned", 0.80, 0.02, 100.0, seed=1),
        _control("last", 0.95, 0.02, 90.0), _control("last", 0.97, 0.02, 90.0, seed=1),    # best within budget
        _control("random", 0.10, 0.02, 95.0), _control("random", 0.12, 0.02, 95.0, seed=1),
        _control("attn", 1.0, 1.0, 900.0), _control("attn", 1.0, 1.0, 900.0, seed=1),      # above the budget
    ])
    (row,) = regret(controls, pd.DataFrame()).to_dict("records")
    assert row["best_control"] == "last" and row["seeds"] == 2
    assert row["learned_accuracy"] == pytest.approx(0.85) and row["control_accuracy"] == pytest.approx(0.96)
    assert row["accuracy_regret"] == pytest.approx(0.11) and row["macs_ratio"] == pytest.approx(100 / 90)
    assert row["verdict"] == "CONTROL BETTER"
    worse = controls[controls["control"] != "last"]
    (row,) = regret(worse, pd.DataFrame()).to_dict("records")
    assert row["best_control"] == "random" and row["verdict"] == "LEARNED BETTER"
    alone = controls[controls["control"].isin(["learned", "attn"])]
    assert regret(alone, pd.DataFrame())["verdict"].tolist() == ["NO CONTROL AT THIS BUDGET"]


def test_regret_calls_equal_accuracy_below_solved_neither_solves():
    at_chance = pd.DataFrame([_control("learned", 0.007, 0.99, 100.0), _control("conv", 0.007, 0.0, 60.0)])
    assert regret(at_chance, pd.DataFrame())["verdict"].tolist() == ["NEITHER SOLVES"]
    solved = pd.DataFrame([_control("learned", 0.99, 0.05, 100.0), _control("last", 0.98, 0.01, 60.0)])
    assert regret(solved, pd.DataFrame())["verdict"].tolist() == ["TIE"]
    apart = pd.DataFrame([_control("learned", 0.40, 0.5, 100.0), _control("last", 0.10, 0.01, 60.0)])
    assert regret(apart, pd.DataFrame())["verdict"].tolist() == ["LEARNED BETTER"]  # unsolved, still apart


def test_the_rate_based_analysis_of_a_cell_without_weights(tmp_path):
    store = RunStore(tmp_path)
    row = {"config_hash": "c", "task": "assoc_recall", "task_params": json.dumps({"distance": 6}), "distance": 6,
           "faithful_model": True, "router": "", "lambda_target": 0.5, "seed": 3, "protocol": "faithful",
           "usage_per_layer": json.dumps([0.125, 1.0])}
    T = 8
    rates = pd.DataFrame([{"layer": layer, "position": t, "attention_rate": r}
                          for layer, rs in enumerate([[0] * 7 + [1.0], [1.0] * 8]) for t, r in enumerate(rs)])
    a = analysis_from_rates(row, rates, store)
    assert a["precision_layer_0"] == 1.0 and a["recall_layer_0"] == 1.0
    assert a["precision_layer_1"] == pytest.approx(1 / T) and a["recall_layer_1"] == 1.0
    assert a["attention_positions_per_sequence_layer_0"] == 1.0
    assert a["attention_positions_per_sequence_layer_1"] == 8.0
    assert a["query_share"] == pytest.approx(2 / 9)
    assert a["plateau"] and a["whole_layer"] and a["label"] == "one whole layer"  # mean 0.5625, layer 1 full
    mqar = {**row, "task": "mqar", "task_params": json.dumps({"distance": 8, "n_pairs": 2, "n_queries": 1})}
    assert analysis_from_rates(mqar, rates, store) is None  # scored positions differ by row: needs the weights


def test_battery_table_gives_the_interval_the_range_and_chance():
    rows = [{"status": "ok", "task": "induction_heads", "distance": 6, "model": "attn", "lambda_target": 0.0,
             "seed": s, "accuracy": a, "test_correct": int(a * 100), "test_total": 100, "usage": 1.0,
             "task_params": json.dumps({"distance": 6})} for s, a in enumerate([0.5, 0.6, 0.7])]
    rows.append({**rows[0], "model": "routed", "lambda_target": 0.5, "accuracy": 0.25, "test_correct": 25,
                 "usage": 0.125, "phase2_ran": False})
    table = battery_table(pd.DataFrame(rows))
    attn = next(line for line in table.splitlines() if "AttnOnly" in line)
    lo, hi = t_interval([0.5, 0.6, 0.7])
    assert f"0.600 [{lo:.3f}, {hi:.3f}]" in attn and "0.500-0.700" in attn and f"{1 / 246:.4f}" in attn
    routed = next(line for line in table.splitlines() if "Routed λ→0.5" in line)
    wlo, whi = wilson(25, 100)  # one seed: Wilson over its 100 test examples
    assert f"0.250 [{wlo:.3f}, {whi:.3f}]" in routed and "0.125" in routed and "| 0/1 " in routed
    assert battery_table(pd.DataFrame()).endswith("has no finished cell yet.")


def test_usage_mode_names_the_headline_outcomes():
    assert usage_mode(0.0025, [0.001, 0.009, 0.0, 0.0]) == "≤ 0.5%"
    assert usage_mode(0.2498, [0.006, 0.001, 0.992, 0.0]) == "one whole layer"
    assert usage_mode(0.0263, [0.026, 0.0, 0.079, 0.0]) == "spread over layers"


def test_faithful_swap_lines_set_a_retrain_beside_the_headline_cell():
    def row(control, acc, usage, per_layer, key="k0", seed=0):
        return {"config_hash": key, "seed": seed, "tier": "faithful", "task": "assoc_recall", "distance": 126,
                "lambda_target": 0.5, "control": control, "accuracy": acc, "usage": usage,
                "usage_per_layer": json.dumps(per_layer)}
    low, layer = [0.001, 0.009, 0.0, 0.0], [0.0, 0.0, 0.99, 0.0]
    controls = pd.DataFrame([row("learned", 1.0, 0.0025, low), row("last", 0.75, 0.0025, low),
                             row("learned", 1.0, 0.2475, layer, key="k1", seed=1),
                             row("oracle", 0.5, 0.0078, [0.0078] * 4, key="k1", seed=1),
                             {**row("learned", 0.9, 0.5, [0.5, 0.5]), "tier": "mini", "config_hash": "m"}])
    headline = pd.DataFrame([{"config_hash": "k0", "accuracy": 1.0, "usage": 0.0030, "usage_per_layer": json.dumps(low)},
                             {"config_hash": "k1", "accuracy": 1.0, "usage": 0.0020, "usage_per_layer": json.dumps(low)}])
    lines = faithful_swap_lines(controls, headline)
    assert len(lines) == 2  # the mini row is not a faithful model
    assert lines[0].startswith("- faithful assoc_recall d=126 λ→0.5, seed 0 (usage 0.0025, ≤ 0.5%): learned 1.000, "
                               "last 0.750;")
    assert lines[0].endswith("usage 0.0030 (≤ 0.5%), the same mode")
    assert "seed 1 (usage 0.2475, one whole layer): learned 1.000, oracle 0.500;" in lines[1]
    assert lines[1].endswith("another mode")
    assert faithful_swap_lines(controls[controls["tier"] == "mini"], headline) == []
    assert "headline's run" not in faithful_swap_lines(controls, pd.DataFrame())[0]


def test_the_audit_swaps_the_decisions_of_a_swaps_faithful_run(tmp_path):
    """A run of the profile named swaps-faithful (faithful-size routed models with kept weights)
    joins the audit: its models get decision swaps in the faithful tier, point 4 lists them per
    seed, and point 6 no longer says that no faithful model kept its weights."""
    swaps = {"name": "swaps-faithful", "description": "test", "decides_claims": False, "protocol": "smoke",
             "test_sequences": 16, "save_models": True,
             "grid": [{"task": "assoc_recall", "distances": [14], "models": ["routed"], "lambdas": [0.5],
                       "seeds": [0]}]}
    swaps_run, audit_run, text = _audit_beside(tmp_path, swaps)
    assert f"swaps: `{swaps_run.path.name}` (complete, 1 cells)" in text
    (key,) = swaps_run.runs()["config_hash"]
    controls = pd.read_csv(audit_run.path / CONTROLS)
    assert set(controls.loc[controls["config_hash"] == key, "tier"]) == {"faithful"}
    assert "- faithful assoc_recall d=14 λ→0.5, seed 0 (usage " in text
    assert "No faithful-size model kept its weights" not in text
    assert "faithful" in set(pd.read_csv(audit_run.path / "regret.csv")["tier"])


def test_the_audit_reads_a_mqar_learnable_run_and_names_its_protocol(tmp_path):
    learnable = {"name": "mqar-learnable", "description": "test", "decides_claims": False, "protocol": "smoke",
                 "test_sequences": 16, "save_models": True, "model": TINY["model"],
                 "grid": [{"task": "mqar", "distances": [6], "task_params": {"n_pairs": 2, "n_queries": 1},
                           "models": ["routed"], "lambdas": [0.5], "seeds": [0]}]}
    run, audit_run, text = _audit_beside(tmp_path, learnable)
    assert f"mqar-learnable: `{run.path.name}` (complete, 1 cells)" in text
    assert (f"## Can mqar be learned? (mini tier, smoke protocol: 2 baseline / 2 phase-1 epochs of 5 steps; run "
            f"`{run.path.name}`)") in text
    (key,) = run.runs()["config_hash"]
    assert key in set(pd.read_csv(audit_run.path / CONTROLS)["config_hash"])
    assert "smoke" in set(pd.read_csv(audit_run.path / "regret.csv")["protocol"])


def test_the_audit_reads_a_mqar_controls_run_as_trained_from_scratch_controls(tmp_path):
    """Fixed routers trained on mqar join point 4 as scratch controls with their protocol named; they
    get a routing analysis but no decision swaps (they learned no decisions to swap)."""
    learnable = {"name": "mqar-controls", "description": "test", "decides_claims": False, "protocol": "smoke",
                 "test_sequences": 16, "save_models": True, "model": TINY["model"],
                 "grid": [{"task": "mqar", "distances": [6], "task_params": {"n_pairs": 2, "n_queries": 1},
                           "models": ["routed"], "lambdas": [0.5], "seeds": [0], "model": {"router": "last"}}]}
    run, audit_run, text = _audit_beside(tmp_path, learnable)
    assert f"mqar-controls: `{run.path.name}` (complete, 1 cells)" in text
    assert ("- mqar (mini, d=6, smoke protocol: 2 baseline / 2 phase-1 epochs of 5 steps) last router trained "
            "from scratch: accuracy ") in text
    (key,) = run.runs()["config_hash"]
    assert key not in set(pd.read_csv(audit_run.path / CONTROLS)["config_hash"])
    analysis = pd.read_csv(audit_run.path / ANALYSIS)
    assert analysis.loc[analysis["config_hash"] == key, "router"].tolist() == ["last"]


def test_the_shortcut_verdict_is_given_per_tier_with_its_counts(tmp_path):
    def c(control, acc, seed, tier):
        return {**_control(control, acc, 0.01, 100.0, seed=seed), "tier": tier, "config_hash": f"{tier}{seed}",
                "usage_per_layer": json.dumps([0.01, 0.01])}
    controls = pd.DataFrame([c("learned", 0.99, 0, "faithful"), c("last", 0.99, 0, "faithful"),
                             c("learned", 1.0, 1, "faithful"), c("last", 0.98, 1, "faithful"),
                             c("learned", 0.99, 0, "mini"), c("last", 0.80, 0, "mini")])
    verdict, text = point4(controls, pd.DataFrame(), tmp_path)
    assert verdict == "faithful: SHORTCUT CONFIRMED (1 group, 2 models); mini: NOT CONFIRMED (1 group, 1 model)"
    assert "- assoc_recall (mini, d=126, λ→0.5, 1 model): learned 0.990, the same budget at the last positions 0.800" \
        in text
    unsolved = controls.assign(accuracy=0.01)
    assert point4(unsolved, pd.DataFrame(), tmp_path)[0] == "NO SOLVED assoc_recall MODEL ANALYSED"
    # a solved mqar group trained on a longer budget: its verdict joins, its line names the protocol
    mqar = pd.DataFrame([{**c(ctl, acc, 0, "mini"), "task": "mqar", "distance": 8, "config_hash": "q",
                          "protocol": "long"} for ctl, acc in (("learned", 0.98), ("last", 0.30))])
    verdict, text = point4(pd.concat([controls, mqar], ignore_index=True), pd.DataFrame(), tmp_path)
    assert verdict.endswith("; mqar: RESISTS THE SHORTCUT (the last positions fall short in 1 of 1 solved model)")
    assert ("- mqar (mini, d=8, λ→0.5, 1 model, long protocol: 180 baseline / 150 phase-1 epochs of 100 steps): "
            "learned 0.980, the same budget at the last positions 0.300\n") in text
    assert ("- mqar (mini, d=8, λ→0.5, seed 0, long protocol: 180 baseline / 150 phase-1 epochs of 100 steps; "
            "usage 0.0100, solved): learned 0.980, last 0.300") in text
    shortcut = mqar.assign(accuracy=0.98)
    assert point4(pd.concat([controls, shortcut]), pd.DataFrame(), tmp_path)[0].endswith("mqar: DOES NOT RESIST "
                                                                                          "(the last positions fall short in 0 of 1 solved model)")
    # bimodal mqar seeds: a group mean below the bar still counts its solved models, one by one
    unsolved = mqar.assign(config_hash="r", seed=1, accuracy=[0.26, 0.25])
    verdict, text = point4(pd.concat([controls, mqar, unsolved], ignore_index=True), pd.DataFrame(), tmp_path)
    assert verdict.endswith("; mqar: RESISTS THE SHORTCUT (the last positions fall short in 1 of 1 solved model)")
    assert ("learned 0.620, the same budget at the last positions 0.275 (mean accuracy below 0.9: 1 of 2 seeds "
            "solved it, each listed below)") in text
    assert "seed 0, long protocol" in text and "seed 1, long protocol" not in text


def test_budget_note_names_only_protocols_off_the_faithful_budget():
    assert budget_note(["faithful", "faithful-constant", "faithful-tf32", None]) == ""
    assert budget_note(["long", "faithful"]) == ", long protocol: 180 baseline / 150 phase-1 epochs of 100 steps"
    assert budget_note(["smoke"]) == ", smoke protocol: 2 baseline / 2 phase-1 epochs of 5 steps"
