"""Phase 1 done once: a routed curriculum cell forked from another lambda's phase-1 checkpoint
ends exactly as if it had trained phase 1 itself."""
import dataclasses
import os

import pandas as pd
import pytest
import torch

from baselines import ModelConfig
from suite.run.cell import run_cell
from suite.errors import ConfigError
from suite.run import phase1 as phase1_mod
from suite.run.phase1 import cell_phase1_key, phase1_key, phase1_savings
from suite.run.profiles import Cell, Profile
from suite.run.protocol import PROTOCOLS, get_protocol
from suite.run.trainer import Trainer
from suite.schema.rows import validate_row
from tasks import make_task

TINY = ModelConfig(d_model=16, n_layers=2, n_heads=2, kernel_size=4)
ONE = ModelConfig(d_model=16, n_layers=1, n_heads=2, kernel_size=4)
SMOKE = get_protocol("smoke")
# "solved" as soon as the eval accuracy is above 0, and phase 2 never stops early. On the copy task
# 8 eval batches hold 2048 scored targets, so even an untrained model gets a few right: phase 1 is
# solved in its first epoch and phase 2 runs, on any machine
REACH = dataclasses.replace(SMOKE, name="phase1-reach", eval_batches=8, solved_above=0.0, phase1_max_epochs=4,
                            phase2_epochs=3, phase2_floor=0.0)
# never solved (accuracy cannot exceed 1): the unsolved-phase-1 path, over several epochs
NEVER = dataclasses.replace(REACH, name="phase1-never", solved_above=1.0, phase1_max_epochs=3)
TIMING = {"seconds", "phase1_seconds", "phase1_reused"}


def task():
    return make_task("copy", distance=8)


def trainer(lam, ckpt=None, *, protocol=REACH, cfg=TINY, seed=0, t=None, model="routed"):
    return Trainer(t or task(), model, lambda_target=lam, seed=seed, protocol=protocol, model_config=cfg,
                   progress=False, phase1_checkpoint=ckpt)


def history(result):
    return [{k: v for k, v in dataclasses.asdict(h).items() if k != "seconds"} for h in result.history]


def assert_same_run(a, b):
    """Everything a row and its history come from, timing excepted, bit for bit."""
    sa = {k: v for k, v in a.summary().items() if k not in TIMING}
    sb = {k: v for k, v in b.summary().items() if k not in TIMING}
    assert sa == sb
    assert history(a) == history(b)
    for ma, mb in ((a.model, b.model), (a.model_for_usage, b.model_for_usage)):
        for (ka, va), (kb, vb) in zip(ma.state_dict().items(), mb.state_dict().items()):
            assert ka == kb and torch.equal(va, vb), ka
    assert (a.usage_model is None) == (b.usage_model is None)


# -- forks equal the cells run without them ---------------------------------------------------------
@pytest.mark.parametrize("t,protocol", [
    (make_task("copy", distance=8), REACH),
    # the faithful task, 2 eval batches: here phase 1 takes several epochs before an eval batch
    # scores (on this suite's machines it then reaches phase 2; elsewhere it may stay unsolved)
    (make_task("assoc_recall", distance=6), dataclasses.replace(REACH, eval_batches=2)),
])
def test_a_forked_cell_equals_the_same_cell_run_without_forking(tmp_path, t, protocol):
    ckpt = tmp_path / "p1.pt"
    plain = trainer(0.5, protocol=protocol, t=t).run()
    writer = trainer(0.5, ckpt, protocol=protocol, t=t).run()
    assert ckpt.is_file() and not writer.phase1_reused
    forked = trainer(0.5, ckpt, protocol=protocol, t=t).run()
    if t.name == "copy":
        assert plain.phase2_ran and plain.epochs_phase2 == REACH.phase2_epochs  # phase 2 really ran
    assert forked.phase1_reused and forked.phase1_seconds == pytest.approx(writer.phase1_seconds)
    assert forked.phase1_key == writer.phase1_key == plain.phase1_key
    assert_same_run(plain, writer)
    assert_same_run(plain, forked)


