"""Routing analysis (where attention goes vs where the task scores) and the whole-layer test."""
import dataclasses
import math

import pytest
import torch

from baselines import ModelConfig, build_model
from suite.audit.routing import routing_analysis, whole_layer_test
from tasks import Batch, make_task

try:
    from tasks import IGNORE
except ImportError:
    IGNORE = -100

CFG = ModelConfig(d_model=16, n_layers=2, n_heads=2, kernel_size=4)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def routed(router="gumbel", seed=1, **kwargs):
    torch.manual_seed(seed)
    return build_model("routed", dataclasses.replace(CFG, router=router, router_kwargs=kwargs)).eval()


# -- whole_layer_test --------------------------------------------------------------------------

@pytest.mark.parametrize("usage, label, full_layers", [
    ([1.0, 0, 0, 0], "one whole layer", [0]),
    ([0, 0, 1.0, 0], "one whole layer", [2]),
    ([0.25] * 4, "spread over layers", []),
    ([0.6, 0.4, 0, 0], "spread over layers", []),          # mean 0.25: a plateau, no full layer
    ([0.0025, 0, 0, 0], "no plateau", []),
    ([0.97, 0.03, 0, 0], "one whole layer", [0]),
    ([1.0, 0.0], "one whole layer", [0]),                     # 1/2 in a two-layer model
    ([0.5, 0.5], "spread over layers", []),
    ([1.0], "one whole layer", [0]),
    ([1.0, 1.0, 0, 0], "no plateau", [0, 1]),                 # mean 0.5: not near 1/4
    ([0.0, 0, 0, 0], "no plateau", []),
    # boundaries, L = 4: plateau for mean in [0.2, 0.3]; full at usage >= 0.95
    ([0.95, 0.25, 0, 0], "one whole layer", [0]),             # mean 0.3, usage 0.95: both inside
    ([0.949, 0.251, 0, 0], "spread over layers", []),         # mean 0.3, just short of full
    ([0.95, 0.2500001, 0, 0], "no plateau", [0]),             # mean just above 0.3
    ([0.8, 0, 0, 0], "spread over layers", []),               # mean 0.2, the lower edge
    ([0.79, 0, 0, 0], "no plateau", []),
    # L = 2: plateau for mean in [0.4, 0.6]
    ([1.0, 0.2], "one whole layer", [0]),
    ([1.0, 0.21], "no plateau", [0]),
])
def test_whole_layer_test_on_hand_made_tables(usage, label, full_layers):
    out = whole_layer_test(usage)
    assert out["label"] == label
    assert out["full_layers"] == full_layers
    assert out["plateau"] == (label != "no plateau")
    assert out["whole_layer"] == (label == "one whole layer")


def test_whole_layer_test_thresholds_are_parameters():
    assert whole_layer_test([0.97, 0.03, 0, 0], full=1.0)["label"] == "spread over layers"
    assert whole_layer_test([0.9, 0.1, 0, 0], full=0.9)["label"] == "one whole layer"
    # a wide plateau with two full layers is spread, not one whole layer
    out = whole_layer_test([1.0, 1.0, 0, 0], near=1.0)
    assert out == {"plateau": True, "full_layers": [0, 1], "whole_layer": False, "label": "spread over layers"}
    assert whole_layer_test([0.26, 0.25, 0.25, 0.25], near=0.0)["label"] == "no plateau"
    assert whole_layer_test([0.25] * 4, near=0.0)["label"] == "spread over layers"


@pytest.mark.parametrize("usage", [[], [1.5, 0], [-0.1, 0.5], [float("nan"), 0]])
def test_whole_layer_test_refuses_bad_tables(usage):
    with pytest.raises(ValueError, match="usage_per_layer"):
        whole_layer_test(usage)


# -- routing_analysis --------------------------------------------------------------------------

def recall_set(n=12, batch=4):
    return make_task("assoc_recall", distance=14).fixed_set("test", 0, n, batch)


def test_last_router_on_recall_attends_exactly_the_query():
    out = routing_analysis(routed("last"), recall_set())
    T = 16
    for layer in range(2):
        assert out[f"precision_layer_{layer}"] == 1.0 and out[f"recall_layer_{layer}"] == 1.0
        assert out[f"usage_layer_{layer}"] == 1 / T
        assert out[f"attention_positions_per_sequence_layer_{layer}"] == 1.0
    assert out["precision_any"] == out["recall_any"] == out["query_share"] == 1.0
    assert out["attention_positions_per_sequence"] == 2.0 and out["usage"] == 1 / T


