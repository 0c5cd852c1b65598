import copy
import json

import pytest

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
    assert all(c.faithful_model and c.epoch_cap is None for c in p.cells)


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
    (lambda d: d.update(speed="fast"), "profile: unknown key 'speed'"),
    (lambda d: d["grid"][0].update(distance=[3]), "grid[0]: unknown key 'distance'"),
    (lambda d: d["grid"][0].update(models=["gpt"]), "grid[0].models: unknown 'gpt'"),
    (lambda d: d["grid"][0].update(distances=[1]), "distance: must be >= 2"),
    (lambda d: d["grid"][0].update(lambdas=[-1]), "grid[0].lambdas: must be >= 0"),
    (lambda d: d["grid"][0].update(models=["attn"]), "grid[0].lambdas: only routed models take a lambda"),
    (lambda d: d["grid"][0].update(protocol="quick"), "protocol: unknown 'quick'"),
    (lambda d: d["grid"][0].update(seeds=[0, 0]), "duplicate cell"),
    (lambda d: d["grid"][0].update(seeds=[1.5]), "grid[0].seeds"),
    (lambda d: d["grid"][0].update(epoch_cap=0), "epoch_cap"),
    (lambda d: d["grid"][0].update(model={"n_heads": 3}), "n_heads: must divide d_model"),
    (lambda d: d["grid"][0].update(task="sorting"), "task: unknown 'sorting'"),
    (lambda d: d.update(test_sequences=0), "test_sequences"),
    (lambda d: d.pop("grid"), "profile: missing key 'grid'"),
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
    good = tmp_path / "g.json"
    good.write_text(json.dumps(BASE))
    assert len(load_profile(str(good)).cells) == 6


def test_config_hash_changes_with_what_changes_the_result():
    cells = parse_profile(BASE).cells
    assert len({c.config_hash(3000) for c in cells}) == len(cells)
    assert cells[0].config_hash(3000) != cells[0].config_hash(1000)
