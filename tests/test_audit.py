"""The audit command end to end on tiny profiles (run once for the module: the audit's own run
beside a mqar-mini, swaps-faithful, mqar-learnable and mqar-controls run), and its pieces on
hand-made tables: the findings' verdicts and numbers, the router regret, the rate-based routing
analysis, and the rendering of AUDIT.md from the findings."""
import json

import pandas as pd
import pytest

from suite.audit.analysis import ANALYSIS, CONTROLS, analyse, analysis_from_rates
from suite.audit.build import audit_findings, battery_table
from suite.audit.common import RUNS_USAGE, budget_note
from suite.audit.findings import AuditFindings, Finding, SourceRef
from suite.audit.inputs import SOURCES, SWAP_SOURCES, gather, newest_run
from suite.audit.shortcut import baseline_lines
from suite.cli import main
from suite.commands.audit import AUDIT, audit
from suite.errors import ConfigError
from suite.judge.registry import REGISTRY, load_registry
from suite.judge.stats import bootstrap_interval, wilson
from suite.report.audit_md import render
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
MQAR = {"task": "mqar", "task_params": {"n_pairs": 2, "n_queries": 1}, "lambdas": [0.5], "seeds": [0]}

#: the whole file shares one end-to-end audit (about 85 s on 2 idle cores)
pytestmark = pytest.mark.slow


def _source(name, grid, model=TINY["model"]):
    prof = {"name": name, "description": "test", "decides_claims": False, "protocol": "smoke", "test_sequences": 16,
            "save_models": True, "grid": grid}
    return dict(prof, model=model) if model else prof


#: the runs beside the audit's own: each joins it as its profile name says
BESIDE = [_source("mqar-mini", [dict(MQAR, distances=[10], models=["attn", "routed"])]),
          _source("swaps-faithful", [{"task": "assoc_recall", "distances": [14], "models": ["routed"],
                                      "lambdas": [0.5], "seeds": [0]}], model=None),
          _source("mqar-learnable", [dict(MQAR, distances=[6], models=["routed"])]),
          _source("mqar-controls", [dict(MQAR, distances=[6], models=["routed"], model={"router": "last"})])]
SMOKE = ", smoke protocol: 2 baseline / 2 phase-1 epochs of 5 steps"


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """The sources reproduced, then one audit beside them with a claims file of its own (the headline
    claim's usage bound raised to 100%, so every faithful swap line reads '≤ 100.0%')."""
    root = tmp_path_factory.mktemp("audit")
    results = root / "r"
    for prof in BESIDE:
        (root / f"{prof['name']}.json").write_text(json.dumps(prof))
        assert main(["reproduce", "--profile", str(root / f"{prof['name']}.json"), "--results-dir", str(results),
                     "--quiet"]) == 0
    claims = json.loads(REGISTRY.read_text())
    for c in claims["claims"]:
        if c["id"] == "T1-r05-126":
            c["checks"] = [dict(ch, threshold=1.0) if ch["metric"] == "usage" else ch for ch in c["checks"]]
    (root / "claims.json").write_text(json.dumps(claims))
    (root / "a.json").write_text(json.dumps(TINY))
    assert main(["audit", "--profile", str(root / "a.json"), "--results-dir", str(results), "--quiet",
                 "--claims-file", str(root / "claims.json")]) == 0
    (store,) = RunStore.of_profile(results, "tinyaudit", complete=True)
    sources = {p["name"]: RunStore.of_profile(results, p["name"], complete=True)[0] for p in BESIDE}
    findings = audit_findings(gather(store, results), load_registry(root / "claims.json"))
    return {"results": results, "store": store, "sources": sources, "findings": findings,
            "text": (store.path / AUDIT).read_text()}


def _own(df: pd.DataFrame, store: RunStore) -> pd.DataFrame:
    return df[df["run_id"] == store.path.name]


