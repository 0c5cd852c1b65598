"""One faithful training step (forward, backward, clip, AdamW): ours vs the plain transcription.

Skipped in the normal run (addopts --benchmark-skip); `nox -s bench` runs them.
"""
import pytest
import torch
import torch.nn.functional as F

from baselines import MODELS, ModelConfig, build_model
from reference import RefLM
from suite.run.protocol import FAITHFUL
from tasks import make_task


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
    benchmark.extra_info.update(model=model, seq_len=seq_len, impl=impl,
                                batch=FAITHFUL.batch_size(seq_len), threads=torch.get_num_threads())
    benchmark.pedantic(make_step(impl, model, seq_len), rounds=5, warmup_rounds=1, iterations=1)
