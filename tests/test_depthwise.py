"""The causal depthwise conv's own backward is the same function, and the same FLOP count, as
plain autograd through F.conv1d on the left-padded input."""
import pytest
import torch
import torch.nn.functional as F

from baselines.depthwise import causal_depthwise_conv1d
from suite.compute.flops import counter_mode


def plain(x, w):
    return F.conv1d(F.pad(x, (w.shape[-1] - 1, 0)), w, groups=x.shape[1])


@pytest.mark.parametrize("B,C,T,K", [(3, 8, 20, 5), (2, 4, 3, 7), (1, 6, 1, 1), (2, 5, 9, 9), (4, 16, 130, 64)])
def test_output_and_gradients_equal_plain_autograd(B, C, T, K):
    torch.manual_seed(B * 1000 + T)
    x = torch.randn(B, C, T, dtype=torch.float64, requires_grad=True)
    w = torch.randn(C, 1, K, dtype=torch.float64, requires_grad=True)
    g = torch.randn(B, C, T, dtype=torch.float64)
    ours, ref = causal_depthwise_conv1d(x, w), plain(x, w)
    assert torch.allclose(ours, ref, atol=1e-12)
    for a, b in zip(torch.autograd.grad(ours, (x, w), g), torch.autograd.grad(ref, (x, w), g)):
        assert torch.allclose(a, b, atol=1e-12)


def test_gradcheck():
    x = torch.randn(2, 3, 11, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(causal_depthwise_conv1d, (x, w))


def test_causal():
    x = torch.randn(2, 4, 30)
    w = torch.randn(4, 1, 6)
    y = causal_depthwise_conv1d(x, w)
    x2 = x.clone()
    x2[..., 17:] += 5.0
    assert torch.equal(causal_depthwise_conv1d(x2, w)[..., :17], y[..., :17])
    assert not torch.equal(causal_depthwise_conv1d(x2, w)[..., 17:], y[..., 17:])


@pytest.mark.parametrize("need", ["both", "input", "weight"])
def test_only_the_requested_gradients_run_and_flops_match_plain(need):
    """Counted by the suite's counter (which mends torch's count of a grouped conv's backward):
    each requested gradient costs one forward, on both paths."""
    x = torch.randn(3, 8, 40, requires_grad=need in ("both", "input"))
    w = torch.randn(8, 1, 16, requires_grad=need in ("both", "weight"))
    counts = []
    for fn in (causal_depthwise_conv1d, plain):
        with counter_mode() as fc:
            fn(x, w).sum().backward()
        counts.append(fc.get_total_flops())
    forward = 2 * 3 * 8 * 40 * 16
    assert counts[0] == counts[1] == forward * (3 if need == "both" else 2)
