"""Executors (suite/run/executor.py): every executor stores the rows the local one does, a failing
cell (an exception, a worker that dies) is stored as failed while the others finish, Ctrl-C under
worker processes leaves a resumable run and no orphan process, and bad options stop before any work.

One tiny profile (d_model 16, one layer, the smoke protocol) of 7 cells: one Routed cell whose test
router (tests/executor_plugin.py) ends its worker process (in the test process itself, where the
local executor runs it, it raises instead); AttnOnly and ConvOnly over seeds 0 and 1; Routed with the
test router raising for seed 1.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import executor_plugin
from suite.cli import main
from suite.run.executor import parallel_estimate
from suite.schema.rows import read_runs

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
TINY_MODEL = {"d_model": 16, "n_layers": 1, "n_heads": 2, "kernel_size": 4}
PLUGIN = "executor_plugin:FailingRouter"
PROFILE = {
    "name": "executors", "description": "executor test", "decides_claims": False, "protocol": "smoke",
    "test_sequences": 32, "model": TINY_MODEL,
    "grid": [
        # first: under processes it dies beside another cell in flight, which must be run again, not failed
        {"task": "assoc_recall", "distances": [14], "models": ["routed"], "lambdas": [0.5], "seeds": [1],
         "model": {"router": PLUGIN, "router_kwargs": {"fail_seed": 1, "how": "exit"}}},
        {"task": "assoc_recall", "distances": [14], "models": ["attn", "conv"], "seeds": [0, 1]},
        {"task": "assoc_recall", "distances": [14], "models": ["routed"], "lambdas": [0.5], "seeds": [0, 1],
         "model": {"router": PLUGIN, "router_kwargs": {"fail_seed": 1}}},
    ],
}
RAISED = "RuntimeError: deliberate failure of the test router (seed 1)"
#: timing and provenance: differ between any two runs
VOLATILE = {"seconds", "savings_latency", "finished_at", "run_id", "device", "git_sha"}


@pytest.fixture(autouse=True)
def _plugin_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv(executor_plugin.DRIVER_PID, str(os.getpid()))


def write_profile(where: Path, data: dict) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{data['name']}.json"
    path.write_text(json.dumps(data))
    return path


def reproduce(where: Path, profile: dict, *executor: str) -> list[str]:
    return ["reproduce", "--profile", str(write_profile(where, profile)), "--results-dir", str(where / "results"),
            "--quiet", *executor]


def the_run(where: Path) -> Path:
    (run,) = [p for p in (where / "results").glob("*/*") if (p / "manifest.json").is_file()]
    return run


def dying_hash(runs: pd.DataFrame) -> str:
    (key,) = runs.loc[runs["router_kwargs"].fillna("").str.contains('"exit"'), "config_hash"]
    return key


def comparable(run: Path) -> dict:
    """The stored run without its timing and provenance columns, in a fixed order; the dying cell's
    error (its wording is the executor's) is compared separately."""
    runs = read_runs(run / "runs.csv")
    runs.loc[runs["config_hash"] == dying_hash(runs), "error"] = "<died>"
    runs = runs.drop(columns=[c for c in runs.columns if c in VOLATILE or c.startswith("latency_")])
    out = {"runs": runs.sort_values("config_hash").reset_index(drop=True)}
    for name, order in (("history", ["config_hash", "phase", "epoch"]), ("routing", None)):
        df = pd.read_csv(run / f"{name}.csv", dtype={"config_hash": str})
        df = df.drop(columns=[c for c in ("seconds", "run_id") if c in df.columns])
        out[name] = df.sort_values(order or list(df.columns)).reset_index(drop=True)
    return out


def assert_same(run: Path, reference: dict) -> None:
    got = comparable(run)
    for name, df in reference.items():
        pd.testing.assert_frame_equal(got[name], df, check_exact=True, obj=name)


def assert_failures(run: Path, died: str) -> None:
    runs = read_runs(run / "runs.csv")
    assert len(runs) == 7 and runs["config_hash"].is_unique
    failed = runs[runs["status"] == "failed"].set_index("config_hash")["error"]
    key = dying_hash(runs)
    assert set(failed.index) == {key, *runs.loc[runs["error"] == RAISED, "config_hash"]} and len(failed) == 2
    assert failed[key].startswith(died), failed[key]
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"


def spawned_children() -> list[str]:
    """Command lines of this process's children that are worker processes (the resource tracker,
    which lives as long as this process, is not one)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and "spawn_main" in cmd:
            out.append(cmd)
    return out


def group_members(pgid: int) -> list[str]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, IndexError, ValueError):
            continue
    return out


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The local executor's run of the profile: the reference every other executor must match."""
    where = tmp_path_factory.mktemp("local")
    os.environ[executor_plugin.DRIVER_PID] = str(os.getpid())
    sys.path.insert(0, str(TESTS))
    try:
        assert main(reproduce(where, PROFILE, "--threads-per-worker", "1")) == 0
    finally:
        sys.path.remove(str(TESTS))
    return the_run(where)


@pytest.mark.slow
def test_local_stores_every_failure_and_goes_on(local_run):
    assert_failures(local_run, "RuntimeError: the test router would have killed its worker process here")
    runs = read_runs(local_run / "runs.csv")
    assert (runs.loc[runs["status"] == "ok", "accuracy"].notna()).sum() == 5


@pytest.mark.slow
def test_processes_give_the_local_rows_and_survive_a_dying_worker(tmp_path, local_run, capsys):
    assert main(reproduce(tmp_path, PROFILE, "--executor", "processes", "--workers", "2",
                          "--threads-per-worker", "1")) == 0
    out = capsys.readouterr()
    assert "Executor: processes: 2 worker processes (spawned) x 1 torch thread each" in out.out
    assert "With up to 2 cells in parallel: an estimated" in out.out
    assert "deliberate failure of the test router" in out.err  # the worker's traceback, shown
    run = the_run(tmp_path)
    assert_failures(run, "WorkerDied: the worker process running this cell died (exit code 3)")
    assert_same(run, comparable(local_run))
    assert not spawned_children()


@pytest.mark.slow
def test_ray_gives_the_local_rows_and_survives_a_dying_worker(tmp_path, local_run, capsys):
    ray = pytest.importorskip("ray")
    assert main(reproduce(tmp_path, PROFILE, "--executor", "ray", "--workers", "2", "--threads-per-worker", "1")) == 0
    assert "on a local Ray instance started here (2 CPUs)" in capsys.readouterr().out
    assert not ray.is_initialized()  # the instance it started is shut down
    run = the_run(tmp_path)
    assert_failures(run, "WorkerCrashedError")
    assert_same(run, comparable(local_run))


@pytest.mark.slow
def test_ctrl_c_under_processes_stops_every_worker_and_the_run_resumes(tmp_path, capsys):
    """Ctrl-C as a terminal sends it: SIGINT to the whole process group, right after the first stored cell."""
    data = {**PROFILE, "name": "ctrlc", "grid": [
        # a cell that never ends in its worker: only stopping the worker ends it
        {"task": "assoc_recall", "distances": [14], "models": ["routed"], "lambdas": [0.5], "seeds": [1],
         "model": {"router": PLUGIN, "router_kwargs": {"fail_seed": 1, "how": "hang"}}},
        {"task": "assoc_recall", "distances": [14], "models": ["attn", "conv"], "seeds": [0, 1, 2, 3]}]}
    cmd = [sys.executable, "-m", "suite", *reproduce(tmp_path, data, "--executor", "processes", "--workers", "2",
                                                       "--threads-per-worker", "1")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)])}
    # the driver gets SIGINT's default disposition, as a terminal's foreground job has it, even when
    # pytest itself runs with SIGINT ignored (under nohup or as a background job, which children inherit)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        runs_csv, deadline = None, time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            found = list((tmp_path / "results").glob("*/*/runs.csv"))
            if found:
                runs_csv = found[0]
                break
            time.sleep(0.05)
        assert runs_csv is not None, "no cell finished in time"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    run = runs_csv.parent
    # the hint names the thread count: a resume at the default count would be refused
    assert f"resume with: python -m suite reproduce --resume {run.name}" in err
    assert "--threads-per-worker 1" in err.split("resume with:")[1]
    assert "Traceback" not in err  # the workers ignore SIGINT; the driver stops them
    stored = read_runs(runs_csv)
    assert 1 <= len(stored) < 9 and (stored["status"] == "ok").all(), "the interrupt must land mid-grid"
    deadline = time.time() + 15
    while group_members(proc.pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not group_members(proc.pid), "orphan processes"
    # resumed (here by the local executor: the store does not care where cells ran; in this process
    # the hanging cell raises instead, and is stored as failed)
    assert main(["reproduce", "--resume", run.name, "--results-dir", str(tmp_path / "results"),
                 "--threads-per-worker", "1", "--quiet"]) == 0
    assert "(stored)" in capsys.readouterr().out
    runs = read_runs(runs_csv)
    assert len(runs) == 9 and runs["config_hash"].is_unique
    assert runs.loc[runs["status"] == "failed", "error"].tolist() == [
        "RuntimeError: the test router would have hung its worker process here"]
    ok = runs.loc[runs["status"] == "ok", "config_hash"]
    assert set(pd.read_csv(run / "history.csv", dtype={"config_hash": str})["config_hash"]) == set(ok)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REGRESS = ["regress", "--router", "gumbel"]
BAD = [
    (["--executor", "threads"], "--executor: unknown 'threads'; allowed: local, processes, ray"),
    (["--executor", "processes", "--workers", "0"], "--workers: "),
    (["--executor", "processes", "--threads-per-worker", "0"], "--threads-per-worker: "),
    (["--workers", "2"], "--workers: the local executor runs one cell at a time"),
    (["--ray-address", "auto"], "--ray-address: only with --executor ray"),
    (["--executor", "processes", "--gpus-per-cell", "0.5"], "--gpus-per-cell: only with --executor ray"),
    (["--executor", "ray", "--gpus-per-cell", "1.5"], "--gpus-per-cell: "),
    (["--executor", "ray", "--device", "cpu", "--gpus-per-cell", "0.5"], "--gpus-per-cell: the device is cpu"),
]


@pytest.mark.parametrize("command", ["reproduce", "audit", "regress"])
@pytest.mark.parametrize("options,needle", BAD)
def test_bad_executor_options_stop_before_any_work(tmp_path, capsys, monkeypatch, command, options, needle):
    monkeypatch.chdir(tmp_path)
    head = REGRESS if command == "regress" else [command, "--profile", "smoke"]
    assert main([*head, "--results-dir", str(tmp_path / "results"), *options]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not list(tmp_path.iterdir())


def test_ray_missing_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray: ImportError
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "--profile", "smoke", "--results-dir", "results", "--executor", "ray"]) == 2
    assert capsys.readouterr().err == "error: executor: ray is not installed; pip install -e '.[ray]'\n"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("address,needle", [
    (lambda: f"127.0.0.1:{free_port()}", "--ray-address: no Ray cluster reachable at 127.0.0.1:"),
    (lambda: "somewhere", "--ray-address: expected auto, HOST:PORT or ray://HOST:PORT, got 'somewhere'"),
    (lambda: "auto", "--ray-address: cannot connect to a Ray cluster at auto"),  # none is running here
])
def test_an_unreachable_ray_address_is_one_line(tmp_path, capsys, monkeypatch, address, needle):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    assert main(["reproduce", "--profile", "smoke", "--results-dir", "results", "--executor", "ray",
                 "--ray-address", address()]) == 2
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not list(tmp_path.iterdir())


