"""Counting executed FLOPs with fvcore (traced) and torch's FlopCounterMode (eager), both fixed.

Everything fvcore-specific stays in this module. Policies (compute-accounting.md):
  - MACs: fvcore's unit; FlopCounterMode counts 2 per MAC.
  - LayerNorm is not counted (fvcore's default handle is replaced by zero, as FlopCounterMode
    does not count it); elementwise ops are not counted by either tool.
  - SDPA: fvcore ignores it unless given a handle; FlopCounterMode on CPU misses the
    flash-for-cpu kernels. Both get the same reading here: 'dense' (every query x every key),
    'causal' (is_causal calls count the lower triangle; FlopCounterMode also counts the True
    entries of an explicit mask, fvcore cannot see mask values and counts dense rows), or
    'executed' (is_causal -> lower triangle, explicit mask -> dense rows).
  - torch 2.13 counts a grouped conv's backward as if groups = 1; it is overridden.
"""
from __future__ import annotations

import logging
import warnings
from collections import Counter

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from suite.compute.formulas import PARTS, READINGS

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import get_shape

#: ops fvcore meets in our models that cost no multiply-accumulates (or that the policy skips)
ZERO_COST_OPS = {
    "aten::add", "aten::sub", "aten::rsub", "aten::mul", "aten::div", "aten::pow", "aten::neg",
    "aten::gelu", "aten::softmax", "aten::pad", "aten::embedding", "aten::where", "aten::argmax",
    "aten::eq", "aten::le", "aten::ge", "aten::gt", "aten::lt", "aten::__or__", "aten::__and__",
    "aten::bitwise_not", "aten::numel", "aten::nonzero_numpy", "aten::nonzero", "aten::repeat_interleave",
    "aten::unique_consecutive", "aten::cumsum", "aten::gather", "aten::clamp", "aten::index_put_",
    "aten::fill_", "aten::new_zeros", "aten::new_ones", "aten::zeros_like", "aten::full",
    "aten::expand", "aten::max", "aten::clone", "aten::scatter", "aten::topk", "aten::sort",
    "aten::new_empty", "aten::stack",
}


def _pairs(L: int, S: int, is_causal: bool, reading: str, mask=None) -> int:
    """Query-key pairs one head scores, under a reading."""
    if reading == "dense":
        return L * S
    if is_causal:
        return L * (L + 1) // 2 if L == S else L * S
    if mask is not None and reading == "causal":
        return -1  # the caller counts the mask
    return L * S


def _fvcore_sdpa(reading: str):
    def handle(inputs, outputs):
        B, H, L, E = get_shape(inputs[0])
        S, Ev = get_shape(inputs[1])[2], get_shape(inputs[2])[3]
        is_causal = bool(inputs[5].toIValue())
        return B * H * _pairs(L, S, is_causal, reading) * (E + Ev)
    return handle


def _zero(inputs, outputs):
    return 0


