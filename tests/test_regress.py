"""`suite regress`: the verdict rule on hand-made rows, and end to end on a tiny tier where the
task is learnt in seconds (a test protocol with a larger learning rate), exit codes included."""
import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import suite.commands.regress as regress_mod
import suite.run.tiers as tiers_mod
from suite.cli import main
from suite.judge.equivalence import MARGIN, clopper_pearson, compare_success, difference_interval
from suite.judge.regress import compare, metric_verdict, overall
from suite.judge.sequential import exact_interval
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


def rows(acc, macs=100.0, seeds=None):
    seeds = list(seeds if seeds is not None else range(len(acc)))
    return pd.DataFrame({"task": "t", "distance": 10, "seed": seeds, "accuracy": acc, "usage": 0.5,
                         "macs_forward_executed": macs, "latency_ms_model": 1.0})


def success(cand, ref):
    (c,) = compare(cand, ref, "gumbel")
    return c.success


SOLVE, COLLAPSE = 0.995, 0.45


# -- the rule: seed success --------------------------------------------------------------------
def test_identical_runs_with_enough_agreeing_seeds_are_same():
    ref = rows([SOLVE] * 11)
    s = success(ref, ref)
    assert (s.successes, s.n, s.verdict) == (11, 11, "SAME") and -MARGIN < s.low and s.high < MARGIN
    verdict, (reason,) = overall(compare(ref, ref, "gumbel"))
    assert verdict == "SAME" and reason.startswith("no difference beyond the margins: ")
    assert "t d=10 seed success 11/11 vs 11/11, difference +0.00 [" in reason      # the numbers behind it
    assert success(rows([SOLVE] * 10), rows([SOLVE] * 10)).verdict == "INCONCLUSIVE"   # 10 cannot show it


def test_a_candidate_that_collapses_where_the_reference_solves_is_worse():
    s = success(rows([COLLAPSE] * 6 + [SOLVE] * 2), rows([SOLVE] * 8))
    assert s.verdict == "WORSE" and s.p_worse <= 0.05
    verdict, reasons = overall(compare(rows([COLLAPSE] * 6 + [SOLVE] * 2), rows([SOLVE] * 8), "gumbel"))
    assert verdict == "WORSE" and reasons[0].startswith("t d=10: seed success WORSE (2/8 vs 8/8")
    assert success(rows([SOLVE] * 8), rows([COLLAPSE] * 6 + [SOLVE] * 2)).verdict == "BETTER"  # symmetric


def test_three_against_three_agreeing_is_inconclusive_and_says_what_would_decide():
    s = success(rows([SOLVE] * 3), rows([SOLVE] * 3))
    assert s.verdict == "INCONCLUSIVE" and (s.more, s.more_verdict) == (8, "SAME")
    assert s.more_text() == "8 more seeds per side at the observed rates (--seeds 11) would decide it: SAME"
    assert compare_success(11, 11, 11, 11).verdict == "SAME"             # what it promised holds
    assert compare_success(10, 10, 10, 10).verdict == "INCONCLUSIVE"     # and no fewer would do
    verdict, reasons = overall(compare(rows([SOLVE] * 3), rows([SOLVE] * 3), "gumbel"))
    assert verdict == "INCONCLUSIVE" and "(--seeds 11) would decide it: SAME" in reasons[0]
    # rates a margin apart never become SAME, whatever the seeds: none decides, and it says so
    s = compare_success(3, 4, 4, 4, margin=0.25)
    assert s.verdict == "INCONCLUSIVE" and s.more_verdict in ("WORSE", None)
    assert "no number of seeds up to 100" in compare_success(1, 2, 1, 2, margin=0.01).more_text()


def test_one_collapsed_seed_of_many_does_not_flip_same_into_inconclusive():
    cand, ref = rows([SOLVE] * 19 + [COLLAPSE]), rows([SOLVE] * 20)
    diffs = (cand["accuracy"] - ref["accuracy"]).tolist()
    assert metric_verdict(diffs, 0.01)[3] == "INCONCLUSIVE"     # the old rule: the mean's variance
    assert success(cand, ref).verdict == "SAME"                  # seed success: 19/20 against 20/20