@pytest.mark.slow
def test_two_lambda_targets_forked_from_one_checkpoint_each_equal_their_unforked_runs(tmp_path):
    ckpt = tmp_path / "p1.pt"
    trainer(0.1, ckpt).run()  # writes the shared phase 1
    mtime = ckpt.stat().st_mtime_ns
    forks = {}
    for lam in (0.5, 1.0):
        forks[lam] = trainer(lam, ckpt).run()
        assert forks[lam].phase1_reused
        assert_same_run(trainer(lam).run(), forks[lam])
    assert ckpt.stat().st_mtime_ns == mtime  # read, never rewritten
    # the two targets train different weights in phase 2 (the comparison above can tell them apart)
    assert not all(torch.equal(a, b) for a, b in zip(forks[0.5].model.parameters(), forks[1.0].model.parameters()))


def test_the_unsolved_phase1_path_forks_exactly(tmp_path):
    ckpt = tmp_path / "p1.pt"
    # a seed whose best phase-1 epoch is not its last, so the reported weights (the best epoch's)
    # and the usage weights (the last epoch's) differ
    for seed in range(8):
        plain = trainer(0.1, protocol=NEVER, seed=seed).run()
        if plain.accuracy > plain.history[-1].val_acc:
            break
    else:
        pytest.fail("no seed in 0..7 has a best phase-1 epoch before its last")
    assert not plain.phase2_ran and plain.usage_model is not None
    assert plain.epochs_phase1 == NEVER.phase1_max_epochs
    trainer(0.1, ckpt, protocol=NEVER, seed=seed).run()
    forked = trainer(0.5, ckpt, protocol=NEVER, seed=seed).run()
    assert forked.phase1_reused
    assert_same_run(plain, forked)


def test_a_router_with_its_own_generator_forks_exactly(tmp_path):
    """The random router draws from a generator of its own, which the state dict does not hold."""
    cfg = dataclasses.replace(TINY, router="random", router_kwargs={"p": 0.3})
    ckpt = tmp_path / "p1.pt"
    trainer(0.1, ckpt, cfg=cfg).run()
    plain = trainer(0.5, cfg=cfg).run()
    assert plain.phase2_ran  # the router's generator is drawn from after phase 1
    assert_same_run(plain, trainer(0.5, ckpt, cfg=cfg).run())


@pytest.mark.slow
def test_run_cell_rows_of_a_fork_equal_the_rows_without_one(tmp_path, monkeypatch):
    monkeypatch.setitem(PROTOCOLS, REACH.name, REACH)
    cells = [Cell("copy", 8, "routed", lam, 0, REACH.name, model_overrides=dataclasses.asdict(TINY))
             for lam in (0.1, 0.5)]
    profile = Profile("p1", "", False, 64, (), tuple(cells), "", False)
    env = {"suite_version": "t", "git_sha": "t", "torch": torch.__version__, "device_name": "cpu"}
    device = torch.device("cpu")
    timing = {"seconds", "finished_at", "phase1_reused", "savings_latency", "latency_ms_model", "latency_ms_attn"}

    def strip(out):
        row, hist, routing = out.row, out.history, out.routing
        validate_row(row)
        return ({k: v for k, v in row.items() if k not in timing},
                [{k: v for k, v in h.items() if k != "seconds"} for h in hist], routing)

    d = tmp_path / "phase1"
    first = run_cell(cells[0], profile, device, env, "r", False, phase1_dir=d)
    second = run_cell(cells[1], profile, device, env, "r", False, phase1_dir=d)
    key = cell_phase1_key(cells[0])
    assert [p.name for p in d.iterdir()] == [f"{key}.pt"]
    assert first.row["phase1_reused"] is False and second.row["phase1_reused"] is True
    assert first.row["phase1_key"] == second.row["phase1_key"] == key
    alone = run_cell(cells[1], profile, device, env, "r", False)
    assert alone.row["phase1_reused"] is False and alone.row["phase1_key"] == key
    assert strip(second) == strip(alone)
    # from rows: what the fork saved is the reused row's phase-1 training FLOPs
    runs = pd.DataFrame([first.row, second.row])
    saved = phase1_savings(profile, runs, flops=False)
    assert saved["rows_phase1_reused"] == 1
    assert saved["train_flops_saved"] == second.row["train_flops_phase1"] > 0


