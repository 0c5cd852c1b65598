"""Routers: the built-ins' behaviour, plugins by import path, and the gate every router passes
before training (0/1 gates, eval determinism, causality through the whole model)."""
import dataclasses
import importlib
import json
import sys
import textwrap

import pytest
import torch

from baselines import ROUTERS, ModelConfig, ModelConfigError, Router, build_model, count_params, make_router
from conftest import SMALL
from suite.cli import main
from suite.errors import ConfigError
from suite.run.gate import check_router, cut_points
from suite.run.profiles import parse_profile

TINY = dataclasses.replace(SMALL, d_model=16, n_heads=2, n_layers=2, kernel_size=4)
TRAIN = ["train", "--task", "assoc_recall", "--distance", "14", "--model", "routed", "--d-model", "16",
         "--n-heads", "2", "--n-layers", "2", "--kernel-size", "4", "--protocol", "smoke", "--quiet"]

PLUGIN = '''
import torch
from torch import nn


class Half(nn.Module):
    """Attention at every third position: a fixed, causal policy."""

    def __init__(self, cfg, layer_index, offset=0):
        super().__init__()
        self.offset = offset

    def forward(self, x):
        t = torch.arange(x.shape[1], device=x.device)
        return ((t + self.offset) % 3 == 0).to(x.dtype).expand(x.shape[0], -1)


class PeekAhead(nn.Module):
    """Leaks: decides at t from the state at t + 1."""

    def __init__(self, cfg, layer_index):
        super().__init__()

    def forward(self, x):
        g = (torch.roll(x[..., 0], -1, dims=1) > 0).to(x.dtype)
        g[:, -1] = 0
        return g


class Soft(nn.Module):
    """Breaks the 0/1 contract."""

    def __init__(self, cfg, layer_index):
        super().__init__()

    def forward(self, x):
        return torch.sigmoid(x[..., 0])


class Coin(nn.Module):
    """Not deterministic in evaluation: a fresh coin at every call."""

    def __init__(self, cfg, layer_index):
        super().__init__()

    def forward(self, x):
        return (torch.rand(x.shape[:2]) < 0.5).to(x.dtype)


NOT_A_MODULE = 3
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A package outside the repository, importable as `userrouters` (nothing in the suite edited)."""
    pkg = tmp_path / "userrouters"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("userrouters", None)
    importlib.invalidate_caches()
    yield pkg
    sys.modules.pop("userrouters", None)


def gates(router: str, T: int = 12, B: int = 3, train: bool = False, **kwargs):
    torch.manual_seed(0)
    m = build_model("routed", ModelConfig(**{**dataclasses.asdict(TINY), "router": router, "router_kwargs": kwargs}))
    m.train(train)
    return m(torch.randint(0, 256, (B, T))).gates


# -- built-ins ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(ROUTERS))
def test_every_builtin_says_what_it_stands_for_and_passes_the_gate(name):
    cls = ROUTERS[name]
    assert len((cls.__doc__ or "").strip()) > 40
    kwargs = {"layer": 1} if name == "layer" else {}
    router = make_router(dataclasses.replace(TINY, router=name, router_kwargs=kwargs), 0)
    assert isinstance(router, Router)
    check_router(dataclasses.replace(TINY, router=name, router_kwargs=kwargs), 24)


def test_fixed_policies_route_where_they_say():
    assert all(torch.equal(g, torch.tensor([[0.0] * 11 + [1.0]] * 3)) for g in gates("last"))
    assert [float(g.mean()) for g in gates("layer", layer=1)] == [0.0, 1.0]
    assert [float(g.mean()) for g in gates("always_attn")] == [1.0, 1.0]
    assert [float(g.mean()) for g in gates("always_conv")] == [0.0, 0.0]


def test_fixed_policies_have_no_parameters_and_the_original_keeps_its_count():
    full = count_params(build_model("routed"))
    assert full == 1_124_872
    router_mlp = 4 * ((2 * 128) * 128 + 128 + 128 * 2 + 2)
    for name in ("last", "random", "layer", "always_attn", "always_conv"):
        assert count_params(build_model("routed", ModelConfig(router=name))) == full - router_mlp
    # threshold: the same MLP with one output instead of two
    assert count_params(build_model("routed", ModelConfig(router="threshold"))) == full - 4 * (128 + 1)


def test_random_router_is_seeded_fresh_per_sequence_and_deterministic_in_eval():
    g = gates("random", T=400, B=4, p=0.25)
    assert all(abs(float(x.mean()) - 0.25) < 0.05 for x in g)
    assert not torch.equal(g[0][0], g[0][1])                    # each sequence its own draws
    assert all(torch.equal(a, b) for a, b in zip(g, gates("random", T=400, B=4, p=0.25)))
    assert not torch.equal(g[0], gates("random", T=400, B=4, p=0.25, seed=1)[0])
    assert not torch.equal(g[0], g[1])                          # layers draw differently
    cfg = dataclasses.replace(TINY, router="random", router_kwargs={"p": 0.5})
    r = make_router(cfg, 0).train()
    x = torch.zeros(2, 50, 16)
    assert not torch.equal(r(x), r(x))                          # training: a fresh draw every step


def test_threshold_router_learns_through_a_straight_through_gate():
    cfg = dataclasses.replace(TINY, router="threshold")
    torch.manual_seed(0)
    r = make_router(cfg, 0).train()
    x = torch.randn(2, 30, 16)
    g = r(x)
    assert set(g.unique().tolist()) <= {0.0, 1.0}
    g.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in r.parameters())
    assert torch.equal(r.eval()(x), g.detach())                  # same decision in eval: no noise


@pytest.mark.parametrize("name,kwargs,needle", [
    ("random", {"p": 1.5}, "p: must be a number in [0, 1], got 1.5"),
    ("random", {"q": 1}, "unexpected keyword argument 'q'"),
    ("layer", {"layer": 2}, "layer: must be an integer in [0, 2), got 2"),
    ("last", {"x": 1}, "unexpected keyword argument 'x'"),
])
def test_bad_builtin_kwargs_are_one_line(name, kwargs, needle):
    with pytest.raises(ModelConfigError) as e:
        make_router(dataclasses.replace(TINY, router=name, router_kwargs=kwargs))
    assert needle in str(e.value) and str(e.value).startswith("router_kwargs:")


# -- plugins --------------------------------------------------------------------------------------
def test_a_plugin_from_outside_the_repo_runs_without_any_edit_to_the_suite(plugin, capsys):
    assert main(TRAIN + ["--router", "userrouters:Half", "--router-kwargs", '{"offset": 1}', "--format", "json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["router"] == "userrouters:Half" and row["router_kwargs"] == {"offset": 1}
    assert row["usage"] == pytest.approx(5 / 16)              # positions 2, 5, 8, 11, 14 of 16, both layers


def test_a_leaky_router_is_stopped_before_training_naming_the_position(plugin, capsys, monkeypatch):
    from suite.run import trainer
    monkeypatch.setattr(trainer.Trainer, "run", lambda self: pytest.fail("trained a leaky router"))
    assert main(TRAIN + ["--router", "userrouters:PeekAhead"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "router: 'userrouters:PeekAhead' is not causal: changing the tokens after position 0 changed the " \
           "decision at position 0 of layer 0" in err


@pytest.mark.parametrize("cls,needle", [
    ("Soft", "gates must be exactly 0 or 1"),
    ("Coin", "is not deterministic in evaluation mode"),
])
def test_the_gate_checks_the_contract(plugin, cls, needle):
    with pytest.raises(ConfigError, match=needle):
        check_router(dataclasses.replace(TINY, router=f"userrouters:{cls}"), 20)


def test_the_gate_names_the_first_leaked_position():
    class Late(torch.nn.Module):
        """Decides at 5 from the state at 9: a leak the first cuts miss."""

        def forward(self, x):
            g = torch.zeros(x.shape[:2])
            g[:, 5] = (x[:, 9, 0] > 0).float()
            return g
    cfg = dataclasses.replace(TINY, router="always_conv")
    model = build_model("routed", cfg)
    for blk in model.blocks:
        blk.mixer.router = Late()
    # through the real gate: swap the built model in
    import suite.run.gate as gate
    orig = gate.build_model
    gate.build_model = lambda name, c: model
    try:
        with pytest.raises(ConfigError, match="after position (5|6|7|8) changed the decision at position 5 of layer 0"):
            check_router(cfg, 12, seed=3)
    finally:
        gate.build_model = orig


@pytest.mark.parametrize("args,needle", [
    (["--router", "userrouters"], "router: unknown 'userrouters'; allowed: gumbel"),
    (["--router", "nosuchpkg.mod:X"], "router: cannot import module 'nosuchpkg.mod'"),
    (["--router", "userrouters:Missing"], "router: module 'userrouters' has no attribute 'Missing'"),
    (["--router", "userrouters:NOT_A_MODULE"], "router: 'userrouters:NOT_A_MODULE' is not an nn.Module class"),
    (["--router", "userrouters:Half", "--router-kwargs", "{bad"], "--router-kwargs: not valid JSON"),
    (["--router", "userrouters:Half", "--router-kwargs", "[1]"], "--router-kwargs: must be a JSON object"),
    (["--router", "userrouters:Half", "--router-kwargs", '{"width": 3}'],
     "router_kwargs: userrouters:Half rejected {'width': 3}"),
    (["--router-kwargs", '{"p": NaN}'], "router_kwargs: must be a JSON object of finite values"),
])
def test_every_bad_spec_is_one_line_and_exit_2(plugin, args, needle, capsys):
    assert main(TRAIN + args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and needle in err, err


def test_a_router_on_a_baseline_is_refused(capsys):
    assert main(["train", "--task", "assoc_recall", "--distance", "14", "--model", "attn", "--router", "last"]) == 2
    assert "router: only the routed model has a router" in capsys.readouterr().err


# -- profiles and hashes --------------------------------------------------------------------------
def profile(router: str, kwargs=None):
    model = {"d_model": 16, "n_layers": 2, "n_heads": 2, "kernel_size": 4, "router": router}
    if kwargs is not None:
        model["router_kwargs"] = kwargs
    return {"name": "r", "protocol": "smoke", "test_sequences": 10,
            "grid": [{"task": "assoc_recall", "distances": [14], "models": ["routed"], "lambdas": [0.5],
                      "seeds": [0], "model": model}]}


def test_profiles_take_routers_and_check_them_before_anything_runs(plugin):
    (cell,) = parse_profile(profile("userrouters:Half", {"offset": 1})).cells
    assert cell.model_config().router_kwargs == {"offset": 1}
    with pytest.raises(ConfigError, match=r"profile.grid\[0\].model: router: module 'userrouters' has no attribute"):
        parse_profile(profile("userrouters:Nope"))
    with pytest.raises(ConfigError, match=r"profile.grid\[0\].model: router_kwargs: userrouters:Half rejected"):
        parse_profile(profile("userrouters:Half", {"offset": 1, "x": 2}))


def test_config_hash_covers_router_spec_kwargs_and_plugin_source(plugin):
    def key(router, kwargs=None):
        return parse_profile(profile(router, kwargs)).cells[0].config_hash(10)
    assert key("gumbel") == key("gumbel", {})            # no kwargs: the hash stored cells were made with
    assert len({key("gumbel"), key("last"), key("userrouters:Half"), key("userrouters:Half", {"offset": 1})}) == 4
    before = key("userrouters:Half")
    (plugin / "__init__.py").write_text((plugin / "__init__.py").read_text() + "\n# edited\n")
    assert key("userrouters:Half") != before              # editing the plugin retires its cells


def test_cut_points_cover_both_ends():
    assert cut_points(128)[0] == 0 and cut_points(128)[-1] == 126 and len(cut_points(128)) == 12
    assert cut_points(3) == [0, 1] and cut_points(1) == []


def test_the_example_plugin_in_examples_keeps_the_contract(monkeypatch):
    from pathlib import Path
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "examples" / "token_router"))
    cfg = dataclasses.replace(TINY, router="token_router:TokenRouter", router_kwargs={"hidden": 8})
    check_router(cfg, 20)
    (cell,) = parse_profile(profile("token_router:TokenRouter", {"hidden": 8})).cells
    assert cell.router_source_hash() is not None
    with pytest.raises(ModelConfigError, match="hidden: must be a positive integer"):
        make_router(dataclasses.replace(cfg, router_kwargs={"hidden": 0}))
