"""`--until-decided` (issue 22, item 6): seeds go only to cells of undecided claims, a round at a time,
until decided or the budget is spent; the added cells live in the manifest, so a resume reads them."""
import dataclasses
import json

import pandas as pd
import pytest
import torch

from suite.cli import main
from suite.judge.claims import check_claims, load_registry
from suite.pipeline.until_decided import Budget, add_round, block_of, budget_from, next_round, worst_case
from suite.run.profiles import parse_profile
from suite.run.store import RunStore

REGISTRY = load_registry()
# named after a profile that decides T1-attn-126 and T1-conv-126; the cells are never trained here
PROFILE = {"name": "cpu", "description": "test", "test_sequences": 3000, "grid": [
    {"task": "assoc_recall", "distances": [126], "models": ["attn", "conv"], "seeds": [0, 1, 2]}]}


def row(cell, accuracy, ts=3000):
    return {"config_hash": cell.config_hash(ts), "status": "ok", "task": cell.task, "distance": cell.distance,
            "model": cell.model, "lambda_target": cell.lambda_target, "protocol": cell.protocol, "seed": cell.seed,
            "faithful_model": cell.faithful_model, "accuracy": accuracy, "test_correct": accuracy * ts,
            "test_total": ts, "usage": 1.0 if cell.model == "attn" else 0.0, "epoch_cap": None}


def rounds(data, budget, outcome):
    """Train (here: make up) every cell, then run rounds as `reproduce` does; the seeds per model at the end."""
    profile, n = parse_profile(data), 0
    runs = [row(c, outcome(c)) for c in profile.cells]
    while True:
        new, _ = next_round(profile, pd.DataFrame(runs), REGISTRY, budget)
        if not new:
            break
        n += 1
        data = {**data, "grid": data["grid"] + [block_of(c) for c in new]}
        profile = parse_profile(data)
        runs += [row(c, outcome(c)) for c in new]
    df = pd.DataFrame(runs)
    return df.groupby("model")["seed"].apply(sorted).to_dict(), n, check_claims(df, {"name": "cpu"}, REGISTRY)


def test_agreeing_seeds_stop_at_six():
    # AttnOnly solves every seed, ConvOnly none (as both claims say): both decided at 6 seeds, in 3 rounds
    seeds, n, claims = rounds(PROFILE, Budget(max_seeds=32), lambda c: 1.0 if c.model == "attn" else 0.01)
    assert seeds == {"attn": list(range(6)), "conv": list(range(6))} and n == 3
    v = claims.set_index("claim_id")
    assert v.loc["T1-attn-126", "verdict"] == "PASS" and v.loc["T1-conv-126", "verdict"] == "PASS"


def test_an_even_split_runs_to_the_budget_and_stays_inconclusive():
    seeds, n, claims = rounds(PROFILE, Budget(max_seeds=10), lambda c: 1.0 if c.seed % 2 else 0.01)
    assert seeds == {"attn": list(range(10)), "conv": list(range(10))} and n == 7
    assert claims.set_index("claim_id").loc["T1-attn-126", "verdict"] == "INCONCLUSIVE"


def test_only_undecided_cells_get_seeds():
    # AttnOnly undecided (3 of 3); ConvOnly decided at once when the profile already has 6 failing seeds
    data = {**PROFILE, "grid": [{"task": "assoc_recall", "distances": [126], "models": ["attn"], "seeds": [0, 1, 2]},
                                {"task": "assoc_recall", "distances": [126], "models": ["conv"], "seeds": list(range(6))}]}
    profile = parse_profile(data)
    new, claims = next_round(profile, pd.DataFrame([row(c, 1.0 if c.model == "attn" else 0.0) for c in profile.cells]),
                             REGISTRY, Budget(max_seeds=32))
    assert [(c.model, c.seed) for c in new] == [("attn", 3)] and "T1-attn-126" in claims
    assert "T1-conv-126" not in claims


def test_a_blocks_own_budget_works_without_the_flag_and_nothing_is_extended_without_either():
    data = {**PROFILE, "grid": [{**PROFILE["grid"][0], "max_seeds": 4}]}
    seeds, n, _ = rounds(data, Budget(), lambda c: 1.0)
    assert seeds == {"attn": [0, 1, 2, 3], "conv": [0, 1, 2, 3]} and n == 1
    assert not Budget().active(parse_profile(PROFILE))
    assert next_round(parse_profile(PROFILE), pd.DataFrame([row(c, 1.0) for c in parse_profile(PROFILE).cells]),
                      REGISTRY, Budget()) == ([], [])


def test_a_profile_that_decides_no_claim_gets_no_seeds():
    data = {**PROFILE, "name": "mine"}
    assert worst_case(parse_profile(data), REGISTRY, Budget(max_seeds=8)) == []


def test_the_worst_case_takes_every_extensible_cell_to_its_budget():
    extra = worst_case(parse_profile(PROFILE), REGISTRY, Budget(max_seeds=8))
    assert sorted((c.model, c.seed) for c in extra) == [(m, s) for m in ("attn", "conv") for s in range(3, 8)]


