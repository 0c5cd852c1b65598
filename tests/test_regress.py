"""`suite regress`: the verdict rule on hand-made rows, and end to end on a tiny tier where the
task is learnt in seconds (a test protocol with a larger learning rate), exit codes included."""
import dataclasses
import json

import pandas as pd
import pytest

import suite.commands.regress as regress_mod
import suite.run.tiers as tiers_mod
from suite.cli import main
from suite.judge.regress import compare, metric_verdict, overall
from suite.run.protocol import FAITHFUL, PROTOCOLS

FAST = dataclasses.replace(FAITHFUL, name="regress-test", lr=1e-2, steps_per_epoch=40, eval_batches=4,
                           baseline_max_epochs=8, phase1_max_epochs=8, phase2_epochs=2)
TIER = {"tiers": {"mini": {
    "description": "a test tier: d=32, one layer, conv kernel 2, recall at distance 6",
    "faithful": False, "protocol": "regress-test", "test_sequences": 64, "lambda": 0.5,
    "model": {"d_model": 32, "n_layers": 1, "n_heads": 2, "kernel_size": 2},
    "battery": [{"task": "assoc_recall", "distances": [6]}], "reference": None}}}


@pytest.fixture
def tier(tmp_path, monkeypatch):
    monkeypatch.setitem(PROTOCOLS, FAST.name, FAST)
    path = tmp_path / "tiers.json"
    path.write_text(json.dumps(TIER))
    monkeypatch.setattr(tiers_mod, "TIERS", path)
    return tmp_path / "results"


def rows(acc, macs, seeds=(0, 1, 2)):
    return pd.DataFrame({"task": "t", "distance": 10, "seed": list(seeds), "accuracy": acc, "usage": 0.5,
                         "macs_forward_executed": macs, "latency_ms_model": 1.0})


# -- the rule -------------------------------------------------------------------------------------
def test_metric_verdicts_follow_the_written_rule():
    assert metric_verdict([0.0, 0.0, 0.0], 0.01)[3] == "SAME"
    assert metric_verdict([0.2, 0.25, 0.3], 0.01)[3] == "BETTER"
    assert metric_verdict([-0.2, -0.25, -0.3], 0.01)[3] == "WORSE"
    assert metric_verdict([-0.5, 0.5, 0.1], 0.01)[3] == "INCONCLUSIVE"
    assert metric_verdict([0.004, 0.006, 0.005], 0.01)[3] == "SAME"          # inside the margin


def test_overall_worse_better_same_and_inconclusive():
    ref = rows([1.0, 1.0, 0.99], [100.0, 100.0, 100.0])
    worse_acc = overall(compare(rows([0.01, 0.02, 0.01], [50.0] * 3), ref, "gumbel"))
    assert worse_acc[0] == "WORSE" and "accuracy WORSE where the original router solves" in worse_acc[1][0]
    costly = overall(compare(rows([1.0, 1.0, 0.99], [130.0, 131.0, 129.0]), ref, "gumbel"))
    assert costly[0] == "WORSE" and "executed MACs WORSE without better accuracy" in costly[1][0]
    cheaper = overall(compare(rows([1.0, 1.0, 0.99], [60.0, 61.0, 59.0]), ref, "gumbel"))
    assert cheaper[0] == "BETTER"
    assert overall(compare(ref, ref, "gumbel"))[0] == "SAME"
    noisy = overall(compare(rows([0.6, 1.0, 0.9], [100.0] * 3), ref, "gumbel"))
    assert noisy == ("INCONCLUSIVE", ["t d=10: accuracy INCONCLUSIVE where the original router solves the task"])
    # cheaper on one cell does not make up for a cell where the seeds cannot rule out a loss
    two = pd.concat([rows([1.0, 1.0, 0.99], [60.0, 61.0, 59.0]), rows([0.45, 0.98, 0.97], [60.0] * 3).assign(task="u")])
    both_ref = pd.concat([ref, ref.assign(task="u")])
    assert overall(compare(two, both_ref, "gumbel"))[0] == "INCONCLUSIVE"
    # a cell the original router does not solve: worse accuracy there is no regression by itself
    unsolved = rows([0.3, 0.2, 0.25], [100.0] * 3)
    assert overall(compare(rows([0.1, 0.1, 0.1], [100.0] * 3), unsolved, "gumbel"))[0] == "SAME"


def test_pairs_are_by_seed():
    t = compare(rows([1.0, 0.0], [1.0, 1.0], seeds=(0, 1)), rows([0.0, 1.0], [1.0, 1.0], seeds=(1, 0)), "x")
    assert t.loc[t.metric == "accuracy", "difference"].item() == 0.0


