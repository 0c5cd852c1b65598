"""One faithful training step (forward, backward, clip, AdamW): ours vs the plain transcription.

Skipped in the normal run (addopts --benchmark-skip); `nox -s bench` runs them. The guard (a
guard, not a test) is a ratio measured in the same run, so it holds on any CPU: each of our steps
is timed again in turn with the transcription's (A B A B ..., so a machine whose speed drifts slows
both alike) and must be SPEEDUP_GUARD times as fast. An sgemm fraction is not a guard: the step's
elementwise and memory-bound parts do not scale with the FMA peak, so the same code read 0.67 of
the peak on a 53 GFLOP/s machine and 0.35-0.56 on one at 130-190 GFLOP/s.

As information, each of our steps also reports its step efficiency: the step's FLOPs (counted by
FlopCounterMode on the CPU) over its median time, as a fraction of the float32 sgemm peak measured
right after the step, in the same process at the same thread count (on our shared machines the
peak itself moved by 1.5x between runs minutes apart, and the step with it: a peak measured once
would mix two clocks). Beside it, the fraction of that peak the step's widest matmul shape,
(B T, d) @ (d, 4d), reaches by itself: the step's matmuls cannot beat their own shape, so it tells
a slow step from skinny matmuls.
"""
import pytest
import torch
import torch.nn.functional as F

from baselines import MODELS, ModelConfig, build_model
from reference import RefLM
from suite.compute.readings import train_step_flops
from suite.run.throughput import interleaved_seconds, matmul_peak, matmul_rate
from suite.run.protocol import FAITHFUL
from tasks import make_task

#: timed rounds of each step, in the benchmark and in the interleaved comparison
ROUNDS = 5
#: our step's speed-up over the transcription's, at least, per model and T. Measured (2 threads,
#: an idle 2-core AMD EPYC, results/0.1.0/bench/step-dba581a-run1.json) at T = 128 / 256 / 512:
#: attn 1.44 / 1.68 / 3.62, conv 1.48 / 1.27 / 1.97, routed 1.55 / 2.00 / 3.48. T = 256 is
#: reported, not guarded; conv's gain (its depthwise backward) is smaller, so its T = 512 guard is
#: 1.5, below the 1.97 measured, where a 2x guard would fail on the measurement itself.
SPEEDUP_GUARD = {"attn": {128: 1.3, 512: 2.0}, "conv": {128: 1.3, 512: 1.5}, "routed": {128: 1.3, 512: 2.0}}


def make_step(impl, name, seq_len):
    torch.manual_seed(0)
    cfg = ModelConfig()
    ours = build_model(name, cfg)
    model = ours if impl == "ours" else RefLM(name, cfg)
    if impl != "ours":
        model.load_state_dict(ours.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = next(make_task("assoc_recall", distance=seq_len - 2).stream("train", 0, FAITHFUL.batch_size(seq_len)))
    target = batch.targets[:, 0]
    lam = 0.5 if name == "routed" else 0.0
    model.train()

    def step():
        if impl == "ours":
            out = model(batch.inputs, batch.positions)
            logits, gates = out.logits[:, 0], out.gates
        else:
            full, gates = model(batch.inputs)
            logits = full[:, -1]
        usage = torch.stack([g.mean() for g in gates]).mean()
        loss = F.cross_entropy(logits, target) + lam * usage
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return step


def step_efficiency(benchmark, model, seq_len, batch) -> str:
    """The step's share of the sgemm peak and its FFN matmul shape's, into extra_info; one line."""
    sgemm_peak = matmul_peak("cpu")
    task = make_task("assoc_recall", distance=seq_len - 2)
    flops = train_step_flops(model, ModelConfig(), task, batch, 0.5 if model == "routed" else 0.0)
    fraction = flops / benchmark.stats.stats.median / sgemm_peak
    d = ModelConfig().d_model
    shape = matmul_rate("cpu", batch * seq_len, d, 4 * d) / sgemm_peak
    benchmark.extra_info.update(step_flops=flops, sgemm_peak_flops=sgemm_peak, fraction_of_peak=fraction,
                                ffn_matmul_fraction_of_peak=shape)
    return (f"{flops / 1e9:.2f} GFLOP/step, {fraction:.2f} of the sgemm peak ({sgemm_peak / 1e9:.1f} GFLOP/s, "
            f"{torch.get_num_threads()} threads); its FFN matmul ({batch * seq_len}x{d} @ {d}x{4 * d}) alone "
            f"reaches {shape:.2f}")


@pytest.mark.parametrize("impl", ["reference", "ours"])
@pytest.mark.parametrize("seq_len", [128, 256, 512])
@pytest.mark.parametrize("model", list(MODELS))
def test_training_step(benchmark, model, seq_len, impl):
    batch = FAITHFUL.batch_size(seq_len)
    benchmark.extra_info.update(model=model, seq_len=seq_len, impl=impl, batch=batch, threads=torch.get_num_threads())
    step = make_step(impl, model, seq_len)
    benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    if impl != "ours" or benchmark.disabled:
        return
    seconds = interleaved_seconds({"reference": make_step("reference", model, seq_len), "ours": step}, "cpu",
                                  repeats=ROUNDS, warmup=1)
    speedup = seconds["reference"] / seconds["ours"]
    guard = SPEEDUP_GUARD[model].get(seq_len)
    benchmark.extra_info.update(interleaved_reference_s=seconds["reference"], interleaved_ours_s=seconds["ours"],
                                speedup_over_reference=speedup, speedup_guard=guard)
    print(f"\n{model} T={seq_len}: {speedup:.2f}x the transcription's step (interleaved medians "
          f"{seconds['ours']:.3f} s vs {seconds['reference']:.3f} s; guard {guard or 'none'}); "
          + step_efficiency(benchmark, model, seq_len, batch))
    if guard is not None:
        assert speedup >= guard, f"{model} T={seq_len}: {speedup:.2f}x the transcription's step, guard {guard}x"