def test_the_parallel_estimate_takes_the_first_free_worker():
    assert parallel_estimate([10, 10, 10, 10], 2) == 20
    assert parallel_estimate([30, 10, 10, 10], 2) == 30
    assert parallel_estimate([5, 5, 5], 1) == 15
    assert parallel_estimate([], 4) == 0


def smoke_tables(run: Path) -> dict:
    """The smoke run's stored tables without timing and provenance."""
    runs = read_runs(run / "runs.csv")
    runs = runs.drop(columns=[c for c in runs.columns if c in VOLATILE or c.startswith("latency_")])
    out = {"runs": runs.sort_values("config_hash").reset_index(drop=True)}
    for name in ("history", "routing"):
        df = pd.read_csv(run / f"{name}.csv", dtype={"config_hash": str})
        df = df.drop(columns=[c for c in ("seconds", "run_id") if c in df.columns])
        out[name] = df.sort_values(list(df.columns)).reset_index(drop=True)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["processes", "ray"])
def test_the_smoke_profile_gives_the_same_rows_under_every_executor(tmp_path, executor):
    """The shipped smoke profile (the original router with its Gumbel noise, copy, induction heads,
    the constant schedule): rows, history and routing equal the local executor's, exactly."""
    if executor == "ray":
        pytest.importorskip("ray")
    runs = {}
    for name, options in (("local", ["--threads-per-worker", "1"]),
                          (executor, ["--executor", executor, "--workers", "2", "--threads-per-worker", "1"])):
        where = tmp_path / name
        assert main(["reproduce", "--profile", "smoke", "--results-dir", str(where / "results"), "--quiet",
                     *options]) == 0
        runs[name] = smoke_tables(the_run(where))
    assert len(runs["local"]["runs"]) == 6
    for table, df in runs["local"].items():
        pd.testing.assert_frame_equal(runs[executor][table], df, check_exact=True, obj=table)


