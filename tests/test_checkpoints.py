"""Profiles with save_models keep each routed cell's trained weights, and those weights are the
ones whose accuracy the row reports (the audit swaps their decisions later)."""
import json

import pytest

from baselines import ModelConfig, build_model
from suite.cli import main
from suite.errors import ConfigError
from suite.run.store import RunStore
from suite.run.trainer import evaluate
from suite.schema.rows import read_runs
from tasks import make_task

TINY = {"name": "keep", "description": "test", "decides_claims": False, "protocol": "smoke", "test_sequences": 32,
        "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "kernel_size": 4},
        "grid": [{"task": "assoc_recall", "distances": [14], "models": ["attn", "routed"], "lambdas": [0.5],
                  "seeds": [0]}]}


def run_profile(tmp_path, **changes) -> RunStore:
    prof = tmp_path / "p.json"
    prof.write_text(json.dumps({**TINY, **changes}))
    assert main(["reproduce", "--profile", str(prof), "--results-dir", str(tmp_path / "r"), "--quiet"]) == 0
    (run,) = [p for p in (tmp_path / "r").glob("*/*") if (p / "manifest.json").is_file()]
    return RunStore.open(run)


def test_routed_weights_are_kept_and_reproduce_the_row(tmp_path):
    store = run_profile(tmp_path, save_models=True)
    runs = read_runs(store.path / "runs.csv")
    routed = runs[runs["model"] == "routed"].iloc[0]
    attn = runs[runs["model"] == "attn"].iloc[0]
    assert [p.stem for p in (store.path / "models").glob("*.pt")] == [routed["config_hash"]]
    with pytest.raises(ConfigError, match="kept no weights"):
        store.load_checkpoint(attn["config_hash"])
    ck = store.load_checkpoint(routed["config_hash"])
    model = build_model("routed", ModelConfig.from_dict(ck["model_config"]))
    model.load_state_dict(ck["state"])
    task = make_task("assoc_recall", distance=14)
    acc, per_layer = evaluate(model, task.fixed_set("test", 0, 32, 32))
    assert acc == routed["accuracy"]
    if ck["usage_state"] is None:  # phase 1 solved: one model gives both numbers
        assert per_layer == pytest.approx(json.loads(routed["usage_per_layer"]), abs=1e-6)


def test_no_weights_are_kept_by_default(tmp_path):
    store = run_profile(tmp_path)
    assert not (store.path / "models").exists()