def test_an_added_round_is_in_the_manifest_and_its_cells_are_the_cells_a_profile_would_list(tmp_path):
    profile = parse_profile(PROFILE, "")
    store = RunStore.create(tmp_path, "cpu", {"status": "running", "profile_data": PROFILE,
                                              "cells": [c.describe() for c in profile.cells]})
    new, _ = next_round(profile, pd.DataFrame([row(c, 1.0) for c in profile.cells]), REGISTRY, Budget(max_seeds=32))
    grown, budget = add_round(store, profile, new, Budget(max_seeds=32))
    m = store.manifest()
    assert m["until_decided"] == {"max_seeds": 32, "rounds": 1} and budget.rounds == 1
    again = parse_profile(m["profile_data"])
    assert len(again.cells) == 8 and m["cells"] == [c.describe() for c in again.cells]
    listed = parse_profile({**PROFILE, "grid": [{**PROFILE["grid"][0], "seeds": [0, 1, 2, 3]}]})
    ts = profile.test_sequences
    assert {c.config_hash(ts) for c in again.cells} == {c.config_hash(ts) for c in listed.cells}
    assert budget_from(False, None, m["until_decided"]) == budget   # a resume keeps the budget


def test_max_seeds_alone_or_out_of_range_stops_before_any_work(tmp_path, capsys):
    for args, needle in ((["--max-seeds", "4"], "--max-seeds: only with --until-decided"),
                         (["--until-decided", "--max-seeds", "33"], "--max-seeds"),
                         (["--until-decided", "--max-seeds", "0"], "--max-seeds")):
        rc = main(["reproduce", "--profile", "smoke", "--results-dir", str(tmp_path / "r"), *args])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and needle in err
        assert not (tmp_path / "r").exists()


def test_the_plan_shows_the_budget_and_the_worst_case(tmp_path, capsys):
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps({**PROFILE, "test_sequences": 32, "grid": [
        {"task": "assoc_recall", "distances": [126], "models": ["conv"], "seeds": [0, 1, 2], "epoch_cap": 1}]}))
    assert main(["reproduce", "--profile", str(path), "--results-dir", str(tmp_path / "r"), "--dry-run",
                 "--until-decided", "--max-seeds", "5"]) == 0
    out = capsys.readouterr().out
    assert "Until decided (up to 5 seeds per cell)" in out and "worst case 2 more cells, at most" in out
    assert not (tmp_path / "r").exists()


def test_reproduce_runs_rounds_until_decided_and_a_resume_after_ctrl_c_goes_on(tmp_path, monkeypatch, capsys):
    """The driver's loop with training made up (every AttnOnly and ConvOnly seed agrees with its
    claim): Ctrl-C in round 2, then a resume without the flag keeps the budget and finishes at 6."""
    import suite.pipeline.reproduce as rp

    stored, interrupt = {}, {"at": 4}

    def fake_train(store, profile, *a, **k):
        for c in profile.cells:
            key = c.config_hash(profile.test_sequences)
            if key not in stored:
                if c.seed == interrupt["at"]:
                    interrupt["at"] = None
                    raise KeyboardInterrupt
                threads = torch.get_num_threads()
                stored[key] = {**row(c, 1.0 if c.model == "attn" else 0.01, profile.test_sequences),
                               "device": f"cpu:test x{threads} threads", "threads": threads}

    monkeypatch.setattr(rp, "train_cells", fake_train)
    monkeypatch.setattr(RunStore, "runs", lambda self: pd.DataFrame(list(stored.values())))
    monkeypatch.setattr(RunStore, "finished_cells", lambda self: set(stored))
    monkeypatch.setattr(rp, "write_report", lambda store, status=None: (store.runs(), pd.DataFrame()))
    monkeypatch.setattr(rp, "print_summary", lambda *a: None)
    monkeypatch.setattr(rp, "estimate", lambda profile, device, done=(): [1.0] * len(profile.cells))
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps(PROFILE))
    results = tmp_path / "results"
    args = ["reproduce", "--profile", str(path), "--results-dir", str(results), "--quiet"]
    assert main(args + ["--until-decided", "--max-seeds", "12"]) == 130
    err = capsys.readouterr().err
    (run,) = [p for p in results.glob("*/*") if (p / "manifest.json").is_file()]
    assert f"--resume {run.name}" in err
    m = json.loads((run / "manifest.json").read_text())
    assert m["until_decided"] == {"max_seeds": 12, "rounds": 2} and len(m["cells"]) == 10
    assert main(["reproduce", "--resume", run.name, "--results-dir", str(results), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Until decided, round 3: 2 more cell(s) for T1-attn-126, T1-conv-126" in out
    assert "nothing left to add after round 3" in out
    m = json.loads((run / "manifest.json").read_text())
    assert m["until_decided"]["rounds"] == 3 and m["status"] == "complete"
    assert sorted(r["seed"] for r in stored.values() if r["model"] == "attn") == list(range(6))