def test_the_audit_answers_six_points_from_its_own_run(audited):
    f, store = audited["findings"], audited["store"]
    assert [p.point for p in f.points] == [1, 2, 3, 4, 5, 6]
    assert all(isinstance(p, Finding) for p in f.points)
    # no headline run: the points that read it say so; the sources it could not find are named
    assert f.point(1).verdict == f.point(3).verdict == f.point(5).verdict == "NO DATA"
    assert next(s for s in f.sources if s.key == "headline") == SourceRef(key="headline")
    assert "headline: not run" in audited["text"]
    controls = _own(pd.read_csv(store.path / CONTROLS), store)
    learned_cells = 3  # two gumbel seeds on assoc_recall, one on mqar; the 'last' router is a control itself
    assert controls["config_hash"].nunique() == learned_cells
    per_cell = controls.groupby("config_hash")["control"].apply(set)
    assert all({"learned", "random", "last", "oracle", "one_layer", "conv", "attn"} <= s for s in per_cell)
    analysis = _own(pd.read_csv(store.path / ANALYSIS), store)
    assert len(analysis) == 4 and set(analysis["source"]) == {"weights"}
    regret_table = pd.read_csv(store.path / "regret.csv")
    assert {"assoc_recall", "mqar"} <= set(regret_table["task"])
    # point 6 speaks for every group of the regret table, with its counts
    six = f.point(6)
    assert len(six.parts) == len(regret_table)
    assert sum(six.numbers.values()) == len(regret_table)
    assert set(six.parts.values()) <= {"LEARNED BETTER", "CONTROL BETTER", "NEITHER SOLVES", "TIE", "UNDECIDED",
                                       "NO CONTROL AT THIS BUDGET"}
    assert {e.run_id for e in six.evidence} >= {store.path.name}
    # point 2 reads every analysed learned-router model, per tier; the fixed 'last' routers are not plateaus
    two = f.point(2)
    assert set(two.parts) == {"faithful", "mini"}
    every = pd.read_csv(store.path / ANALYSIS)
    assert two.numbers["faithful_cells"] + two.numbers["mini_cells"] == (every["router"] != "last").sum() == 6


def test_a_rerun_analyses_nothing_twice(audited):
    store, results = audited["store"], audited["results"]
    before = {n: pd.read_csv(store.path / n) for n in (CONTROLS, ANALYSIS)}
    sources = [store] + [s for s in (newest_run(results, SOURCES[k]) for k in (*SWAP_SOURCES, "headline")) if s]
    analyse(store, sources, "cpu", progress=False)
    for n, df in before.items():
        assert len(pd.read_csv(store.path / n)) == len(df)


def test_the_audit_reads_the_mqar_mini_run(audited):
    """Its routed models get their decision swaps and its table gets its own section."""
    mqar_run, f, store = audited["sources"]["mqar-mini"], audited["findings"], audited["store"]
    assert next(s for s in f.sources if s.key == "mqar") == SourceRef(key="mqar", run_id=mqar_run.path.name,
                                                                      status="complete", cells=2)
    assert f"mqar: `{mqar_run.path.name}` (complete, 2 cells)" in audited["text"]
    titles = [s.title for s in f.sections]
    assert f"Shortcut-resistant recall at longer distances (mini tier, run `{mqar_run.path.name}`)" in titles
    mqar_routed = set(mqar_run.runs().query("model == 'routed'")["config_hash"])
    controls = pd.read_csv(store.path / CONTROLS)
    assert mqar_routed <= set(controls["config_hash"]) and len(mqar_routed) == 1
    assert "mqar" in set(pd.read_csv(store.path / "regret.csv")["task"])


def test_the_audit_swaps_the_decisions_of_a_swaps_faithful_run(audited):
    """Faithful-size routed models with kept weights get decision swaps in the faithful tier, point 4
    lists them per seed (with the usage mode of the claims file given), and point 6 no longer says
    that no faithful model kept its weights."""
    swaps_run, f, store = audited["sources"]["swaps-faithful"], audited["findings"], audited["store"]
    assert next(s for s in f.sources if s.key == "swaps").cells == 1
    (key,) = swaps_run.runs()["config_hash"]
    controls = pd.read_csv(store.path / CONTROLS)
    assert set(controls.loc[controls["config_hash"] == key, "tier"]) == {"faithful"}
    (line,) = [x for x in f.point(4).lines if x.startswith("faithful assoc_recall d=14 λ→0.5, seed 0 (usage ")]
    assert ", ≤ 100.0%: " in line  # --claims-file reached the audit
    assert not any("No faithful-size model kept its weights" in p for p in f.point(6).intro)
    assert "faithful" in set(pd.read_csv(store.path / "regret.csv")["tier"])
    assert any(v.startswith("assoc_recall faithful d=14") for v in f.point(6).parts)


