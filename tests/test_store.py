import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import suite.run.store as store_mod
from suite import __version__
from suite.cli import main
from suite.errors import ConfigError
from suite.run.store import RunStore, atomic_write
from suite.schema.rows import read_runs

REPO = Path(__file__).resolve().parent.parent


def row(key, acc=0.5, **changes):
    """A complete, valid run row (the store validates every row it appends)."""
    return {"run_id": "r", "config_hash": key, "task": "assoc_recall", "distance": 10, "seq_len": 12,
            "task_params": "{}", "model": "attn", "lambda_target": 0.0, "seed": 0, "protocol": "smoke",
            "protocol_hash": "p", "profile": "t", "faithful_model": False, "d_model": 8, "n_layers": 1,
            "n_heads": 2, "kernel_size": 4, "test_sequences": 10, "accuracy": acc, "usage_per_layer": "[1.0, 1.0]",
            "phase2_ran": False, "data_fingerprint": "f", "suite_version": __version__, "git_sha": "g",
            "torch_version": "t", "device": "cpu:x", "finished_at": "2024-01-01T00:00:00Z", **changes}


def make(tmp_path, name="r", **manifest):
    return RunStore.create(tmp_path, name, {"profile": {"name": name}, **manifest})


def test_rows_round_trip_with_one_pandas_call(tmp_path):
    s = make(tmp_path)
    s.append_cell(row("a", 0.25), [{"config_hash": "a", "epoch": 1}])
    s.append_cell(row("b", 0.75), [{"config_hash": "b", "epoch": 1}, {"config_hash": "b", "epoch": 2}])
    df = read_runs(s.path / "runs.csv")
    assert df["config_hash"].tolist() == ["a", "b"] and df["accuracy"].tolist() == [0.25, 0.75]
    assert df["usage_per_layer"].iloc[0] == "[1.0, 1.0]" and df["phase2_ran"].tolist() == [False, False]
    assert len(s.history()) == 3 and s.finished_cells() == {"a", "b"}
    with pytest.raises(RuntimeError, match="already stored"):
        s.append_cell(row("a"), [])


def test_invalid_rows_are_refused_before_anything_is_written(tmp_path):
    s = make(tmp_path)
    with pytest.raises(ValueError, match="unknown column 'surprise'"):
        s.append_cell(row("a", surprise=1), [{"config_hash": "a", "epoch": 1}])
    with pytest.raises(ValueError):
        s.append_cell({k: v for k, v in row("a").items() if k != "seed"}, [])
    assert not (s.path / "runs.csv").exists() and not (s.path / "history.csv").exists()


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
    s = make(tmp_path)
    s.append_cell(row("a"), [{"config_hash": "a", "epoch": 1}])
    # an interruption between the history write and the run-row write
    hist = pd.concat([s.history(), pd.DataFrame([{"config_hash": "b", "epoch": 1}])])
    hist.to_csv(s.path / "history.csv", index=False)
    (s.path / ".runs.csv.x.tmp").write_text("half")
    s = RunStore.open(s.path)
    assert (s.path / ".runs.csv.x.tmp").exists(), "only the lock holder may remove a writer's temporaries"
    with s.lock():
        s.drop_orphan_history()
    assert set(s.history()["config_hash"]) == {"a"}
    assert not list(s.path.glob("*.tmp")) and not list(s.path.glob(".*.tmp"))


def test_unfinished_run_is_found_and_bad_dirs_rejected(tmp_path):
    s = make(tmp_path, "p", status="running")
    assert RunStore.unfinished(tmp_path, "p").path == s.path
    s.update_manifest(status="complete")
    assert RunStore.unfinished(tmp_path, "p") is None
    assert RunStore.find(tmp_path, s.path.name).path == s.path
    with pytest.raises(ConfigError, match="is not a results run"):
        RunStore.open(tmp_path)
    with pytest.raises(ConfigError, match="resume: no run 'nope'"):
        RunStore.find(tmp_path, "nope")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        RunStore.create(f, "x", {})
    assert f.read_text() == "x"


def test_a_run_is_written_by_one_process_at_a_time(tmp_path):
    s = make(tmp_path)
    with s.lock():
        with pytest.raises(ConfigError, match="is being written by another process"):
            with RunStore.open(s.path).lock():
                pass
    with s.lock():  # released on leaving the block
        pass


#: a child process: take the run's lock when told to go, hold it, say what happened
CONTENDER = """
import sys, time
from pathlib import Path
from suite.errors import ConfigError
from suite.run.store import RunStore
run, me, hold = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
(run.parent / f"ready-{me}").write_text("")
while not (run.parent / "go").exists():
    time.sleep(0.005)
try:
    with RunStore.open(run).lock():
        (run.parent / f"held-{me}").write_text("")
        time.sleep(hold)
except ConfigError as e:
    (run.parent / f"busy-{me}").write_text(str(e))
"""


def contenders(s, n, hold):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return [subprocess.Popen([sys.executable, "-c", CONTENDER, str(s.path), str(i), str(hold)], env=env)
            for i in range(n)]


