"""Claims over several runs: only deciding runs count, a seed stored twice counts once, and the
results-wide table is written by `suite claims --all`."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from suite.cli import main
from suite.judge.claims import load_registry
from suite.judge.pooled import RunRows, judge_pooled
from tests.test_claims import rows

HEADLINE = Path(__file__).resolve().parent.parent / "results" / "0.1.0" / "headline-20261129T215657Z"


def by_id(verdicts):
    return {v.claim_id: v for v in verdicts}


def test_a_claim_spanning_two_runs_is_judged_over_both():
    r254 = RunRows("faithful-254-a", {"name": "faithful-254"}, rows("routed", [1.0] * 6, usage=[0.1] * 6, lam=0.1, distance=254))
    r510 = RunRows("faithful-510-a", {"name": "faithful-510"}, rows("routed", [1.0] * 6, usage=[0.1] * 6, lam=0.1, distance=510))
    v = by_id(judge_pooled([r254, r510], load_registry()))["H-savings-254-510-notional"]
    assert v.verdict == "PASS" and v.runs == "faithful-254-a, faithful-510-a"
    assert by_id(judge_pooled([r254], load_registry()))["H-savings-254-510-notional"].verdict == "INCONCLUSIVE"


def test_the_same_seed_in_two_runs_counts_once_and_non_deciders_do_not_count():
    big = RunRows("headline-a", {"name": "headline"}, rows("attn", [1.0] * 6))
    again = RunRows("cpu-b", {"name": "cpu"}, rows("attn", [0.5] * 3))       # seeds 0-2 again, other numbers
    mini = RunRows("battery-c", {"name": "battery-mini", "decides_claims": False}, rows("attn", [0.1] * 9))
    v = by_id(judge_pooled([again, big, mini], load_registry()))["T1-attn-126"]
    assert (v.verdict, v.n_seeds, v.successes, v.runs) == ("PASS", 6, 6, "headline-a")
    assert "3 seed(s) also stored in another run set aside" in v.note
    more = RunRows("cpu-d", {"name": "cpu"}, rows("attn", [1.0] * 8).query("seed >= 6"))
    v = by_id(judge_pooled([big, more], load_registry()))["T1-attn-126"]
    assert (v.n_seeds, v.runs) == (8, "cpu-d, headline-a")


def test_the_curriculum_contrast_reads_two_runs():
    ramp = RunRows("headline-a", {"name": "headline"}, rows("routed", [1.0] * 8, usage=[0.25] * 8, lam=0.5))
    const = RunRows("curriculum-b", {"name": "curriculum"},
                    rows("routed", [0.01] * 5, usage=0.0, lam=0.5, protocol="faithful-constant"))
    v = by_id(judge_pooled([ramp, const], load_registry()))["T2-effect05-126"]
    assert v.verdict == "PASS" and v.seed_success == "8/8 seeds against 0/5 seeds meet every check"


def test_claims_all_writes_the_results_wide_table(tmp_path, capsys):
    run = tmp_path / "0.1.0" / "headline-x"
    run.mkdir(parents=True)
    for name in ("runs.csv", "manifest.json"):                  # the committed headline run's rows
        shutil.copy(HEADLINE / name, run / name)
    assert main(["claims", "--all", "--results-dir", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "0.1.0" / "claims.csv").set_index("claim_id")
    assert table.loc["T1-attn-126", "verdict"] == "PASS" and table.loc["H-savings-126-executed", "verdict"] == "FAIL"
    md = (tmp_path / "0.1.0" / "CLAIMS.md").read_text()
    assert "Runs read (1): headline-x." in md and "by arithmetic" in md


@pytest.mark.parametrize("argv, message", [
    (["claims"], "claims: give a run folder or --all (one of the two)"),
    (["claims", "x", "--all"], "claims: give a run folder or --all (one of the two)"),
    (["claims", "--all", "--results-dir", "/nonexistent/r"], "results-dir: '/nonexistent/r' is not a directory"),
])
def test_claims_refuses_what_it_cannot_do_in_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {message}"] or err[-1].endswith(message)


def test_a_run_still_training_is_read_and_named_as_such():
    from suite.report.results_claims import render

    running = RunRows("faithful-254-a", {"name": "faithful-254"}, rows("attn", [1.0] * 2, distance=254), "running")
    done = RunRows("headline-a", {"name": "headline"}, rows("attn", [1.0] * 6))
    verdicts = judge_pooled([running, done], load_registry())
    assert by_id(verdicts)["T1-attn-254"].n_seeds == 2
    text = render(verdicts, [running, done])
    assert "faithful-254-a (running: 2 cells so far), headline-a." in text


def test_the_pooled_main_table_counts_each_seed_once_and_says_the_verdict():
    from suite.report.results_claims import pooled_main_table

    registry = load_registry()
    a = RunRows("headline-a", {"name": "headline"}, rows("attn", [1.0] * 6))
    b = RunRows("cpu-b", {"name": "cpu"}, rows("attn", [1.0] * 3))          # seeds 0-2 again: counted once
    runs = [a, b]
    table = pooled_main_table(judge_pooled(runs, registry), runs, registry).set_index("distance")
    assert table.loc[126, "AttnOnly"] == "100% n=6; 6/6 seeds meet T1-attn-126: PASS | pub. 100%"
    assert table.loc[254, "AttnOnly"].startswith("not run")
