"""Sparse execution (each branch only where routed) computes what the dense masked mix computes."""
import pytest
import torch

from baselines import ModelConfig, ModelConfigError, build_model

CFG = ModelConfig(d_model=32, n_layers=3, n_heads=4, kernel_size=8)


def patterns(B, T, gen):
    rand = (torch.rand(B, T, generator=gen) < 0.3).float()
    uneven = torch.zeros(B, T)
    uneven[0] = 1                    # every position of sequence 0
    uneven[2, [0, 17, T - 1]] = 1    # three rows of sequence 2, none of 1 and 3
    last = torch.zeros(B, T)
    last[:, -1] = 1                  # one routed query per sequence
    return {"random": rand, "none": torch.zeros(B, T), "all": torch.ones(B, T), "uneven": uneven, "last": last}


@pytest.mark.parametrize("name", ["random", "none", "all", "uneven", "last"])
@pytest.mark.parametrize("positions", [None, [0, 9, 63]], ids=["all-positions", "some-positions"])
def test_sparse_matches_dense_on_gate_patterns(name, positions):
    torch.manual_seed(0)
    m = build_model("routed", CFG).eval()
    B, T = 4, 64
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 256, (B, T), generator=gen)
    for blk in m.blocks:
        blk.mixer.forced_gate = patterns(B, T, gen)[name]
    pos = None if positions is None else torch.tensor(positions)
    with torch.no_grad():
        dense = m.set_execution("dense")(ids, pos).logits
        sparse = m.set_execution("sparse")(ids, pos).logits
    assert (dense - sparse).abs().max() <= 1e-5


def test_sparse_matches_dense_with_the_routers_own_decisions():
    torch.manual_seed(0)
    m = build_model("routed", CFG).eval()
    ids = torch.randint(0, 256, (6, 100))
    with torch.no_grad():
        d = m.set_execution("dense")(ids)
        s = m.set_execution("sparse")(ids)
    assert (d.logits - s.logits).abs().max() <= 1e-5
    assert all(torch.equal(a, b) for a, b in zip(d.gates, s.gates))
    assert 0 < float(torch.stack([g.mean() for g in s.gates]).mean()) < 1


def test_sparse_really_skips_the_unrouted_branch(monkeypatch):
    torch.manual_seed(0)
    m = build_model("routed", CFG).eval().set_execution("sparse")
    for blk in m.blocks:
        blk.mixer.forced_gate = torch.zeros(2, 16)
    calls = []
    for blk in m.blocks:
        monkeypatch.setattr(blk.mixer.attn, "forward", lambda *a, **k: calls.append(1))
    with torch.no_grad():
        m(torch.randint(0, 256, (2, 16)))
    assert calls == []


def test_training_always_uses_the_dense_mix():
    torch.manual_seed(0)
    m = build_model("routed", CFG).set_execution("sparse").train()
    ids = torch.randint(0, 256, (2, 20))
    torch.manual_seed(3)
    a = m(ids).logits
    m.set_execution("dense")
    torch.manual_seed(3)
    b = m(ids).logits
    assert torch.equal(a, b)


def test_unknown_execution():
    with pytest.raises(ModelConfigError, match="execution: unknown 'lazy'"):
        build_model("routed", CFG).set_execution("lazy")