def test_a_failed_candidate_cell_is_a_failed_seed():
    cand, ref = rows([SOLVE] * 11), rows([SOLVE] * 11)
    failed = rows([float("nan")] * 2, seeds=[11, 12])
    (c,) = compare(cand, ref, "gumbel", failed)
    assert (c.success.successes, c.success.n) == (11, 13)


def test_the_interval_is_the_suites_clopper_pearson_in_closed_form():
    for n in (1, 3, 7, 20):
        for k in range(n + 1):
            assert clopper_pearson(k, n, 0.9) == pytest.approx(exact_interval(k, n, 0.9), abs=1e-9)


def _same_region(n, m):
    low, high = difference_interval(np.arange(n + 1)[:, None], n, np.arange(m + 1)[None, :], m)
    return (-MARGIN < low) & (high < MARGIN)


@pytest.mark.parametrize("n,m,p_ref", [(11, 11, 1.0), (20, 20, 0.275), (40, 40, 1.0), (30, 10, 0.9), (50, 50, 0.625)])
def test_false_same_at_the_margin_is_at_most_alpha_by_simulation(n, m, p_ref):
    """4000 replicates where the true rates differ by exactly the margin: SAME at most ~5%."""
    same = _same_region(n, m)
    assert same.sum() > 0                                       # SAME is reachable at these n
    rng = np.random.default_rng(7)
    for p_cand in (p_ref - MARGIN, min(p_ref + MARGIN, 1.0)):
        if p_cand == p_ref or not 0 <= p_cand <= 1:
            continue
        k, j = rng.binomial(n, p_cand, 4000), rng.binomial(m, p_ref, 4000)
        assert same[k, j].mean() <= 0.06, (p_cand, p_ref, same[k, j].mean())
    assert all(compare_success(int(a), n, int(b), m).verdict == "SAME" for a, b in list(zip(*np.nonzero(same)))[:5])


def test_false_same_at_the_margin_is_at_most_alpha_exactly():
    """Every outcome enumerated at n = m from 3 to 60, true difference = the margin."""
    worst = 0.0
    for n in (3, 8, 11, 15, 20, 30, 40, 60):
        same = _same_region(n, n)
        for p_ref in np.linspace(MARGIN, 1.0, 31):
            pk = stats.binom.pmf(np.arange(n + 1), n, p_ref - MARGIN)
            pj = stats.binom.pmf(np.arange(n + 1), n, p_ref)
            worst = max(worst, float((np.outer(pk, pj) * same).sum()))
    assert worst <= 0.05


# -- the rule: cost and the overall verdict ----------------------------------------------------
def test_overall_cost_rules_and_the_exit_code_of_each_verdict():
    ref = rows([SOLVE] * 11, 100.0)
    costly = overall(compare(rows([SOLVE] * 11, [130.0 + i % 2 for i in range(11)]), ref, "gumbel"))
    assert costly[0] == "WORSE" and "executed MACs WORSE without better seed success" in costly[1][0]
    cheaper = overall(compare(rows([SOLVE] * 11, [60.0 + i % 2 for i in range(11)]), ref, "gumbel"))
    assert cheaper[0] == "BETTER"
    noisy = overall(compare(rows([SOLVE] * 11, [60.0, 140.0] * 5 + [100.0]), ref, "gumbel"))
    assert noisy[0] == "INCONCLUSIVE" and len(noisy[1]) == 1
    assert noisy[1][0].startswith("t d=10: executed MACs INCONCLUSIVE (executed MACs 100 vs 100, difference +0 [")
    # cheaper on one task does not make up for a task whose seeds cannot tell
    two = pd.concat([rows([SOLVE] * 11, 60.0), rows([SOLVE] * 9 + [COLLAPSE] * 2, 60.0).assign(task="u")])
    both_ref = pd.concat([ref, ref.assign(task="u")])
    assert overall(compare(two, both_ref, "gumbel"))[0] == "INCONCLUSIVE"
    assert [regress_mod.exit_code(v) for v in ("SAME", "BETTER", "INCONCLUSIVE", "WORSE")] == [0, 0, 0, 1]


def test_costs_are_paired_by_seed():
    (c,) = compare(rows([SOLVE] * 2, [1.0, 3.0], seeds=(0, 1)), rows([SOLVE] * 2, [3.0, 1.0], seeds=(1, 0)), "x")
    assert c.costs["macs_forward_executed"].difference == 0.0


