import os

import pandas as pd
import pytest

from suite.errors import ConfigError
from suite.run.store import RunStore, atomic_write, read_runs


def row(key, acc=0.5):
    return {"config_hash": key, "model": "attn", "accuracy": acc, "usage_per_layer": "[1.0, 1.0]",
            "phase2_ran": False}


def test_rows_round_trip_with_one_pandas_call(tmp_path):
    s = RunStore.create(tmp_path, "r1", {"run_id": "r1", "profile": {"name": "t"}})
    s.append_cell(row("a", 0.25), [{"config_hash": "a", "epoch": 1}])
    s.append_cell(row("b", 0.75), [{"config_hash": "b", "epoch": 1}, {"config_hash": "b", "epoch": 2}])
    df = read_runs(s.path)
    assert df["config_hash"].tolist() == ["a", "b"] and df["accuracy"].tolist() == [0.25, 0.75]
    assert df["usage_per_layer"].iloc[0] == "[1.0, 1.0]" and df["phase2_ran"].dtype == bool
    assert len(s.history()) == 3 and s.finished_cells() == {"a", "b"}
    with pytest.raises(RuntimeError, match="already stored"):
        s.append_cell(row("a"), [])


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    p = tmp_path / "f.csv"
    atomic_write(p, "old\n")

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write(p, "new\n")
    assert p.read_text() == "old\n"
    assert [x.name for x in tmp_path.iterdir()] == ["f.csv"]


def test_orphan_history_and_stale_temporaries_are_cleaned(tmp_path):
    s = RunStore.create(tmp_path, "r1", {"run_id": "r1", "profile": {"name": "t"}})
    s.append_cell(row("a"), [{"config_hash": "a", "epoch": 1}])
    # an interruption between the history write and the run-row write
    hist = pd.concat([s.history(), pd.DataFrame([{"config_hash": "b", "epoch": 1}])])
    hist.to_csv(s.path / "history.csv", index=False)
    (s.path / ".runs.csv.x.tmp").write_text("half")
    s = RunStore.open(s.path)
    s.drop_orphan_history()
    assert set(s.history()["config_hash"]) == {"a"}
    assert not list(s.path.glob("*.tmp")) and not list(s.path.glob(".*.tmp"))


def test_unfinished_run_is_found_and_bad_dirs_rejected(tmp_path):
    s = RunStore.create(tmp_path, "p-1", {"run_id": "p-1", "profile": {"name": "p"}, "status": "running"})
    assert RunStore.unfinished(tmp_path, "p").path == s.path
    s.update_manifest(status="complete")
    assert RunStore.unfinished(tmp_path, "p") is None
    assert RunStore.find(tmp_path, "p-1").path == s.path
    with pytest.raises(ConfigError, match="is not a results run"):
        RunStore.open(tmp_path)
    with pytest.raises(ConfigError, match="resume: no run 'nope'"):
        RunStore.find(tmp_path, "nope")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        RunStore.create(f, "x", {})


def test_a_run_is_written_by_one_process_at_a_time(tmp_path):
    s = RunStore.create(tmp_path, "r1", {"run_id": "r1", "profile": {"name": "t"}})
    with s.lock():
        assert (s.path / ".lock").read_text() == str(os.getpid())
        with pytest.raises(ConfigError, match="is being written by process"):
            with s.lock():
                pass
    assert not (s.path / ".lock").exists()
    # a lock left by a process that no longer exists is taken over
    (s.path / ".lock").write_text("999999999")
    with s.lock():
        pass


def test_all_digit_hashes_stay_strings(tmp_path):
    s = RunStore.create(tmp_path, "r1", {"run_id": "r1", "profile": {"name": "t"}})
    s.append_cell(row("0123456789012345"), [{"config_hash": "0123456789012345", "epoch": 1}])
    assert s.finished_cells() == {"0123456789012345"}
    assert read_runs(s.path)["config_hash"].iloc[0] == "0123456789012345"
    with pytest.raises(RuntimeError, match="already stored"):
        s.append_cell(row("0123456789012345"), [])
