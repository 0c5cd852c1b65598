"""The faithful campaign's profiles (issue 23): every claim a CPU can reach (distance <= 510) has a
shipped profile, named by the claim as a decider, whose faithful cells cover every value the claim
selects; the motivation table uses the original's conv kernel."""
import itertools

import pytest

from baselines import ModelConfig
from suite.judge.registry import load_registry
from suite.run.profiles import load_profile

CPU_REACH = 510
CAMPAIGN = ("faithful-254", "faithful-510", "faithful-126-extra")


def reachable_claims():
    return [c for c in load_registry() if max(c.select.columns()["distance"]) <= CPU_REACH]


def covers(profile, claim) -> bool:
    """Some faithful-model cells of the profile match every value combination the claim selects
    (and, for a contrast, every combination its other side selects)."""
    return all(_covers(profile, s) for s in (claim.select, claim.against) if s is not None)


def _covers(profile, select) -> bool:
    cols = select.columns()
    cells = {(c.task, c.distance, c.model, c.protocol, c.lambda_target) for c in profile.cells
             if c.faithful_model}
    lams = cols.get("lambda_target", [None])
    for task, d, model, protocol, lam in itertools.product(cols["task"], cols["distance"], cols["model"],
                                                           cols["protocol"], lams):
        if not any(cell[:4] == (task, d, model, protocol) and (lam is None or cell[4] == lam) for cell in cells):
            return False
    return True


def test_the_registry_holds_28_claims_a_cpu_can_reach_and_4_curriculum_contrasts():
    reach = reachable_claims()
    assert len([c for c in reach if c.reading != "contrast"]) == 28
    assert sorted(c.id for c in reach if c.reading == "contrast") == [
        "T2-effect01-126", "T2-effect01-254", "T2-effect05-126", "T2-effect05-254"]


#: a real gap this test found (stop 20): these claims select 254 AND 510 in one run, and the checker
#: judges one run at a time, while the campaign runs each distance as its own profile. Strict: the
#: day a profile or a cross-run judgement covers them, this turns red and the mark must go.
SPANS_TWO_RUNS = {"H-savings-254-510-notional", "H-savings-254-510-executed", "H-savings-254-510-latency"}
#: the ramp (headline) against constant lambda (curriculum): two profiles, pooled by CLAIMS.md
CONTRASTS_TWO_RUNS = {"T2-effect05-126"}


def _param(c):
    marks = [pytest.mark.xfail(strict=True, reason="needs 254 and 510 in one run; the campaign has one "
                                                   "profile per distance")] if c.id in SPANS_TWO_RUNS else []
    if c.id in CONTRASTS_TWO_RUNS:
        marks = [pytest.mark.xfail(strict=True, reason="ramp in headline, constant lambda in curriculum: "
                                                       "decided over both runs by CLAIMS.md")]
    return pytest.param(c, id=c.id, marks=marks)


@pytest.mark.parametrize("claim", [_param(c) for c in reachable_claims()])
def test_a_cpu_reachable_claim_has_a_cpu_profile_that_can_decide_it(claim):
    deciders = [p for p in claim.profiles if p != "paper"]
    assert deciders, f"{claim.id}: only the GPU profile 'paper' decides it"
    assert any(covers(load_profile(p), claim) and load_profile(p).decides_claims for p in deciders), (
        f"{claim.id}: none of {deciders} has faithful cells for every value it selects")


@pytest.mark.parametrize("name", CAMPAIGN)
def test_a_campaign_profile_is_faithful_uncut_keeps_weights_and_runs_3_seeds(name):
    p = load_profile(name)
    assert p.decides_claims and p.save_models and not p.cuts
    assert all(c.faithful_model and c.epoch_cap is None for c in p.cells)
    assert {c.protocol for c in p.cells} <= {"faithful", "faithful-constant"}
    by_config = {}
    for c in p.cells:
        by_config.setdefault((c.distance, c.model, c.lambda_target, c.protocol), set()).add(c.seed)
    assert all(seeds == {0, 1, 2} for seeds in by_config.values())


def test_each_seeds_lambda_siblings_are_adjacent_in_plan_order():
    """Phase-1 checkpoints are not committed: a seed's lambda 0.1 and 0.5 cells run back to back."""
    for name in ("faithful-254", "faithful-510"):
        cells = [c for c in load_profile(name).cells if c.model == "routed" and c.protocol == "faithful"]
        for a, b in zip(cells[::2], cells[1::2]):
            assert (a.seed, a.lambda_target, b.seed, b.lambda_target) == (a.seed, 0.1, a.seed, 0.5)


def test_the_motivation_table_uses_the_originals_kernel_64_at_30_and_62():
    m = [c for c in load_profile("faithful-126-extra").cells if c.label == "M"]
    assert {(c.distance, c.model) for c in m} == {(d, k) for d in (30, 62) for k in ("attn", "conv")}
    assert all(c.model_config().kernel_size == ModelConfig().kernel_size == 64 for c in m)