def test_the_memory_check_counts_the_cells_that_share_the_device(tmp_path, monkeypatch, capsys):
    """Two workers on one machine each hold a cell: the profile must fit twice."""
    import suite.compute.memory as memory
    from suite.run.plan import check_profile_fits
    from suite.run.profiles import load_profile
    smoke = load_profile("smoke")
    need = max(memory.training_bytes(c.model, c.model_config(), c.build_task().seq_len,
                                     c.build_protocol().batch_size(c.build_task().seq_len), smoke.test_sequences)
               for c in smoke.cells)
    monkeypatch.setattr(memory, "available_bytes", lambda device: int(need * 1.5))
    check_profile_fits(smoke, "cpu", 1)
    from suite.errors import ConfigError
    with pytest.raises(ConfigError, match="x 2 cells at once"):
        check_profile_fits(smoke, "cpu", 2)
    monkeypatch.setattr("suite.compute.memory.available_bytes", lambda device: int(need * 1.5))
    assert main(["reproduce", "--profile", "smoke", "--results-dir", str(tmp_path / "r"), "--quiet",
                 "--executor", "processes", "--workers", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x 2 cells at once on cpu" in err[0]
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").rglob("runs.csv"))


@pytest.mark.slow
def test_a_pool_that_breaks_before_its_futures_say_so_is_rebuilt(monkeypatch):
    """A worker can die between two submissions: the pool then refuses the next job at once. The job
    goes back to the queue, the pool is rebuilt, and every job still finishes exactly once."""
    import concurrent.futures as cf
    import math

    import suite.run.executor as ex
    from suite.run.executor_pool import _Pool
    real, refused = _Pool.submit, []

    def submit(self, job, threads):
        if not refused:
            refused.append(job.key)
            raise cf.process.BrokenProcessPool("a worker died")
        return real(self, job, threads)
    monkeypatch.setattr(_Pool, "submit", submit)
    jobs = [ex.Job(k, f"job {k}", math.sqrt, (float(k * k),)) for k in range(3)]
    executor = ex.make_executor(ex.ExecutorSpec(kind="processes", workers=2, threads=1), "cpu")
    with executor:
        outcomes = list(executor.run(jobs))
    assert refused == [0]
    assert sorted((o.job.key, o.value, o.failure) for o in outcomes) == [(0, 0.0, None), (1, 1.0, None), (2, 2.0, None)]


@pytest.mark.slow
def test_an_abort_does_not_wait_for_a_result_a_terminated_worker_had_half_sent(tmp_path):
    """Ctrl-C can land while a worker sends its result: the pool's reader thread then waits for the
    rest of the message. Stopping the pool must end that wait, not hang the driver (nor its exit)."""
    import threading

    import stuck_worker
    import suite.run.executor as ex
    from suite.run.executor_pool import _Pool

    marker = tmp_path / "sent"
    pool = _Pool(1, 1)
    results = pool.pool._result_queue
    pool.submit(ex.Job(0, "stuck", stuck_worker.half_sent_result, (str(marker),)), 1)
    deadline = time.time() + 120
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the job did not start"
    time.sleep(0.5)  # the pool's reader thread is now inside recv(), waiting for the rest
    stopper = threading.Thread(target=pool.shutdown, kwargs={"abort": True}, daemon=True)
    stopper.start()
    stopper.join(60)
    try:
        assert not stopper.is_alive(), "the aborted pool hangs on the half-sent result"
    finally:
        results._writer.close()  # if it hung: unblock the reader, so this process can still exit
