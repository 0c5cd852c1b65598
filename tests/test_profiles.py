import copy
import json

import pytest

from baselines import ModelConfig

from suite.errors import ConfigError
from suite.run.profiles import available_profiles, load_profile, parse_profile

BASE = {"name": "t", "grid": [{"task": "assoc_recall", "distances": [14], "models": ["attn", "routed"],
                               "lambdas": [0.1, 0.5], "seeds": [0, 1]}]}


def test_shipped_profiles_validate():
    assert set(available_profiles()) >= {"smoke", "cpu", "paper"}
    for name in available_profiles():
        p = load_profile(name)
        assert p.cells and p.name == name


def test_paper_profile_covers_the_published_grid():
    p = load_profile("paper")
    cells = {(c.distance, c.model, c.lambda_target, c.protocol) for c in p.cells}
    for d in (126, 254, 510, 1022, 2046):
        assert {(d, "attn", 0.0, "faithful"), (d, "conv", 0.0, "faithful"),
                (d, "routed", 0.1, "faithful"), (d, "routed", 0.5, "faithful")} <= cells
    assert (126, "routed", 0.5, "faithful-constant") in cells and (62, "conv", 0.0, "faithful") in cells
    assert min(len({c.seed for c in p.cells if (c.distance, c.model) == (d, m)})
               for d, m, _, _ in cells) >= 3
    assert all(c.epoch_cap is None for c in p.cells)
    # the original model everywhere, except the control routers, which only swap the router
    assert all(c.faithful_model for c in p.cells if c.label != "controls")
    for c in p.cells:
        size = {k: v for k, v in c.model_overrides.items() if k not in ("router", "router_kwargs")}
        assert ModelConfig.from_dict(size) == ModelConfig()


def test_paper_profile_holds_the_audit_at_faithful_size():
    p = load_profile("paper")
    assert p.save_models  # the audit swaps the decisions of the kept weights
    for task in ("copy", "induction_heads", "mqar"):
        got = {(c.distance, c.model, c.lambda_target) for c in p.cells if c.task == task}
        assert got == {(d, m, lam) for d in (126, 254, 510) for m, lam in
                       (("attn", 0.0), ("conv", 0.0), ("routed", 0.1), ("routed", 0.5))} | (
            {(126, "routed", lam) for lam in (0.05, 0.2, 1.0)} if task == "mqar" else set())
    routers = {(c.task, c.model_config().router) for c in p.cells if c.label == "controls"}
    assert routers == {(t, r) for t in ("assoc_recall", "mqar") for r in ("last", "layer", "random")}
    sweep = {c.lambda_target for c in p.cells if c.task == "assoc_recall" and c.distance == 126
             and c.model == "routed" and c.protocol == "faithful" and c.label != "controls"}
    assert sweep == {0.05, 0.1, 0.2, 0.5, 1.0}


def test_cpu_profile_runs_the_headline_faithfully_and_states_its_cuts():
    p = load_profile("cpu")
    assert p.decides_claims and p.cuts and p.test_sequences >= 3000
    kinds = {(c.distance, c.model, c.lambda_target) for c in p.cells}
    assert kinds == {(126, "attn", 0.0), (126, "conv", 0.0), (126, "routed", 0.5)}
    assert all(c.faithful_model and c.protocol == "faithful" for c in p.cells)