def test_the_audit_reads_a_mqar_learnable_run_and_names_its_protocol(audited):
    run, f, store = audited["sources"]["mqar-learnable"], audited["findings"], audited["store"]
    assert next(s for s in f.sources if s.key == "mqar-learnable").run_id == run.path.name
    assert f"Can mqar be learned? (mini tier{SMOKE}; run `{run.path.name}`)" in [s.title for s in f.sections]
    (key,) = run.runs()["config_hash"]
    assert key in set(pd.read_csv(store.path / CONTROLS)["config_hash"])
    assert "smoke" in set(pd.read_csv(store.path / "regret.csv")["protocol"])


def test_the_audit_reads_a_mqar_controls_run_as_trained_from_scratch_controls(audited):
    """Fixed routers trained on mqar join point 4 as scratch controls with their protocol named; they
    get a routing analysis but no decision swaps (they learned no decisions to swap)."""
    run, f, store = audited["sources"]["mqar-controls"], audited["findings"], audited["store"]
    assert next(s for s in f.sources if s.key == "mqar-controls").cells == 1
    assert any(x.startswith(f"mqar (mini, d=6{SMOKE}) last router trained from scratch: accuracy ")
               for x in f.point(4).lines)
    (key,) = run.runs()["config_hash"]
    assert key not in set(pd.read_csv(store.path / CONTROLS)["config_hash"])
    analysis = pd.read_csv(store.path / ANALYSIS)
    assert analysis.loc[analysis["config_hash"] == key, "router"].tolist() == ["last"]
    assert {"run_id": run.path.name, "config_hash": key, "seed": 0} in [e.model_dump() for e in f.point(4).evidence]


def test_audit_md_shows_every_finding_as_the_record_says(audited):
    f, text = audited["findings"], audited["text"]
    for p in f.points:
        assert f"## {p.point}. {p.title}\n\n**Verdict: {p.summary}**" in text
        for line in p.lines:
            assert f"\n- {line}" in text
        for para in p.intro:
            assert para in text
    assert text.count("**Verdict: ") == 6
    for s in f.sections:
        assert f"## {s.title}" in text
    # the figures drawn are linked, and only they
    four = AuditFindings.model_validate(f.model_dump()).with_figures({"controls": ["audit_controls.png"]}).point(4)
    assert "![decision swaps](figures/audit_controls.png)" in render(f.model_copy(update={"points": [four]}))
    assert "![decision swaps](figures/audit_controls.png)" in text


def test_a_bad_claims_file_stops_the_audit_before_it_trains(tmp_path):
    (tmp_path / "claims.json").write_text("{")
    with pytest.raises(ConfigError, match="claims file"):
        audit("audit", tmp_path / "r", None, "cpu", claims_file=tmp_path / "claims.json")
    assert not (tmp_path / "r").exists()


def test_the_mqar_baselines_say_when_attnonly_does_not_learn_the_task_either():
    def row(model, d, acc, seed):
        return {"task": "mqar", "distance": d, "model": model, "seed": seed, "accuracy": acc, "status": "ok",
                "tier": "mini"}
    runs = pd.DataFrame([row("attn", 126, 0.005, 0), row("attn", 126, 0.007, 1), row("conv", 126, 0.006, 0),
                         row("attn", 254, 0.99, 0), row("attn", 254, 0.97, 1),
                         dict(row("attn", 510, 0.99, 0), status="failed"),
                         dict(row("attn", 126, 0.99, 0), task="assoc_recall")])
    lines = baseline_lines(runs, "mqar")
    assert len(lines) == 2  # the failed cell and the other task are not read
    assert lines[0].startswith("mqar (mini, d=126) baselines: AttnOnly 0.0060 [")
    assert "ConvOnly 0.0060" in lines[0] and "AttnOnly does not learn it here either" in lines[0]
    assert lines[1].startswith("mqar (mini, d=254) baselines: AttnOnly 0.9800 [")
    assert "does not learn" not in lines[1]
    # where a routed seed solved it, an unlearned AttnOnly says so instead of 'cannot tell'
    solved = baseline_lines(runs, "mqar", {(126, "mini"): (2, 3), (254, "mini"): (1, 3)})
    assert solved[0].endswith("— AttnOnly does not learn it in this budget (below 0.9); the routed model does in 2 "
                              "of 3 seeds")
    assert solved[1] == lines[1]