def wait_for(check, timeout=120):
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.slow
def test_of_several_processes_starting_together_exactly_one_holds_the_lock(tmp_path):
    s = make(tmp_path)
    procs = contenders(s, 4, hold=3.0)
    wait_for(lambda: len(list(s.path.parent.glob("ready-*"))) == 4)
    (s.path.parent / "go").write_text("")
    for p in procs:
        assert p.wait(timeout=120) == 0
    held = list(s.path.parent.glob("held-*"))
    busy = list(s.path.parent.glob("busy-*"))
    assert len(held) == 1 and len(busy) == 3
    assert all("is being written by another process" in b.read_text() for b in busy)


@pytest.mark.slow
def test_a_lock_held_by_a_killed_process_is_free_afterwards(tmp_path):
    s = make(tmp_path)
    (proc,) = contenders(s, 1, hold=600)
    (s.path.parent / "go").write_text("")
    wait_for(lambda: (s.path.parent / "held-0").exists())
    with pytest.raises(ConfigError, match="being written by another process"):
        with s.lock():
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with s.lock():
        pass


def test_run_ids_are_unique_within_the_same_instant(tmp_path, monkeypatch):
    a, b = make(tmp_path, "p"), make(tmp_path, "p")
    assert a.path != b.path
    monkeypatch.setattr(store_mod, "run_stamp", lambda: "20240101T000000.000000Z")
    c, d = make(tmp_path, "p"), make(tmp_path, "p")
    assert (c.path.name, d.path.name) == ("p-20240101T000000.000000Z", "p-20240101T000000.000000Z-1")
    assert [x.manifest()["run_id"] for x in (c, d)] == [c.path.name, d.path.name]


def test_a_corrupt_manifest_elsewhere_is_skipped_with_a_warning(tmp_path, capsys):
    good = make(tmp_path, "p", status="running", started="2024-01-01")
    bad = make(tmp_path, "p", status="running", started="2024-01-02")
    (bad.path / "manifest.json").write_text('{"status": "runn')
    assert RunStore.unfinished(tmp_path, "p").path == good.path
    assert RunStore.newest(tmp_path).path == good.path
    with pytest.raises(ConfigError, match="no run"):
        RunStore.find(tmp_path, bad.path.name)
    err = capsys.readouterr().err
    assert err.count("warning: skipped:") == 3 and all(line.startswith("warning") for line in err.splitlines())
    # the run being opened itself: a one-line error
    with pytest.raises(ConfigError, match="is unreadable or corrupt"):
        RunStore.open(bad.path)
    (bad.path / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a JSON object"):
        bad.manifest()


def test_claims_on_a_corrupt_manifest_is_one_line(tmp_path, capsys):
    s = make(tmp_path)
    (s.path / "manifest.json").write_text("{")
    assert main(["claims", str(s.path)]) == 2
    err = capsys.readouterr().err
    assert "is unreadable or corrupt" in err and err.count("\n") == 1


@pytest.mark.parametrize("name", ["../../../escape", "a/b", ".hidden", ""])
def test_a_run_folder_stays_inside_the_results_dir(tmp_path, name):
    results = tmp_path / "results"
    with pytest.raises(ConfigError, match="is not a run folder name"):
        RunStore.create(results, name, {})
    assert not (tmp_path / "escape").exists() and not list(tmp_path.rglob("*-20*"))


@pytest.mark.parametrize("run_id", ["*", "../x", "", "a/b", ".."])
def test_resume_ids_are_plain_names(tmp_path, run_id):
    make(tmp_path)
    with pytest.raises(ConfigError, match="is not a run id"):
        RunStore.find(tmp_path, run_id)


def test_a_results_dir_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="lies under the file"):
        RunStore.create(tmp_path / "file" / "sub", "p", {})


def test_an_unwritable_results_dir_is_one_line(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes through chmod")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="is not writable"):
            RunStore.create(ro / "results", "p", {})
    finally:
        ro.chmod(0o700)


def test_all_digit_hashes_stay_strings(tmp_path):
    s = make(tmp_path)
    s.append_cell(row("0123456789012345"), [{"config_hash": "0123456789012345", "epoch": 1}])
    assert s.finished_cells() == {"0123456789012345"}
    assert read_runs(s.path / "runs.csv")["config_hash"].iloc[0] == "0123456789012345"
    with pytest.raises(RuntimeError, match="already stored"):
        s.append_cell(row("0123456789012345"), [])


def test_a_superseded_run_is_never_resumed_implicitly(tmp_path):
    from suite.run.store import SUPERSEDED
    old = RunStore.create(tmp_path, "p", {"profile": {"name": "p"}, "status": "running"})
    assert RunStore.unfinished(tmp_path, "p").path == old.path
    old.update_manifest(status=SUPERSEDED)
    assert RunStore.unfinished(tmp_path, "p") is None
    assert RunStore.of_profile(tmp_path, "p", complete=True) == []
