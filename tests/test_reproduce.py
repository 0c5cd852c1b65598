"""The main job end to end: smoke profile, interruption and resume, bad input."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from suite.cli import main

REPO = Path(__file__).resolve().parent.parent


def run_dirs(results: Path):
    return sorted(p for p in results.glob("*/*") if (p / "manifest.json").is_file())


@pytest.mark.slow
@pytest.mark.figures
def test_smoke_profile_end_to_end(tmp_path, capsys):
    assert main(["reproduce", "--profile", "smoke", "--results-dir", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Estimated duration" in out and "CUT:" in out and "Claims (" in out
    (run,) = run_dirs(tmp_path)
    assert {p.name for p in run.iterdir() if p.name != ".lock"} == {
        "runs.csv", "history.csv", "routing.csv", "manifest.json", "claims.csv", "REPORT.md", "figures", "phase1"}
    # the one routed curriculum cell left its phase-1 checkpoint (the constant-schedule cell shares none)
    assert len(list((run / "phase1").glob("*.pt"))) == 1
    assert not list(run.glob(".*.tmp"))
    assert (run / "figures" / "accuracy_vs_distance.png").stat().st_size > 0
    report = (run / "REPORT.md").read_text()
    assert "![accuracy_vs_distance](figures/accuracy_vs_distance.png)" in report
    assert "## Compute: savings three ways" in report
    runs = pd.read_csv(run / "runs.csv")
    assert len(runs) == 6 and runs["config_hash"].is_unique
    for col in ("accuracy", "accuracy_low", "accuracy_high", "usage", "usage_layer_0", "epochs_phase1",
                "phase2_ran", "seconds", "config_hash", "data_fingerprint", "suite_version", "git_sha",
                "torch_version", "device", "profile", "protocol", "cuts", "seed", "test_total"):
        assert col in runs.columns, col
    assert (runs["test_sequences"] == 200).all() and (runs["cuts"].str.contains("tiny model")).all()
    assert (runs["status"] == "ok").all() and runs["error"].isna().all()
    assert runs["device"].str.match(r"cpu:.+ x\d+ threads$").all()
    for col in ("macs_forward_executed", "macs_forward_attn_ref", "savings_notional", "savings_executed",
                "savings_latency", "train_flops_phase1", "train_flops_phase2"):
        assert runs[col].notna().all(), col
    assert (runs["savings_notional"] == 1 - runs["usage"]).all()
    routing = pd.read_csv(run / "routing.csv")
    routed = runs[runs.model == "routed"]
    assert set(routing["config_hash"]) == set(routed["config_hash"])
    assert len(routing) == len(routed) * 1 * 16  # cells x layers x positions
    claims = pd.read_csv(run / "claims.csv")
    assert {"claim_id", "measured", "low", "high", "verdict", "n_seeds"} <= set(claims.columns)
    # smoke decides nothing
    assert set(claims["verdict"]) <= {"NOT-RUN", "INCONCLUSIVE"}
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["environment"]["torch"]
    history = pd.read_csv(run / "history.csv")
    assert set(history["config_hash"]) == set(runs["config_hash"])
    # re-checking the stored run reproduces the same verdicts without training
    assert main(["claims", str(run)]) == 0
    assert "Claims (" in capsys.readouterr().out


SLOW_PROFILE = {
    "name": "killable", "description": "test", "decides_claims": False, "protocol": "smoke",
    "test_sequences": 64, "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "kernel_size": 4},
    "grid": [{"task": "assoc_recall", "distances": [30], "models": ["attn", "conv", "routed"],
              "lambdas": [0.5], "seeds": [0, 1]}],
}


@pytest.mark.slow
def test_interrupted_run_resumes_with_exactly_one_row_per_cell(tmp_path):
    prof = tmp_path / "killable.json"
    prof.write_text(json.dumps(SLOW_PROFILE))
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "suite", "reproduce", "--profile", str(prof), "--results-dir", str(results), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    runs_csv = None
    while time.time() < deadline:
        dirs = run_dirs(results) if results.exists() else []
        if dirs and (dirs[0] / "runs.csv").exists():
            runs_csv = dirs[0] / "runs.csv"
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert runs_csv is not None, "no cell finished in time"
    stored = len(pd.read_csv(runs_csv))
    assert 1 <= stored < 4, "the kill must land mid-grid"
    run_id = runs_csv.parent.name
    r = subprocess.run(cmd[:4] + ["--resume", run_id, "--results-dir", str(results), "--quiet"], cwd=REPO, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "(stored)" in r.stdout
    runs = pd.read_csv(runs_csv)
    assert len(runs) == 6 and runs["config_hash"].is_unique
    assert set(pd.read_csv(runs_csv.parent / "history.csv")["config_hash"]) == set(runs["config_hash"])
    assert not list(runs_csv.parent.glob(".*.tmp"))
    assert len(run_dirs(results)) == 1


@pytest.mark.slow
def test_rerun_without_resume_continues_the_unfinished_run(tmp_path, capsys):
    prof = tmp_path / "p.json"
    prof.write_text(json.dumps({**SLOW_PROFILE, "name": "again"}))
    assert main(["reproduce", "--profile", str(prof), "--results-dir", str(tmp_path), "--quiet"]) == 0
    (run,) = run_dirs(tmp_path)
    # pretend the run was interrupted after its first two cells
    runs = pd.read_csv(run / "runs.csv")
    runs.iloc[:2].to_csv(run / "runs.csv", index=False)
    m = json.loads((run / "manifest.json").read_text())
    m["status"] = "running"
    (run / "manifest.json").write_text(json.dumps(m))
    capsys.readouterr()
    assert main(["reproduce", "--profile", str(prof), "--results-dir", str(tmp_path), "--quiet"]) == 0
    assert "Resuming the unfinished run" in capsys.readouterr().out
    assert run_dirs(tmp_path) == [run]
    again = pd.read_csv(run / "runs.csv")
    assert len(again) == 6 and again["config_hash"].is_unique
    assert again["config_hash"].iloc[:2].tolist() == runs["config_hash"].iloc[:2].tolist()


@pytest.mark.parametrize("make_args,needle", [
    (lambda t: ["reproduce", "--profile", "laptop"], "profile: unknown 'laptop'"),
    (lambda t: ["reproduce", "--profile", "smoke", "--results-dir", str(t / "file")], "is not a directory"),
    (lambda t: ["reproduce", "--profile", str(t / "bad.json")], "distance"),
    (lambda t: ["reproduce", "--resume", "nope", "--results-dir", str(t)], "resume: no run 'nope'"),
    (lambda t: ["reproduce", "--resume", "*", "--results-dir", str(t)], "'*'"),
    (lambda t: ["reproduce", "--resume", "../x", "--results-dir", str(t)], "'../x'"),
    (lambda t: ["reproduce", "--resume", "", "--results-dir", str(t)], "''"),
    (lambda t: ["reproduce", "--profile", "smoke", "--results-dir", str(t / "file" / "sub")], "lies under the file"),
    (lambda t: ["reproduce", "--device", "tpu"], "--device: unknown 'tpu'"),
    (lambda t: ["claims", str(t)], "is not a results run"),
    (lambda t: ["claims", str(t / "run"), "--claims-file", str(t / "claims.json")], "comparator"),
])
def test_bad_input_stops_before_any_work(tmp_path, capsys, monkeypatch, make_args, needle):
    (tmp_path / "file").write_text("x")
    (tmp_path / "bad.json").write_text(json.dumps({"name": "bad", "grid": [
        {"task": "assoc_recall", "distances": [1], "models": ["attn"], "seeds": [0]}]}))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "manifest.json").write_text(json.dumps({"profile": {"name": "x"}}))
    (tmp_path / "claims.json").write_text(json.dumps({"claims": [{
        "id": "x", "source": "T1", "claim": "c", "published": "1%", "profiles": [],
        "select": {"task": "assoc_recall", "distance": 126, "model": "attn", "protocol": "faithful"},
        "checks": [{"metric": "accuracy", "comparator": "about", "threshold": 0.1}]}]}))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    monkeypatch.chdir(tmp_path)
    assert main(make_args(tmp_path)) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_dry_run_writes_nothing(tmp_path, capsys):
    assert main(["reproduce", "--profile", "smoke", "--results-dir", str(tmp_path / "r"), "--dry-run"]) == 0
    assert "Estimated duration" in capsys.readouterr().out
    assert not (tmp_path / "r").exists()


def test_the_plan_keeps_its_columns_for_long_cell_names():
    """Cells with router kwargs have long names; the epochs and minutes columns must still line up."""
    import torch

    from suite.run.plan import plan_text
    from suite.run.profiles import load_profile
    profile = load_profile("mqar-controls")
    text = plan_text(profile, torch.device("cpu"), [60.0] * len(profile.cells), set())
    rows = text.splitlines()
    head = next(i for i, line in enumerate(rows) if line.lstrip().startswith("#  cell"))
    table = rows[head:head + 1 + len(profile.cells)]
    assert max(len(c.describe()) for c in profile.cells) > 62  # the case this test is about
    assert len({len(line) for line in table}) == 1
    assert {line.index(" 170 ") for line in table[1:]} == {table[0].index("max epochs") + 6}