def test_the_rate_based_analysis_of_a_cell_without_weights(tmp_path):
    store = RunStore(tmp_path)
    row = {"config_hash": "c", "task": "assoc_recall", "task_params": json.dumps({"distance": 6}), "distance": 6,
           "tier": "faithful", "router": "", "lambda_target": 0.5, "seed": 3, "protocol": "faithful",
           "usage_per_layer": json.dumps([0.125, 1.0])}
    T = 8
    rates = pd.DataFrame([{"layer": layer, "position": t, "attention_rate": r}
                          for layer, rs in enumerate([[0] * 7 + [1.0], [1.0] * 8]) for t, r in enumerate(rs)])
    a = analysis_from_rates(row, rates, store)
    assert a["tier"] == "faithful" and a["router"] == "gumbel"
    assert a["precision_layer_0"] == 1.0 and a["recall_layer_0"] == 1.0
    assert a["precision_layer_1"] == pytest.approx(1 / T) and a["recall_layer_1"] == 1.0
    assert a["attention_positions_per_sequence_layer_0"] == 1.0
    assert a["attention_positions_per_sequence_layer_1"] == 8.0
    assert a["query_share"] == pytest.approx(2 / 9)
    assert a["plateau"] and a["whole_layer"] and a["plateau_label"] == "one whole layer" and a["mode"] == "one whole layer"  # mean 0.5625, layer 1 full
    mqar = {**row, "task": "mqar", "task_params": json.dumps({"distance": 8, "n_pairs": 2, "n_queries": 1})}
    assert analysis_from_rates(mqar, rates, store) is None  # scored positions differ by row: needs the weights


def test_battery_table_gives_the_interval_the_range_and_chance():
    rows = [{"status": "ok", "task": "induction_heads", "distance": 6, "model": "attn", "lambda_target": 0.0,
             "seed": s, "accuracy": a, "test_correct": int(a * 100), "test_total": 100, "usage": 1.0,
             "task_params": json.dumps({"distance": 6})} for s, a in enumerate([0.5, 0.6, 0.7])]
    rows.append({**rows[0], "model": "routed", "lambda_target": 0.5, "accuracy": 0.25, "test_correct": 25,
                 "usage": 0.125, "phase2_ran": False})
    table = battery_table(pd.DataFrame(rows))
    by_series = {r[table.columns.index("series")]: dict(zip(table.columns, r)) for r in table.rows}
    lo, hi = bootstrap_interval([0.5, 0.6, 0.7])  # seeds are bimodal here: no normal shape assumed
    attn = by_series["AttnOnly"]
    assert attn["accuracy [95%]"] == f"0.600 [{lo:.3f}, {hi:.3f}]" and attn["per-seed range"] == "0.500-0.700"
    assert attn["chance"] == f"{1 / 246:.4f}" and attn["seeds"] == 3 and attn["phase 2 ran"] == ""
    routed = by_series["Routed λ→0.5"]
    wlo, whi = wilson(25, 100)  # one seed: Wilson over its 100 test examples
    assert routed["accuracy [95%]"] == f"0.250 [{wlo:.3f}, {whi:.3f}]" and routed["usage"] == "0.125"
    assert routed["phase 2 ran"] == "0/1"
    assert table.note == RUNS_USAGE and "the last epoch's" in table.note  # which usage the table shows
    assert battery_table(pd.DataFrame()) is None


def test_budget_note_names_only_protocols_off_the_faithful_budget():
    assert budget_note(["faithful", "faithful-constant", "faithful-tf32", None]) == ""
    assert budget_note(["long", "faithful"]) == ", long protocol: 180 baseline / 150 phase-1 epochs of 100 steps"
    assert budget_note(["smoke"]) == ", smoke protocol: 2 baseline / 2 phase-1 epochs of 5 steps"