# -- the key ------------------------------------------------------------------------------------------
def test_the_key_covers_what_phase1_depends_on_and_not_lambda():
    t = task()  # copy, distance 8
    base = phase1_key(t, TINY, 0, REACH, "cpu")
    assert phase1_key(t, TINY, 1, REACH, "cpu") != base
    assert phase1_key(make_task("copy", distance=9), TINY, 0, REACH, "cpu") != base
    assert phase1_key(make_task("copy", distance=8, segment_len=4), TINY, 0, REACH, "cpu") != base
    assert phase1_key(make_task("induction_heads", distance=8, seq_len=16), TINY, 0, REACH, "cpu") != base
    mq = make_task("mqar", distance=8, n_pairs=2, n_queries=1)
    assert phase1_key(mq, TINY, 0, REACH, "cpu") != phase1_key(make_task("mqar", distance=8, n_pairs=3, n_queries=1),
                                                               TINY, 0, REACH, "cpu")
    for cfg in (ONE, dataclasses.replace(TINY, d_model=32), dataclasses.replace(TINY, router="threshold"),
                dataclasses.replace(TINY, router="random", router_kwargs={"p": 0.3})):
        assert phase1_key(t, cfg, 0, REACH, "cpu") != base
    for change in ({"lr": 2e-3}, {"steps_per_epoch": 6}, {"eval_batches": 3}, {"solved_above": 0.5},
                   {"phase1_max_epochs": 5}, {"epoch_cap": 2}, {"weight_decay": 0.0}, {"clip_norm": 0.5},
                   {"batch_sizes": ((256, 16),)}):
        assert phase1_key(t, TINY, 0, dataclasses.replace(REACH, **change), "cpu") != base, change
    assert phase1_key(t, TINY, 0, REACH, "cuda") != base
    # phase 2's fields and the protocol's name do not change phase 1
    same = dataclasses.replace(REACH, name="other", phase2_epochs=7, phase2_floor=0.5)
    assert phase1_key(t, TINY, 0, same, "cpu") == base
    # equal across lambda targets, as the Trainer and a profile's cells see it
    assert {trainer(lam).phase1_key for lam in (0.0, 0.1, 0.5, 10.0)} == {base}
    cells = [Cell("assoc_recall", 126, "routed", lam, 0, "faithful") for lam in (0.1, 0.5)]
    assert cell_phase1_key(cells[0]) == cell_phase1_key(cells[1]) is not None
    assert cell_phase1_key(dataclasses.replace(cells[0], seed=1)) != cell_phase1_key(cells[0])
    assert cell_phase1_key(dataclasses.replace(cells[0], epoch_cap=3)) != cell_phase1_key(cells[0])


def test_the_constant_schedule_and_baselines_never_write_or_read_a_checkpoint(tmp_path):
    constant = dataclasses.replace(REACH, schedule="constant")
    with pytest.raises(ConfigError, match="^phase1: the 'constant' schedule"):
        phase1_key(task(), TINY, 0, constant, "cpu")
    assert cell_phase1_key(Cell("assoc_recall", 126, "routed", 0.1, 0, "faithful-constant")) is None
    assert cell_phase1_key(Cell("assoc_recall", 126, "attn", 0.0, 0, "faithful")) is None
    ckpt = tmp_path / "p1.pt"
    r = trainer(0.5, ckpt, protocol=constant).run()
    assert not ckpt.exists() and not r.phase1_reused and r.phase1_key is None
    assert trainer(0.0, ckpt, model="attn").run().phase1_key is None and not ckpt.exists()
    ckpt.write_bytes(b"not a checkpoint")  # would be refused if it were read
    assert_same_run(r, trainer(0.5, ckpt, protocol=constant).run())
    trainer(0.0, ckpt, model="conv").run()
    assert ckpt.read_bytes() == b"not a checkpoint"


