import dataclasses

import pydantic
import pytest
import torch

from suite.run import trainer as trainer_mod
from suite.errors import ConfigError
from suite.run.protocol import FAITHFUL, PROTOCOLS, Protocol, get_protocol
from suite.run.trainer import Trainer, train
from tasks import make_task
from conftest import SMALL

TINY = dataclasses.replace(FAITHFUL, name="tiny", steps_per_epoch=2, eval_batches=1)


def test_faithful_protocol_values():
    p = FAITHFUL
    assert (p.lr, p.betas, p.weight_decay, p.clip_norm) == (1e-3, (0.9, 0.999), 0.01, 1.0)
    assert (p.steps_per_epoch, p.eval_batches, p.baseline_max_epochs) == (100, 50, 30)
    assert (p.phase1_max_epochs, p.phase2_epochs, p.phase2_floor, p.solved_above) == (25, 20, 0.90, 0.99)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.lr = 1.0


def test_the_long_protocol_differs_from_the_faithful_one_only_in_its_epoch_budgets():
    long = get_protocol("long").to_dict()
    faithful = FAITHFUL.to_dict()
    assert {k for k in faithful if long[k] != faithful[k]} == {"name", "baseline_max_epochs", "phase1_max_epochs"}
    assert (long["baseline_max_epochs"], long["phase1_max_epochs"]) == (6 * 30, 6 * 25)
    assert long["phase2_epochs"] == 20  # the lambda ramp is the faithful one


@pytest.mark.parametrize("T,bs", [(4, 32), (128, 32), (256, 32), (257, 24), (512, 24), (1024, 16),
                                  (2048, 8), (2049, 4), (4096, 4)])
def test_batch_size_rule(T, bs):
    assert FAITHFUL.batch_size(T) == bs


def test_lambda_schedule():
    assert [FAITHFUL.lambda_at(1, e, 0.5) for e in (1, 25)] == [0.0, 0.0]
    assert [FAITHFUL.lambda_at(2, e, 0.5) for e in (1, 2, 10, 20)] == [0.025, 0.05, 0.25, 0.5]
    assert FAITHFUL.lambda_at(2, 7, 0.1) == pytest.approx(0.035)
    const = get_protocol("faithful-constant")
    assert const.lambda_at(1, 1, 0.5) == 0.5 and const.lambda_at(2, 3, 0.5) == 0.5


def test_protocol_from_dict_rejects_unknown_and_bad_values():
    with pytest.raises(ConfigError, match="protocol.lrr: unknown key; allowed: baseline_max_epochs"):
        Protocol.from_dict({"name": "x", "lrr": 1})
    with pytest.raises(ConfigError, match="protocol.schedule: Input should be 'curriculum' or 'constant'"):
        Protocol.from_dict({"name": "x", "schedule": "cosine"})
    with pytest.raises(ConfigError, match="protocol.steps_per_epoch: Input should be greater than or equal to 1"):
        Protocol.from_dict({"name": "x", "steps_per_epoch": 0})
    with pytest.raises(ConfigError, match="protocol.lr: Input should be a finite number"):
        Protocol.from_dict({"name": "x", "lr": float("inf")})
    with pytest.raises(ConfigError, match="protocol.batch_sizes"):
        Protocol.from_dict({"name": "x", "batch_sizes": [[256, 0.5]]})
    with pytest.raises(pydantic.ValidationError):
        Protocol(name="x", epoch_cap=True)
    with pytest.raises(ConfigError, match="protocol: unknown 'fast'"):
        get_protocol("fast")
    assert Protocol.from_dict(FAITHFUL.to_dict()) == FAITHFUL
    assert set(PROTOCOLS) >= {"faithful", "faithful-constant"}


def scripted(monkeypatch, accs):
    """Replace evaluation by a script of accuracies; record the lambdas training saw."""
    it = iter(accs)
    seen = []

    def fake_eval(model, batches):
        return next(it), [0.5, 0.25]

    real = Trainer._train_epoch

    def spy(self, lam, bar):
        seen.append(lam)
        return real(self, lam, bar)

    monkeypatch.setattr(trainer_mod, "evaluate", fake_eval)
    monkeypatch.setattr(Trainer, "_train_epoch", spy)
    return seen


def run(model, lam=0.0, protocol=TINY):
    return train(make_task("assoc_recall", distance=14), model, lambda_target=lam, protocol=protocol,
                 model_config=SMALL, progress=False)


def test_baseline_stops_when_solved_and_reports_best(monkeypatch):
    seen = scripted(monkeypatch, [0.2, 0.7, 0.6, 0.995, 0.1])
    r = run("attn")
    assert r.epochs_phase1 == 4 and r.epochs_phase2 == 0 and not r.phase2_ran
    assert r.accuracy == 0.995 and seen == [0.0] * 4
    seen = scripted(monkeypatch, [0.2, 0.7, 0.6] + [0.5] * 27)
    r = run("conv")
    assert r.epochs_phase1 == 30 and r.accuracy == 0.7


def test_phase2_is_skipped_when_phase1_never_solves(monkeypatch):
    accs = [0.1 * (i % 5) for i in range(25)]
    seen = scripted(monkeypatch, accs)
    r = run("routed", lam=0.5)
    assert not r.phase2_ran and r.epochs_phase1 == 25 and r.epochs_phase2 == 0
    assert r.accuracy == max(accs) and seen == [0.0] * 25
    assert r.usage == 0.375 and r.usage_per_layer == [0.5, 0.25]
    # accuracy from the best epoch's weights, usage from the last epoch's
    assert r.usage_model is not None and r.model_for_usage is r.usage_model
    assert not all(torch.equal(a, b) for a, b in zip(r.model.parameters(), r.usage_model.parameters()))