def test_grid_expansion():
    p = parse_profile(BASE)
    # attn: 2 seeds; routed: 2 lambdas x 2 seeds
    assert len(p.cells) == 6
    assert {c.lambda_target for c in p.cells if c.model == "attn"} == {0.0}


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d.update(speed="fast"), "profile.speed: unknown key; allowed: cuts, decides_claims"),
    (lambda d: d["grid"][0].update(distance=[3]), "profile.grid[0].distance: unknown key; allowed:"),
    (lambda d: d["grid"][0].update(models=["gpt"]), "profile.grid[0].models[0]: Input should be 'attn', 'conv' or 'routed' (got 'gpt')"),
    (lambda d: d["grid"][0].update(distances=[1]), "profile.grid[0].task_params: distance: Input should be greater than or equal to 2"),
    (lambda d: d["grid"][0].update(lambdas=[-1]), "profile.grid[0].lambdas[0]: Input should be greater than or equal to 0"),
    (lambda d: d["grid"][0].update(models=["attn"]), "grid[0].lambdas: only routed models take a lambda"),
    (lambda d: d["grid"][0].update(protocol="quick"), "profile.grid[0].protocol: unknown protocol 'quick'; allowed: faithful"),
    (lambda d: d["grid"][0].update(seeds=[0, 0]), "duplicate cell"),
    (lambda d: d["grid"][0].update(seeds=[1.5]), "profile.grid[0].seeds[0]: Input should be a valid integer (got 1.5)"),
    (lambda d: d["grid"][0].update(epoch_cap=0), "profile.grid[0].epoch_cap: Input should be greater than or equal to 1"),
    (lambda d: d["grid"][0].update(model={"n_heads": 3}), "profile.grid[0].model: n_heads: must divide d_model"),
    (lambda d: d["grid"][0].update(task="sorting"), "profile.grid[0].task: Input should be 'assoc_recall', 'copy', 'induction_heads' or 'mqar' (got 'sorting')"),
    (lambda d: d.update(test_sequences=0), "profile.test_sequences: Input should be greater than or equal to 1"),
    (lambda d: d.pop("grid"), "profile.grid: missing (required)"),
    # each of these passed the old validators and crashed later, or escaped the results folder
    (lambda d: d.update(name="../../../escape"), "profile.name: String should match pattern"),
    (lambda d: d.update(name=".hidden"), "profile.name: String should match pattern"),
    (lambda d: d["grid"][0].update(seeds=[1e23]), "profile.grid[0].seeds[0]: Input should be a valid integer (got 1e+23)"),
    (lambda d: d["grid"][0].update(seeds=[2**63]), "profile.grid[0].seeds[0]: Input should be less than 2147483648"),
    (lambda d: d["grid"][0].update(seeds=[-1]), "profile.grid[0].seeds[0]: Input should be greater than or equal to 0"),
    (lambda d: d.update(test_sequences=10**9), "profile.test_sequences: Input should be less than or equal to 1000000"),
    (lambda d: d.update(test_sequences=1e3), "profile.test_sequences: Input should be a valid integer"),
    (lambda d: d["grid"][0].update(lambdas=[float("inf")]), "profile.grid[0].lambdas[0]: Input should be a finite number"),
    (lambda d: d["grid"][0].update(lambdas=[float("nan")]), "profile.grid[0].lambdas[0]: Input should be a finite number"),
    (lambda d: d["grid"][0].update(lambdas=[10.5]), "profile.grid[0].lambdas[0]: Input should be less than or equal to 10"),
    (lambda d: d["grid"][0].update(distances=[10**9]), "profile.grid[0].distances[0]: Input should be less than or equal to 16382"),
    (lambda d: d.update(decides_claims="false"), "profile.decides_claims: Input should be a valid boolean (got 'false')"),
    (lambda d: d.update(protocol=["faithful"]), "profile.protocol: Input should be a valid string"),
    (lambda d: d.update(model="big"), "profile.model: Input should be a valid dictionary (got 'big')"),
    (lambda d: d["grid"][0].update(task_params="x"), "profile.grid[0].task_params: Input should be a valid dictionary"),
    (lambda d: d["grid"][0].update(task_params={"seq_len": 3}), "profile.grid[0].task_params: seq_len: Input should be greater"),
    (lambda d: d["grid"][0].update(model={"d_model": 2.5}), "profile.grid[0].model: d_model: Input should be a valid integer"),
    (lambda d: d["grid"][0].update(model={"width": 3}), "profile.grid[0].model: width: not a model parameter"),
    (lambda d: d.update(cuts="none"), "profile.cuts: Input should be a valid list"),
    (lambda d: d.update(grid=[]), "profile.grid: List should have at least 1 item"),
    (lambda d: d["grid"][0].update(seeds=[]), "profile.grid[0].seeds: List should have at least 1 item"),
    (lambda d: d["grid"][0].pop("lambdas"), "profile.grid[0].lambdas: required when models include 'routed'"),
])
def test_bad_profiles_are_rejected_with_one_line(mutate, needle):
    data = copy.deepcopy(BASE)
    mutate(data)
    with pytest.raises(ConfigError) as e:
        parse_profile(data)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_unknown_profile_name_and_bad_json(tmp_path):
    with pytest.raises(ConfigError, match="profile: unknown 'laptop'"):
        load_profile("laptop")
    bad = tmp_path / "p.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_profile(str(bad))
    latin = tmp_path / "latin.json"
    latin.write_bytes(json.dumps({**BASE, "description": "caf\u00e9"}).encode().replace(b"\\u00e9", b"\xe9"))
    with pytest.raises(ConfigError, match=r"latin.json: not UTF-8 text \(byte \d+\)"):
        load_profile(str(latin))
    inf = tmp_path / "inf.json"
    inf.write_text(json.dumps(BASE).replace('"lambdas": [0.1, 0.5]', '"lambdas": [Infinity]'))
    assert "Infinity" in inf.read_text()
    with pytest.raises(ConfigError, match="non-finite number Infinity is not allowed"):
        load_profile(str(inf))
    good = tmp_path / "g.json"
    good.write_text(json.dumps(BASE))
    assert len(load_profile(str(good)).cells) == 6


def test_config_hash_changes_with_what_changes_the_result():
    cells = parse_profile(BASE).cells
    assert len({c.config_hash(3000) for c in cells}) == len(cells)
    assert cells[0].config_hash(3000) != cells[0].config_hash(1000)