class _Logits(nn.Module):
    """Tracing wants tensors out: the model's logits and gates."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids):
        out = self.model(ids)
        return (out.logits, *out.gates)


def fvcore_analysis(model: nn.Module, ids: torch.Tensor, reading: str = "executed") -> FlopCountAnalysis:
    if reading not in READINGS:
        raise ValueError(f"reading: unknown '{reading}'; allowed: {', '.join(READINGS)}")
    fa = FlopCountAnalysis(_Logits(model), (ids,))
    fa.set_op_handle("aten::scaled_dot_product_attention", _fvcore_sdpa(reading), "aten::layer_norm", _zero)
    fa.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    return fa


def _part_of(module: str, op: str) -> str:
    if ".attn" in module:
        return "attention_core" if "scaled_dot_product_attention" in op else "attention_proj"
    if ".conv" in module:
        return "conv" if "conv" in op else "conv_proj"
    for part in ("router", "ffn", "head"):
        if part in module:
            return part
    return "other"


def fvcore_parts(model: nn.Module, ids: torch.Tensor, reading: str = "executed") -> dict:
    """MACs by part (summed over the batch), 'total', and any unsupported non-zero-cost ops."""
    logging.getLogger("fvcore.nn.jit_analysis").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fa = fvcore_analysis(model, ids, reading)
        by = fa.by_module_and_operator()
        unknown = set(fa.unsupported_ops()) - ZERO_COST_OPS
    parts = Counter()
    leaves = [m for m in by if m and not any(o != m and o.startswith(m + ".") for o in by)]
    for m in leaves:
        for op, n in by[m].items():
            parts[_part_of(m, op)] += n
    # ops attributed to a parent module itself (not to any child)
    for m in by:
        if m in leaves:
            continue
        own = Counter(by[m])
        for child in by:
            is_child = ("." not in child and child != "") if m == "" else (
                child.startswith(m + ".") and child.count(".") == m.count(".") + 1)
            if is_child:
                own.subtract(by[child])
        for op, n in own.items():
            if n:
                parts[_part_of(m, op)] += n
    out = {p: int(parts.get(p, 0)) for p in PARTS}
    if parts.get("other"):
        out["other"] = int(parts["other"])
    out["total"] = int(sum(parts.values()))
    out["unsupported"] = sorted(unknown)
    return out


# -- FlopCounterMode ---------------------------------------------------------------------------
def _mask_fraction(mask, B: int, H: int, L: int, S: int) -> tuple[int, int]:
    """(kept, all) of the B x H x L x S query-key pairs under an explicit (broadcast) mask."""
    keep = mask if mask.dtype == torch.bool else torch.isfinite(mask)  # CPU kernels get -inf masks
    return int(keep.expand(B, H, L, S).sum()), B * H * L * S


def _read(dense: int, query, key, is_causal: bool, attn_mask, reading: str) -> int:
    """Scale torch's dense SDPA count to the reading (mask-aware for 'causal')."""
    B, H, L, _ = query.shape
    S = key.shape[2]
    if reading == "causal" and attn_mask is not None and not is_causal:
        kept, pairs = _mask_fraction(attn_mask, B, H, L, S)
        return dense * kept // pairs
    return dense * _pairs(L, S, is_causal, reading) // (L * S)


def _flash_cpu(reading: str):
    def count(query, key, value, dropout_p=0.0, is_causal=False, *, attn_mask=None, scale=None, out_val=None):
        dense = sdpa_flop_count(query.shape, key.shape, value.shape)
        return _read(dense, query, key, is_causal, attn_mask, reading)
    count._get_raw = True
    return count


def _flash_cpu_backward(reading: str):
    def count(grad_out, query, key, value, out, logsumexp, dropout_p, is_causal, *, attn_mask=None,
              scale=None, out_val=None):
        dense = sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape, value.shape)
        return _read(dense, query, key, is_causal, attn_mask, reading)
    count._get_raw = True
    return count


def _conv_backward(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                   _output_padding, groups, output_mask, out_shape=None):
    """Each requested gradient of a (grouped) conv costs what its forward costs."""
    forward = 2 * grad_out_shape[0] * _prod(grad_out_shape[2:]) * _prod(w_shape)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def _prod(xs) -> int:
    out = 1
    for x in xs:
        out *= int(x)
    return out


def counter_mode(reading: str = "executed") -> FlopCounterMode:
    aten = torch.ops.aten
    return FlopCounterMode(display=False, custom_mapping={
        aten._scaled_dot_product_flash_attention_for_cpu: _flash_cpu(reading),
        aten._scaled_dot_product_flash_attention_for_cpu_backward: _flash_cpu_backward(reading),
        aten.convolution_backward: _conv_backward,
    })


def counter_forward_flops(model: nn.Module, ids: torch.Tensor, reading: str = "executed") -> int:
    with torch.no_grad(), counter_mode(reading) as fc:
        model(ids)
    return fc.get_total_flops()


def training_step_flops(step_fn, reading: str = "executed") -> int:
    """FLOPs (2 per MAC) of one call of `step_fn` (forward + backward), counted for real."""
    with counter_mode(reading) as fc:
        step_fn()
    return fc.get_total_flops()