# -- refusals and the atomic write ----------------------------------------------------------------------
def test_a_checkpoint_of_another_phase1_is_refused_with_one_line(tmp_path):
    ckpt = tmp_path / "p1.pt"
    trainer(0.1, ckpt, protocol=NEVER, cfg=ONE).run()
    with pytest.raises(ConfigError) as e:
        trainer(0.1, ckpt, protocol=NEVER, cfg=ONE, seed=1).run()
    msg = str(e.value)
    assert "\n" not in msg and "holds phase-1 key" in msg and "refusing" in msg


def test_an_unreadable_checkpoint_is_refused_with_one_line(tmp_path):
    ckpt = tmp_path / "p1.pt"
    trainer(0.1, ckpt, protocol=NEVER, cfg=ONE).run()
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="^phase1 checkpoint: cannot read") as e:
        trainer(0.1, ckpt, protocol=NEVER, cfg=ONE).run()
    assert "\n" not in str(e.value)
    torch.save({"format": 99}, ckpt)
    with pytest.raises(ConfigError, match="not a phase-1 checkpoint of format"):
        trainer(0.1, ckpt, protocol=NEVER, cfg=ONE).run()


def test_an_interrupted_save_leaves_no_file_and_no_temporary(tmp_path, monkeypatch):
    real = torch.save

    def dies_midway(obj, f, *a, **k):
        real(obj, f, *a, **k)
        f.truncate(100)  # a part of the file is written, then the process is stopped
        raise KeyboardInterrupt
    monkeypatch.setattr(phase1_mod.torch, "save", dies_midway)
    d = tmp_path / "phase1"
    with pytest.raises(KeyboardInterrupt):
        trainer(0.1, d / "p1.pt", protocol=NEVER, cfg=ONE).run()
    assert list(d.iterdir()) == []
    monkeypatch.setattr(phase1_mod.torch, "save", real)
    trainer(0.1, d / "p1.pt", protocol=NEVER, cfg=ONE).run()
    assert [p.name for p in d.iterdir()] == ["p1.pt"]


def test_the_checkpoint_appears_only_by_rename(tmp_path, monkeypatch):
    """Written to a temporary in the same folder, then os.replace'd onto its name."""
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append((os.path.dirname(src), os.path.basename(src), str(dst), os.path.exists(dst)))
        return real(src, dst)
    monkeypatch.setattr(os, "replace", spy)
    ckpt = tmp_path / "p1.pt"
    trainer(0.1, ckpt, protocol=NEVER, cfg=ONE).run()
    (src_dir, src_name, dst, existed), = seen
    assert src_dir == str(tmp_path) and src_name.endswith(".tmp") and dst == str(ckpt) and not existed


# -- the data streams --------------------------------------------------------------------------------
@pytest.mark.parametrize("name,params", [("assoc_recall", {"distance": 6}), ("copy", {"distance": 8}),
                                         ("induction_heads", {"distance": 6, "seq_len": 12}),
                                         ("mqar", {"distance": 8, "n_pairs": 2, "n_queries": 1})])
def test_the_trainers_streams_yield_the_tasks_stream_batches(name, params):
    t = make_task(name, **params)
    tr = trainer(0.0, t=t, model="attn")
    bs = REACH.batch_size(t.seq_len)
    for split, ours in (("train", tr.train_stream), ("validation", tr.val_stream)):
        theirs = t.stream(split, 0, bs)
        for _ in range(3):
            a, b = next(ours), next(theirs)
            assert all(torch.equal(x, y) for x, y in zip((a.inputs, a.positions, a.targets),
                                                         (b.inputs, b.positions, b.targets)))