def test_exactly_099_is_not_solved(monkeypatch):
    scripted(monkeypatch, [0.99] * 25)
    assert not run("routed", lam=0.5).phase2_ran


def test_phase2_ramps_lambda_and_reports_the_last_epoch(monkeypatch):
    seen = scripted(monkeypatch, [0.5, 0.999] + [1.0] * 19 + [0.97])
    r = run("routed", lam=0.5)
    assert r.phase2_ran and r.epochs_phase1 == 2 and r.epochs_phase2 == 20
    assert seen == [0.0, 0.0] + [pytest.approx(0.5 * e / 20) for e in range(1, 21)]
    assert r.accuracy == 0.97 and [h.phase for h in r.history] == [1] * 2 + [2] * 20


def test_phase2_stops_below_the_floor_and_reports_that_epoch(monkeypatch):
    scripted(monkeypatch, [0.995, 1.0, 0.95, 0.89, 1.0])
    r = run("routed", lam=0.1)
    assert r.epochs_phase1 == 1 and r.epochs_phase2 == 3 and r.accuracy == 0.89


def test_epoch_cap_is_applied(monkeypatch):
    scripted(monkeypatch, [0.1] * 10)
    r = run("routed", lam=0.1, protocol=dataclasses.replace(TINY, epoch_cap=3))
    assert r.epochs_phase1 == 3 and not r.phase2_ran


def test_history_records_every_epoch():
    r = run("routed", lam=0.5, protocol=dataclasses.replace(TINY, phase1_max_epochs=2))
    assert [(h.phase, h.epoch) for h in r.history] == [(1, 1), (1, 2)]
    h = r.history[0]
    assert len(h.usage_per_layer) == 2 and h.seconds > 0 and h.lam == 0.0
    assert 0.0 <= h.usage <= 1.0 and h.train_loss > 0


def test_same_seed_same_run():
    a = run("routed", lam=0.5, protocol=dataclasses.replace(TINY, phase1_max_epochs=2))
    b = run("routed", lam=0.5, protocol=dataclasses.replace(TINY, phase1_max_epochs=2))
    assert [h.train_loss for h in a.history] == [h.train_loss for h in b.history]
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("kwargs,needle", [
    ({"model_name": "routed", "lambda_target": -0.1}, "lambda_target: Input should be greater than or equal to 0"),
    ({"model_name": "routed", "lambda_target": float("inf")}, "lambda_target: Input should be a finite number"),
    ({"model_name": "attn", "lambda_target": 0.5}, "lambda_target: only the routed model"),
    ({"model_name": "routed", "seed": 1.5}, "seed: Input should be a valid integer"),
    ({"model_name": "routed", "seed": -1}, "seed: Input should be greater than or equal to 0"),
    ({"model_name": "routed", "seed": 2**63}, "seed: Input should be less than 2147483648"),
])
def test_bad_trainer_arguments(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        Trainer(make_task("assoc_recall", distance=6), protocol=TINY, model_config=SMALL, **kwargs)


def test_reported_model_is_the_best_epoch_for_baselines(monkeypatch):
    snapshots = []
    accs = iter([0.2, 0.7, 0.6] + [0.5] * 27)

    def fake_eval(model, batches):
        snapshots.append([p.detach().clone() for p in model.parameters()])
        return next(accs), [1.0, 1.0]
    monkeypatch.setattr(trainer_mod, "evaluate", fake_eval)
    r = run("attn")
    assert r.accuracy == 0.7
    for p, best in zip(r.model.parameters(), snapshots[1]):
        assert torch.equal(p, best)
    assert not all(torch.equal(p, q) for p, q in zip(r.model.parameters(), snapshots[-1]))


def test_evaluation_usage_weights_every_position_equally():
    from baselines import build_model
    from suite.run.trainer import evaluate
    m = build_model("routed", SMALL)
    task = make_task("assoc_recall", distance=14)
    batches = task.fixed_set("test", 0, 4, 3)  # sizes 3 and 1
    gates = {3: torch.zeros(3, 16), 1: torch.ones(1, 16)}

    class Forced(torch.nn.Module):
        def forward(self, ids, positions=None):
            out = m(ids, positions)
            g = gates[ids.shape[0]]
            return type(out)(out.logits, (g, g))
    _, per_layer = evaluate(Forced(), batches)
    assert per_layer == [0.25, 0.25]  # 16 of 64 positions, not the mean of batch means (0.5)


def _adopted_in_a_fresh_process(protocol):
    from suite.run.protocol import adopt as adopt_here, get_protocol as get_here
    try:
        get_here(protocol.name)
        return "known before"
    except ConfigError:
        adopt_here(protocol)
        return get_here(protocol.name)


def test_a_worker_process_adopts_the_drivers_protocol_and_refuses_a_different_one_under_its_name():
    # a protocol registered at run time exists only in the driver; a spawned worker learns it from the job
    import concurrent.futures as cf
    import multiprocessing
    from suite.run.protocol import adopt
    mine = dataclasses.replace(FAITHFUL, name="only-in-the-driver", lr=5e-3)
    with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(_adopted_in_a_fresh_process, mine).result(timeout=120) == mine
    adopt(FAITHFUL)                                   # the same rules under a known name: nothing to do
    assert get_protocol("faithful") is FAITHFUL
    with pytest.raises(ConfigError, match="protocol: 'faithful' differs between the driver and this worker"):
        adopt(dataclasses.replace(FAITHFUL, lr=1.0))
    assert get_protocol("faithful").lr == 1e-3