def test_always_attn_and_one_layer_routers():
    T = 16
    out = routing_analysis(routed("always_attn"), recall_set())
    for layer in range(2):
        assert out[f"precision_layer_{layer}"] == 1 / T and out[f"recall_layer_{layer}"] == 1.0
        assert out[f"usage_layer_{layer}"] == 1.0
        assert out[f"attention_positions_per_sequence_layer_{layer}"] == T
    assert out["precision_any"] == out["query_share"] == 1 / T and out["recall_any"] == 1.0

    out = routing_analysis(routed("layer", layer=1), recall_set())
    assert math.isnan(out["precision_layer_0"]) and out["recall_layer_0"] == 0.0 and out["usage_layer_0"] == 0.0
    assert out["precision_layer_1"] == 1 / T and out["recall_layer_1"] == 1.0
    assert out["precision_any"] == out["query_share"] == 1 / T and out["recall_any"] == 1.0
    assert out["usage"] == 0.5 and out["attention_positions_per_sequence"] == T
    assert whole_layer_test([out["usage_layer_0"], out["usage_layer_1"]])["label"] == "one whole layer"


def test_only_scored_cells_count_as_hits():
    # copy, T 12, scored 8..11; "last" attends position 11 only, in both layers
    b = make_task("copy", distance=8, segment_len=4).fixed_set("test", 0, 6, 6)[0]
    targets = b.targets.clone()
    targets[:3, 3] = IGNORE            # rows 0-2 do not score position 11
    targets[5, 0] = IGNORE
    out = routing_analysis(routed("last"), [Batch(b.inputs, b.positions, targets)])
    scored = 24 - 3 - 1
    for layer in range(2):
        assert out[f"precision_layer_{layer}"] == 3 / 6
        assert out[f"recall_layer_{layer}"] == 3 / scored
    assert out["precision_any"] == 3 / 6 and out["recall_any"] == 3 / scored
    assert out["query_share"] == 6 / 12


def test_a_content_router_matches_a_hand_count():
    m = routed("gumbel", seed=2)  # untrained: decides by content, differently per layer and row
    b = make_task("copy", distance=8, segment_len=4).fixed_set("test", 0, 10, 5)
    targets = [x.targets.clone() for x in b]
    targets[0][1, 2] = IGNORE
    batches = [Batch(x.inputs, x.positions, t) for x, t in zip(b, targets)]
    m.train()
    out = routing_analysis(m, batches)
    assert m.training  # left as it was
    m.eval()
    with torch.no_grad():
        gates = [[g.tolist() for g in m(x.inputs).gates] for x in batches]   # [batch][layer][row][t]
    L, T = 2, 12
    on, hit, scored_n, any_on, any_hit, n_seq = [0, 0], [0, 0], 0, 0, 0, 0
    for x, g in zip(batches, gates):
        for i in range(x.inputs.shape[0]):
            n_seq += 1
            scored = {int(p) for p, tg in zip(x.positions, x.targets[i]) if int(tg) != IGNORE}
            scored_n += len(scored)
            for t in range(T):
                a = [g[layer][i][t] == 1.0 for layer in range(L)]
                for layer in range(L):
                    on[layer] += a[layer]
                    hit[layer] += a[layer] and t in scored
                any_on += any(a)
                any_hit += any(a) and t in scored
    assert 0 < on[0] < n_seq * T and 0 < hit[0] < scored_n, "the test needs a mixed routing"
    for layer in range(L):
        assert out[f"usage_layer_{layer}"] == pytest.approx(on[layer] / (n_seq * T))
        assert out[f"precision_layer_{layer}"] == pytest.approx(hit[layer] / on[layer])
        assert out[f"recall_layer_{layer}"] == pytest.approx(hit[layer] / scored_n)
        assert out[f"attention_positions_per_sequence_layer_{layer}"] == pytest.approx(on[layer] / n_seq)
    assert out["precision_any"] == pytest.approx(any_hit / any_on)
    assert out["recall_any"] == pytest.approx(any_hit / scored_n)
    assert out["query_share"] == pytest.approx(sum(hit) / sum(on))
    assert all(isinstance(v, float) for v in out.values())


def test_a_baseline_is_refused():
    with pytest.raises(TypeError, match="routed"):
        routing_analysis(build_model("conv", CFG), recall_set(4, 4))


def test_routing_analysis_columns_name_the_plateau_test_and_the_mode_apart():
    """The plateau test's words and the routing mode are two columns: a plateau 'spread over layers'
    can be one layer partly attended as a mode."""
    from suite.audit.analysis import whole_layer_flat
    from suite.audit.common import Limits
    out = whole_layer_flat([0.02, 0.97, 0.0, 0.0], Limits(published_usage=0.005, success_accuracy=0.99))
    assert out["plateau_label"] == "one whole layer" and out["mode"] == "one whole layer"
    out = whole_layer_flat([0.0, 0.12, 0.0, 0.001], Limits(published_usage=0.005, success_accuracy=0.99))
    assert out["plateau"] is False and out["mode"] == "one layer partly attended"
    assert "label" not in out
