"""The torch thread count is part of a cell's identity (issue 22, item 9): its own column, read
back for rows written before the column existed, and a resume at another count is refused."""
import json

import pandas as pd
import pytest

from suite.cli import main
from suite.schema.rows import threads_of

TINY = {"name": "threads", "description": "test", "decides_claims": False, "protocol": "smoke",
        "test_sequences": 32, "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "kernel_size": 4},
        "grid": [{"task": "assoc_recall", "distances": [30], "models": ["conv"], "seeds": [0]}]}


def test_threads_are_read_off_the_device_string_of_older_rows():
    df = pd.DataFrame({"device": ["cpu:AMD EPYC x2 threads", "cpu:Intel(R) Xeon(R) x1 threads", "cuda:H200",
                                  "cpu:x x4 threads"],
                       "threads": [None, None, None, 3]})
    assert threads_of(df).tolist() == [2, 1, pd.NA, 3]
    assert threads_of(df.drop(columns="threads")).tolist() == [2, 1, pd.NA, 4]


def _stored_run(tmp_path):
    prof = tmp_path / "threads.json"
    prof.write_text(json.dumps(TINY))
    results = tmp_path / "results"
    assert main(["reproduce", "--profile", str(prof), "--results-dir", str(results), "--quiet",
                 "--threads-per-worker", "1"]) == 0
    (run,) = [p for p in results.glob("*/*") if (p / "manifest.json").is_file()]
    runs = pd.read_csv(run / "runs.csv")
    assert runs["threads"].tolist() == [1] and runs["device"].str.endswith(" x1 threads").all()
    m = json.loads((run / "manifest.json").read_text())
    m["status"] = "running"                          # as if interrupted before its report
    (run / "manifest.json").write_text(json.dumps(m))
    return results, run


def test_a_resume_at_another_thread_count_is_refused_with_one_line(tmp_path, capsys):
    results, run = _stored_run(tmp_path)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    rc = main(["reproduce", "--resume", run.name, "--results-dir", str(results), "--quiet",
               "--threads-per-worker", "2"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "threads:" in err and "at 1 torch thread" in err and "at 2" in err
    assert "--mixed-threads" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_a_resume_at_the_same_count_or_with_mixed_threads_goes_on(tmp_path):
    results, run = _stored_run(tmp_path)
    assert main(["reproduce", "--resume", run.name, "--results-dir", str(results), "--quiet",
                 "--threads-per-worker", "2", "--mixed-threads"]) == 0
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"


@pytest.mark.parametrize("threads", ["0", "two"])
def test_a_bad_thread_count_stops_before_any_work(tmp_path, capsys, threads):
    rc = main(["reproduce", "--profile", "smoke", "--results-dir", str(tmp_path), "--threads-per-worker", threads])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not any(tmp_path.iterdir())
    assert len(err.splitlines()) == 1 and "--threads-per-worker" in err
