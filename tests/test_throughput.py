"""The throughput readings behind `nox -s bench` and `gpucheck`: counted FLOPs over measured time,
as a share of a matmul peak measured in the same process."""
import pytest
import torch

from baselines import ModelConfig
from suite.compute.readings import train_step_flops
from baselines import build_model
from suite.run.throughput import (call_seconds, interleaved_seconds, matmul_peak, matmul_rate, median_seconds, slice_size,
                                  sliced_forward, step_reading)
from suite.run.devices import precision
from suite.errors import ConfigError
from suite.run.trainer import Trainer
from tasks import make_task

TINY = ModelConfig(d_model=16, n_layers=1, n_heads=2, kernel_size=4)


class FakeClock:
    """A clock that moves only when a timed call says how long it took."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def calls(self, seconds, log=None, name=""):
        """A callable whose n-th call takes seconds[n] on this clock."""
        it = iter(seconds)

        def fn():
            if log is not None:
                log.append(name)
            self.now += next(it)
        return fn


def test_call_seconds_reads_the_clock_around_the_call():
    clock = FakeClock()
    assert call_seconds(clock.calls([0.25]), "cpu", clock) == 0.25


def test_median_seconds_is_the_median_of_the_timed_calls_only():
    clock = FakeClock()
    # the warm-up (9 s) is not timed; the median of (1, 7, 2) is 2 (their mean would be 3.33, and
    # with the warm-up counted the median would be 4.5)
    fn = clock.calls([9.0, 1.0, 7.0, 2.0])
    assert median_seconds(fn, "cpu", repeats=3, warmup=1, clock=clock) == 2.0
    with pytest.raises(StopIteration):
        fn()  # exactly warmup + repeats calls were made


def test_interleaved_seconds_alternates_the_callables_after_warming_each():
    clock, log = FakeClock(), []
    fns = {"a": clock.calls([5.0, 1.0, 6.0, 2.0], log, "a"), "b": clock.calls([5.0, 10.0, 60.0, 20.0], log, "b")}
    assert interleaved_seconds(fns, "cpu", repeats=3, warmup=1, clock=clock) == {"a": 2.0, "b": 20.0}
    assert log == ["a", "b"] + ["a", "b"] * 3


def test_a_median_of_no_calls_is_refused():
    with pytest.raises(ValueError, match="repeats: must be at least 1"):
        median_seconds(lambda: None, "cpu", repeats=0)


def test_matmul_peak_is_the_best_square_rate(monkeypatch):
    import suite.run.throughput as tp
    seconds = {64: 1e-3, 128: 2e-3, 256: 64e-3}   # 128 is the fastest: 2 * 128**3 / 2e-3

    def fake(fn, device, repeats):
        return seconds[fn().shape[0]]
    monkeypatch.setattr(tp, "median_seconds", fake)
    assert matmul_peak("cpu", sizes=(64, 128, 256)) == 2 * 128 ** 3 / 2e-3


def test_matmul_peak_is_measured_on_this_machine():
    assert matmul_peak("cpu", sizes=(64, 128), repeats=3) > 1e6


def test_matmul_rate_is_2mkn_over_the_median_time(monkeypatch):
    import suite.run.throughput as tp
    seen = []

    def fake(fn, device, repeats):
        seen.append(fn().shape)
        return 0.5
    monkeypatch.setattr(tp, "median_seconds", fake)
    assert matmul_rate("cpu", 6, 5, 7) == 2 * 6 * 5 * 7 / 0.5
    assert seen == [torch.Size([6, 7])]


@pytest.mark.parametrize("bad", [{"m": 0}, {"k": -1}, {"n": 2.0}])
def test_matmul_rate_refuses_impossible_shapes(bad):
    shape = {"m": 4, "k": 4, "n": 4} | bad
    with pytest.raises(ValueError, match=f"^{next(iter(bad))}: must be a positive int"):
        matmul_rate("cpu", **shape)


@pytest.mark.parametrize("model", ["attn", "conv", "routed"])
def test_step_reading_counts_the_trainers_step(model):
    task = make_task("assoc_recall", distance=14)
    r = step_reading(task, model, "cpu", peak=1e9, repeats=2, model_config=TINY)
    lam = 0.5 if model == "routed" else 0.0
    assert r.flops == train_step_flops(model, TINY, task, r.batch, lam) > 0
    assert r.seconds > 0 and r.fraction == pytest.approx(r.flops / r.seconds / 1e9)
    assert (r.seq_len, r.batch) == (16, 32)


def test_precision_sets_and_restores_the_numerics():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with precision("float32", "cpu"):
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, False)
    with precision("tf32", "cpu"):
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)
    with precision("bf16", "cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with pytest.raises(ConfigError, match="precision: unknown 'fp8'"):
        with precision("fp8", "cpu"):
            pass


def test_the_default_precision_leaves_every_protocol_hash_unchanged():
    from suite.run.protocol import PROTOCOLS
    assert "precision" not in PROTOCOLS["faithful"].to_dict()
    assert PROTOCOLS["faithful"].digest() == "84f42e4d5be4"  # the headline run's rows carry this hash
    assert PROTOCOLS["faithful-tf32"].to_dict()["precision"] == "tf32"
    assert PROTOCOLS["faithful-tf32"].digest() != PROTOCOLS["faithful"].digest()


def test_a_bf16_protocol_trains_on_the_cpu():
    from suite.run.protocol import PROTOCOLS
    import dataclasses
    p = dataclasses.replace(PROTOCOLS["faithful-bf16"], steps_per_epoch=2, eval_batches=1, baseline_max_epochs=1)
    tr = Trainer(make_task("assoc_recall", distance=14), "attn", protocol=p, model_config=TINY, progress=False)
    res = tr.run()
    assert 0.0 <= res.accuracy <= 1.0 and tr.history[0].train_loss > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_step_table_covers_every_model_and_length():
    from suite.commands.gpucheck import step_table
    t = step_table(torch.device("cuda"), lengths=(128,), repeats=2)
    assert set(t["model"]) == {"attn", "conv", "routed"} and (t["fraction_of_peak"] > 0).all()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_gpucheck_without_a_gpu_is_one_line_and_exit_2(capsys):
    from suite.cli import main
    assert main(["gpucheck"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: device: gpucheck measures a GPU")


@pytest.mark.parametrize("batch,seq_len,max_tokens,expected", [
    (24, 4096, 4096, 1), (24, 2048, 4096, 2), (24, 128, 4096, 24), (5, 8192, 4096, 1),
    (24, 100, 1000, 10), (24, 4096, None, 24)])
def test_slices_hold_whole_sequences_within_the_token_budget(batch, seq_len, max_tokens, expected):
    assert slice_size(batch, seq_len, "cpu", max_tokens) == expected


def test_slices_are_the_whole_batch_on_cuda():
    assert slice_size(24, 4096, "cuda", 4096) == 24


@pytest.mark.parametrize("bad", [0, -5])
def test_a_token_budget_below_one_is_refused(bad):
    with pytest.raises(ValueError, match="max_tokens"):
        slice_size(4, 16, "cpu", bad)


def test_sliced_inference_is_the_same_function_as_one_batch():
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2, kernel_size=4)
    m = build_model("routed", cfg).eval().set_execution("sparse")
    ids = torch.randint(0, 256, (7, 24))
    with torch.no_grad():
        whole = m(ids)
        parts = sliced_forward(m, ids, "cpu", max_tokens=48)
    assert [p.logits.shape[0] for p in parts] == [2, 2, 2, 1]
    assert torch.allclose(torch.cat([p.logits for p in parts]), whole.logits, atol=1e-5)
    for layer, gate in enumerate(whole.gates):
        assert torch.equal(torch.cat([p.gates[layer] for p in parts]), gate)