def test_a_stream_resumes_from_its_saved_state():
    tr = trainer(0.0, model="attn")
    s = tr.train_stream
    next(s), next(s)
    state = s.state()
    ahead = [next(s).inputs for _ in range(3)]
    fresh = trainer(0.0, model="attn").train_stream
    fresh.load_state(state)
    assert fresh.drawn == 2
    assert all(torch.equal(a, next(fresh).inputs) for a in ahead)


# -- the savings report ----------------------------------------------------------------------------
def test_phase1_savings_counts_cells_sharing_a_key():
    cells = tuple(Cell("assoc_recall", d, m, lam, s, proto)
                  for d in (6, 14) for s in (0, 1)
                  for m, lam, proto in (("attn", 0.0, "smoke"), ("routed", 0.1, "smoke"), ("routed", 0.5, "smoke"),
                                        ("routed", 1.0, "smoke"), ("routed", 0.1, "smoke-constant"),
                                        ("routed", 0.5, "smoke-constant")))
    profile = Profile("t", "", False, 64, (), cells, "", False)
    out = phase1_savings(profile)
    assert out["routed_cells"] == 20 and out["routed_curriculum_cells"] == 12
    assert out["phase1_keys"] == 4 and out["cells_sharing_phase1"] == 8
    assert out["phase1_epochs_saved_upper_bound"] == 8 * SMOKE.phase1_max_epochs
    assert out["phase1_steps_saved_upper_bound"] == 8 * SMOKE.phase1_max_epochs * SMOKE.steps_per_epoch
    assert out["train_flops_saved_upper_bound"] > 0


def test_a_run_shares_phase1_between_lambda_targets(tmp_path):
    """train_cells wires the run's phase1/ folder: of two lambda targets of one seed, the second
    reads the first's phase 1, and both rows say so."""
    import json as _json
    from suite.cli import main
    from suite.schema.rows import read_runs
    prof = tmp_path / "p.json"
    prof.write_text(_json.dumps({
        "name": "share", "decides_claims": False, "protocol": "smoke", "test_sequences": 16,
        "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "kernel_size": 4},
        "grid": [{"task": "copy", "distances": [8], "task_params": {"segment_len": 4}, "models": ["routed"],
                  "lambdas": [0.1, 0.5], "seeds": [0]}]}))
    assert main(["reproduce", "--profile", str(prof), "--results-dir", str(tmp_path / "r"), "--quiet"]) == 0
    (run,) = [p for p in (tmp_path / "r").glob("*/*") if (p / "manifest.json").is_file()]
    rows = read_runs(run / "runs.csv").sort_values("lambda_target")
    assert rows["phase1_reused"].tolist() == [False, True]
    assert rows["phase1_key"].nunique() == 1 and len(list((run / "phase1").glob("*.pt"))) == 1


@pytest.mark.parametrize("lag,expected", [
    (1, ["a1", "a5", "b1", "b5", "c1", "x", "c5", "d1", "d5"]),
    (2, ["a1", "b1", "a5", "c1", "b5", "x", "c5", "d1", "d5"]),
    (9, ["a1", "b1", "c1", "x", "d1", "a5", "b5", "c5", "d5"]),
])
def test_a_sibling_waits_lag_first_cells_after_its_first(monkeypatch, lag, expected):
    """One worker: each sibling right after its first (a session's end loses no checkpoint); N
    workers: N first cells later; never before its first. 'x' has no phase 1 (a baseline)."""
    import suite.run.grid as rp
    keys = {"a1": "a", "a5": "a", "b1": "b", "b5": "b", "c1": "c", "x": None, "c5": "c", "d1": "d", "d5": "d"}
    monkeypatch.setattr(rp, "cell_phase1_key", lambda c, device: keys[c])
    assert rp.phase1_order(list(keys), "cpu", lag=lag) == expected


@pytest.mark.parametrize("lag", [0, -1, 1.5])
def test_phase1_order_refuses_a_lag_below_one(lag):
    from suite.run.grid import phase1_order
    with pytest.raises(ValueError, match="^lag: must be a positive int"):
        phase1_order([], "cpu", lag=lag)
