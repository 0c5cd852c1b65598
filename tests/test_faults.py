"""Faults a long reproduction meets: a loss that turns NaN, an interruption while the report is
written, Ctrl-C, and the machine a row was measured on."""
import json
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch

import suite.report.run_report as rep
import suite.run.cell as cellmod
import suite.run.provenance as provenance
import suite.run.trainer as trainer
from baselines import ModelConfig
from suite.cli import main
from suite.run.protocol import get_protocol
from suite.run.trainer import NonFiniteLoss, Trainer
from suite.schema.rows import read_runs
from tasks import make_task

TINY = {"name": "tiny", "description": "test", "decides_claims": False, "protocol": "smoke", "test_sequences": 32,
        "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "kernel_size": 4},
        "grid": [{"task": "assoc_recall", "distances": [14], "models": ["attn", "conv"], "seeds": [0, 1]}]}


def reproduce_cmd(tmp_path, name, **changes):
    prof = tmp_path / f"{name}.json"
    prof.write_text(json.dumps({**TINY, "name": name, **changes}))
    return ["reproduce", "--profile", str(prof), "--results-dir", str(tmp_path / "results"), "--quiet"]


def only_run(tmp_path) -> Path:
    (run,) = [p for p in (tmp_path / "results").glob("*/*") if (p / "manifest.json").is_file()]
    return run


def forbid_training(monkeypatch):
    def run_cell(*a, **k):
        raise AssertionError("a cell was trained")
    monkeypatch.setattr(cellmod, "run_cell", run_cell)


def poison(monkeypatch, model: str, seed: int):
    """Models `model` built under `seed` start with NaN weights, so their loss is NaN."""
    real = trainer.build_model

    def build_model(name, cfg):
        m = real(name, cfg)
        if name == model and torch.initial_seed() == seed:
            with torch.no_grad():
                for p in m.parameters():
                    p.fill_(float("nan"))
        return m
    monkeypatch.setattr(trainer, "build_model", build_model)


def test_a_nan_loss_stops_the_cell_with_a_specific_error(monkeypatch):
    poison(monkeypatch, "attn", 3)
    task = make_task("assoc_recall", distance=14)
    tr = Trainer(task, "attn", seed=3, protocol=get_protocol("smoke"),
                 model_config=ModelConfig(d_model=16, n_layers=1, n_heads=2, kernel_size=4), progress=False)
    with pytest.raises(NonFiniteLoss, match="training loss became nan in phase 1 epoch 1"):
        tr.run()
    assert tr.history == []


def test_a_failed_cell_is_stored_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    poison(monkeypatch, "conv", 1)
    cmd = reproduce_cmd(tmp_path, "poisoned")
    assert main(cmd) == 0
    out = capsys.readouterr().out
    assert "FAILED: training loss became nan" in out and "a resume does not retry them" in out
    run = only_run(tmp_path)
    runs = read_runs(run / "runs.csv")
    assert len(runs) == 4 and runs["config_hash"].is_unique  # every row passed validate_row on the way in
    failed = runs[runs["status"] == "failed"]
    assert failed[["model", "seed"]].values.tolist() == [["conv", 1]]
    (err,) = failed["error"]
    assert err.startswith("training loss became nan in phase 1 epoch 1")
    assert failed[["accuracy", "usage", "seconds", "params"]].isna().all().all()
    assert failed[["data_fingerprint", "device", "git_sha", "protocol_hash"]].notna().all().all()
    assert (runs.loc[runs["status"] == "ok", "accuracy"].notna()).all()
    assert failed["config_hash"].iloc[0] not in set(pd.read_csv(run / "history.csv")["config_hash"])
    assert (run / "claims.csv").is_file() and (run / "REPORT.md").is_file()
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"
    # a failed cell counts as stored: resuming trains nothing
    forbid_training(monkeypatch)
    assert main(["reproduce", "--resume", run.name, "--results-dir", str(tmp_path / "results"), "--quiet"]) == 0
    assert len(read_runs(run / "runs.csv")) == 4


def test_an_interrupted_report_is_finished_by_a_plain_rerun_without_training(tmp_path, monkeypatch, capsys):
    cmd = reproduce_cmd(tmp_path, "late", grid=[{**TINY["grid"][0], "models": ["attn"]}])
    real = rep.report_markdown

    def interrupted(*a, **k):
        monkeypatch.setattr(rep, "report_markdown", real)
        raise KeyboardInterrupt
    monkeypatch.setattr(rep, "report_markdown", interrupted)
    assert main(cmd) == 130
    run = only_run(tmp_path)
    assert len(pd.read_csv(run / "runs.csv")) == 2 and not (run / "REPORT.md").exists()
    assert json.loads((run / "manifest.json").read_text())["status"] == "running"
    capsys.readouterr()
    forbid_training(monkeypatch)
    assert main(cmd) == 0
    assert f"Resuming the unfinished run {run.name}" in capsys.readouterr().out
    assert only_run(tmp_path) == run and (run / "REPORT.md").is_file()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["finished"]
    assert "Status: complete" in (run / "REPORT.md").read_text()


def interrupt_first_cell(monkeypatch):
    def run_cell(*a, **k):   # a Ctrl-C is a SIGINT: a KeyboardInterrupt raised without one is a plugin's
        signal.raise_signal(signal.SIGINT)
    monkeypatch.setattr(cellmod, "run_cell", run_cell)


def test_the_ctrl_c_hint_names_a_non_default_results_dir(tmp_path, monkeypatch, capsys):
    interrupt_first_cell(monkeypatch)
    where = tmp_path / "my dir"
    where.mkdir()
    assert main(reproduce_cmd(where, "hint")) == 130
    run = only_run(where)
    err = capsys.readouterr().err
    assert f"resume with: python -m suite reproduce --resume {run.name} --results-dir '{tmp_path}/my dir/results'" in err


def test_the_ctrl_c_hint_is_short_for_the_default_results_dir(tmp_path, monkeypatch, capsys):
    interrupt_first_cell(monkeypatch)
    monkeypatch.chdir(tmp_path)
    cmd = reproduce_cmd(tmp_path, "hint")
    assert main(cmd[:3] + ["--quiet"]) == 130
    run = only_run(tmp_path)
    assert capsys.readouterr().err.rstrip().endswith(f"resume with: python -m suite reproduce --resume {run.name}")


def test_a_cpu_row_names_the_cpu_model_and_threads(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R)  Xeon(R) Gold 6230 CPU\n\n")
    monkeypatch.setattr(provenance, "CPUINFO", info)
    threads = torch.get_num_threads()
    assert provenance.device_name(torch.device("cpu")) == f"cpu:Intel(R) Xeon(R) Gold 6230 CPU x{threads} threads"
    monkeypatch.setattr(provenance, "CPUINFO", tmp_path / "missing")
    monkeypatch.setattr(provenance.platform, "processor", lambda: "")
    monkeypatch.setattr(provenance.platform, "machine", lambda: "aarch64")
    assert provenance.device_name(torch.device("cpu")) == f"cpu:aarch64 x{threads} threads"