# -- end to end -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_regress_end_to_end_exit_codes_and_files(tier, capsys, monkeypatch):
    # the original router against its own reference: every reference cell trained and stored here
    assert main(["regress", "--router", "gumbel", "--seeds", "2", "--results-dir", str(tier), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Verdict: SAME" in out
    (first,) = [p for p in tier.glob("*/regress-mini-*")]
    assert {"runs.csv", "regress.csv", "REGRESS.md", "manifest.json"} <= {p.name for p in first.iterdir()}
    assert (first / "figures" / "pareto.png").stat().st_size > 0
    runs = pd.read_csv(first / "runs.csv")
    assert len(runs) == 6 and not runs["faithful_model"].any()
    assert (runs.loc[runs.model == "conv", "accuracy"] < 0.2).all()       # the tier's phenomena
    assert (runs.loc[runs.model == "attn", "accuracy"] > 0.9).all()
    # always_conv against that run: only the candidate trains, the references are read back
    before = set(runs["config_hash"])
    assert main(["regress", "--router", "always_conv", "--seeds", "2", "--results-dir", str(tier),
                 "--against", str(first), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "Verdict: WORSE" in out and "6 stored cells reused" in out
    (second,) = [p for p in tier.glob("*/regress-mini-*") if p != first]
    again = pd.read_csv(second / "runs.csv")
    assert before <= set(again["config_hash"]) and len(again) == 8
    assert set(again.loc[again["config_hash"].isin(before), "run_id"]) == {first.name}  # provenance kept
    table = pd.read_csv(second / "regress.csv")
    acc = table[(table.metric == "accuracy") & (table.against == "gumbel")]
    assert acc["verdict"].item() == "WORSE" and (table["overall"] == "WORSE").all()
    assert "## Verdict: WORSE" in (second / "REGRESS.md").read_text()
    # asked again: every cell is stored, so it judges again without training anything
    import suite.run.cell as reproduce_mod
    monkeypatch.setattr(reproduce_mod, "run_cell", lambda *a, **k: pytest.fail("trained again"))
    assert main(["regress", "--router", "always_conv", "--seeds", "2", "--results-dir", str(tier),
                 "--against", str(first), "--quiet"]) == 1
    assert "8 stored cells reused" in capsys.readouterr().out


@pytest.mark.parametrize("args,needle", [
    (["--router", "nosuch:Router"], "router: cannot import module 'nosuch'"),
    (["--router", "gumbel", "--tier", "huge"], "--tier: unknown 'huge'"),
    (["--router", "gumbel", "--seeds", "0"], "--seeds: Input should be greater than or equal to 1"),
    (["--router", "random", "--router-kwargs", '{"p": 2}'], "router_kwargs: random rejected"),
    (["--router", "gumbel", "--against", "/nonexistent/run"], "is not a results run"),
])
def test_regress_usage_errors_exit_2(tier, args, needle, capsys):
    assert main(["regress", "--results-dir", str(tier), "--quiet", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and needle in err, err
    assert not tier.exists() or not any(tier.rglob("runs.csv"))


def test_the_committed_mini_reference_holds_every_reference_cell_for_three_seeds():
    """So a user's regress on a CPU trains only their own router."""
    from suite.run.profiles import parse_profile
    from suite.run.store import RunStore
    tier = tiers_mod.load_tiers()["mini"]
    assert tier.reference and not tier.faithful
    profile = parse_profile(tiers_mod.regress_profile("mini", tier, "gumbel", {}, 3), "regress")
    stored = RunStore.open(tiers_mod.REPO / tier.reference).runs()
    assert {c.config_hash(profile.test_sequences) for c in profile.cells} <= set(stored["config_hash"])
    assert len(profile.cells) == 27 and (stored["status"] == "ok").all() and not stored["faithful_model"].any()
    # the tier's phenomena on the task the original reports: ConvOnly fails, AttnOnly and the router solve
    recall = stored[stored["task"] == "assoc_recall"]
    assert (recall.loc[recall.model == "conv", "accuracy"] < 0.05).all()
    assert (recall.loc[recall.model == "attn", "accuracy"] > 0.95).all()
    routed = recall[recall.model == "routed"]
    assert (routed["accuracy"] > 0.95).all() and (routed["usage"] < 1).all()


def test_a_crash_is_exit_3_never_a_verdict(tier, monkeypatch, capsys):
    monkeypatch.setattr(regress_mod, "train_cells", lambda *a, **k: None)
    monkeypatch.setattr(regress_mod, "series", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    assert main(["regress", "--router", "gumbel", "--seeds", "1", "--results-dir", str(tier), "--quiet"]) == 3
    assert "RuntimeError: boom" in capsys.readouterr().err


def test_pareto_draws_seeds_that_agree_exactly(tmp_path):
    from suite.figures.pareto import pareto
    same = pd.DataFrame({"task": "t", "distance": 10, "seed": [0, 1, 2], "accuracy": [0.1, 0.1, 0.1],
                         "macs_forward_executed": [1434464.0] * 3})
    assert [p.name for p in pareto({"candidate": same}, tmp_path, "x")] == ["pareto.pdf", "pareto.png"]