@pytest.mark.parametrize("verdict,code", [("SAME", 0), ("BETTER", 0), ("INCONCLUSIVE", 0), ("WORSE", 1)])
def test_the_command_exits_by_the_verdict(tier, monkeypatch, verdict, code):
    monkeypatch.setattr(regress_mod, "train_cells", lambda *a, **k: None)
    monkeypatch.setattr(regress_mod, "series", lambda *a, **k: {"candidate": pd.DataFrame({"tier": []})})
    monkeypatch.setattr(regress_mod, "pareto", lambda *a, **k: None)
    monkeypatch.setattr(regress_mod, "judge", lambda *a, **k: verdict)
    assert main(["regress", "--router", "gumbel", "--seeds", "1", "--results-dir", str(tier), "--quiet"]) == code


@pytest.mark.parametrize("run", sorted((tiers_mod.REPO / "results").glob("*/regress-mini-*")), ids=lambda p: p.name)
def test_committed_regress_runs_are_judged_by_the_current_rule(run, tmp_path):
    """Re-judging a committed run from its stored cells gives the committed regress.csv."""
    copy = shutil.copytree(run, tmp_path / run.name, ignore=shutil.ignore_patterns("figures"))
    verdict = regress_mod.rejudge(copy)
    assert pd.read_csv(copy / "regress.csv").equals(pd.read_csv(run / "regress.csv"))
    assert json.loads((run / "manifest.json").read_text())["verdict"] == verdict
    assert (copy / "REGRESS.md").read_text() == (run / "REGRESS.md").read_text()


# -- end to end -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_regress_end_to_end_exit_codes_and_files(tier, capsys, monkeypatch):
    # the original router against its own reference: every reference cell trained and stored here;
    # three seeds cannot show equivalence, so not SAME but INCONCLUSIVE, saying how many would
    assert main(["regress", "--router", "gumbel", "--seeds", "3", "--results-dir", str(tier), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Verdict: INCONCLUSIVE" in out and "would decide it" in out
    (first,) = [p for p in tier.glob("*/regress-mini-*")]
    assert {"runs.csv", "regress.csv", "REGRESS.md", "manifest.json"} <= {p.name for p in first.iterdir()}
    assert (first / "figures" / "pareto.png").stat().st_size > 0
    runs = pd.read_csv(first / "runs.csv")
    assert len(runs) == 9 and not runs["faithful_model"].any()
    assert (runs.loc[runs.model == "conv", "accuracy"] < 0.2).all()       # the tier's phenomena
    assert (runs.loc[runs.model == "attn", "accuracy"] > 0.9).all()
    # always_conv against that run: only the candidate trains, the references are read back
    before = set(runs["config_hash"])
    assert main(["regress", "--router", "always_conv", "--seeds", "3", "--results-dir", str(tier),
                 "--against", str(first), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "Verdict: WORSE" in out and "9 stored cells reused" in out
    (second,) = [p for p in tier.glob("*/regress-mini-*") if p != first]
    again = pd.read_csv(second / "runs.csv")
    assert before <= set(again["config_hash"]) and len(again) == 12
    assert (again["status"] == "ok").all()     # the candidate trained: in its worker, under the test protocol
    assert set(again.loc[again["config_hash"].isin(before), "run_id"]) == {first.name}  # provenance kept
    table = pd.read_csv(second / "regress.csv")
    acc = table[table.against == "gumbel"]
    assert acc["success_verdict"].item() == "WORSE" and (table["overall"] == "WORSE").all()
    assert (acc["successes"].item(), acc["ref_successes"].item()) == (0, 3)
    assert "## Verdict: WORSE" in (second / "REGRESS.md").read_text()
    # asked again: every cell is stored, so it judges again without training anything
    import suite.run.cell as reproduce_mod
    monkeypatch.setattr(reproduce_mod, "run_cell", lambda *a, **k: pytest.fail("trained again"))
    assert main(["regress", "--router", "always_conv", "--seeds", "3", "--results-dir", str(tier),
                 "--against", str(first), "--quiet"]) == 1
    assert "12 stored cells reused" in capsys.readouterr().out


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
