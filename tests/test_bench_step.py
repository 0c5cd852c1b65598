"""One faithful training step (forward, backward, clip, AdamW): ours vs the plain transcription.

Skipped in the normal run (addopts --benchmark-skip); `nox -s bench` runs them. Each of our steps
also reports its step efficiency: the step's FLOPs (counted by FlopCounterMode on the CPU) over
its median time, as a fraction of the float32 sgemm peak measured right after the step, in the
same process at the same thread count (on our shared machines the peak itself moved by 1.5x
between runs minutes apart, and the step with it: a peak measured once would mix two clocks).
Below STEP_EFFICIENCY_GUARD the benchmark fails (a guard, not a test). Beside it,
the fraction of that peak the step's widest matmul shape, (B T, d) @ (d, 4d), reaches by itself:
the step's matmuls cannot beat their own shape, so it tells a slow step from skinny matmuls.
"""
import pytest
import torch
import torch.nn.functional as F

from baselines import MODELS, ModelConfig, build_model
from reference import RefLM
from suite.compute.readings import train_step_flops
from suite.compute.throughput import matmul_peak, matmul_rate
from suite.run.protocol import FAITHFUL
from tasks import make_task

#: measured on one of our machines: the routed step at about 0.67 of the sgemm peak (T=128), 0.74 (T=512)
STEP_EFFICIENCY_GUARD = 0.65


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


@pytest.mark.parametrize("impl", ["reference", "ours"])
@pytest.mark.parametrize("seq_len", [128, 256, 512])
@pytest.mark.parametrize("model", list(MODELS))
def test_training_step(benchmark, model, seq_len, impl):
    batch = FAITHFUL.batch_size(seq_len)
    benchmark.extra_info.update(model=model, seq_len=seq_len, impl=impl, batch=batch, threads=torch.get_num_threads())
    benchmark.pedantic(make_step(impl, model, seq_len), rounds=5, warmup_rounds=1, iterations=1)
    if impl != "ours" or benchmark.disabled:
        return
    sgemm_peak = matmul_peak("cpu")
    task = make_task("assoc_recall", distance=seq_len - 2)
    flops = train_step_flops(model, ModelConfig(), task, batch, 0.5 if model == "routed" else 0.0)
    fraction = flops / benchmark.stats.stats.median / sgemm_peak
    d = ModelConfig().d_model
    shape = matmul_rate("cpu", batch * seq_len, d, 4 * d) / sgemm_peak
    benchmark.extra_info.update(step_flops=flops, sgemm_peak_flops=sgemm_peak, fraction_of_peak=fraction,
                                ffn_matmul_fraction_of_peak=shape)
    print(f"\n{model} T={seq_len}: {flops / 1e9:.2f} GFLOP/step, {fraction:.2f} of the sgemm peak "
          f"({sgemm_peak / 1e9:.1f} GFLOP/s, {torch.get_num_threads()} threads); its FFN matmul "
          f"({batch * seq_len}x{d} @ {d}x{4 * d}) alone reaches {shape:.2f}")
    assert fraction >= STEP_EFFICIENCY_GUARD, f"{model} T={seq_len}: step efficiency {fraction:.2f}"
