import json

import pandas as pd
import pytest

from suite.judge.claims import Check, check_claims, load_registry
from suite.errors import ConfigError

CPU = {"name": "cpu", "decides_claims": True}


def rows(model, accs, usage=1.0, lam=0.0, distance=126, n=3000, protocol="faithful", faithful=True, **extra):
    out = []
    for seed, a in enumerate(accs):
        u = usage[seed] if isinstance(usage, list) else usage
        out.append({"task": "assoc_recall", "distance": distance, "model": model, "lambda_target": lam,
                    "protocol": protocol, "seed": seed, "faithful_model": faithful, "accuracy": a,
                    "test_correct": round(a * n), "test_total": n, "usage": u, "epoch_cap": None, **extra})
    return pd.DataFrame(out)


def verdicts(runs, profile=CPU):
    df = check_claims(runs, profile, load_registry())
    return df.set_index("claim_id")


def test_registry_has_every_claim_of_the_spec():
    ids = {c["id"] for c in load_registry()}
    expected = ({f"T1-attn-{d}" for d in (126, 254, 510, 1022, 2046)} | {f"T1-conv-{d}" for d in (126, 254, 510, 1022, 2046)}
                | {f"T1-r0{x}-{d}" for x in (1, 5) for d in (126, 254, 510, 1022, 2046)}
                | {f"T2-const0{x}-{d}" for x in (1, 5) for d in (126, 254)} | {"M-conv-30", "M-conv-62"}
                | {f"H-savings-126-{r}" for r in ("notional", "executed", "latency")}
                | {f"H-savings-254-510-{r}" for r in ("notional", "executed", "latency")}
                | {f"T2-curr0{x}-{d}" for x in (1, 5) for d in (126, 254)})
    assert expected <= ids


def test_pass_with_three_agreeing_seeds():
    v = verdicts(rows("attn", [1.0, 0.999, 0.998]))
    assert v.loc["T1-attn-126", "verdict"] == "PASS"
    assert v.loc["T1-attn-126", "n_seeds"] == 3 and "t over 3 seeds" in v.loc["T1-attn-126", "details"]
    assert v.loc["T1-attn-126", "seed_success"] == "3/3 seeds accuracy >= 0.99"


def test_fail_when_the_interval_is_on_the_wrong_side():
    v = verdicts(pd.concat([rows("conv", [0.30]), rows("routed", [0.995, 0.997, 0.999], usage=[0.25, 0.24, 0.26], lam=0.5)]))
    assert v.loc["T1-conv-126", "verdict"] == "FAIL"
    assert "Wilson over 3000 test examples" in v.loc["T1-conv-126", "details"]
    # accuracy holds, usage does not: the claim fails
    assert v.loc["T1-r05-126", "verdict"] == "FAIL"
    assert v.loc["T1-r05-126", "seed_success"] == "3/3 seeds accuracy >= 0.99; 0/3 seeds meet every check"
    assert v.loc["H-savings-126-notional", "verdict"] == "FAIL"
    assert v.loc["H-savings-126-notional", "measured"] == pytest.approx(0.75)


def test_inconclusive_when_the_interval_straddles():
    # seeds disagree: the mean is above 0.98 but the t interval crosses it
    v = verdicts(rows("attn", [1.0, 1.0, 0.96]))
    assert v.loc["T1-attn-126", "verdict"] == "INCONCLUSIVE"
    assert v.loc["T1-attn-126", "low"] < 0.98 < v.loc["T1-attn-126", "high"]
    # one seed right at the threshold: Wilson over 3000 examples straddles it
    v = verdicts(rows("attn", [0.98]))
    assert v.loc["T1-attn-126", "verdict"] == "INCONCLUSIVE"


def test_not_run_and_missing_metrics():
    v = verdicts(rows("attn", [1.0]))
    assert v.loc["T1-conv-126", "verdict"] == "NOT-RUN" and v.loc["T1-attn-254", "verdict"] == "NOT-RUN"
    v = verdicts(rows("routed", [1.0, 1.0, 1.0], usage=[0.001, 0.002, 0.001], lam=0.5))
    assert v.loc["H-savings-126-notional", "verdict"] == "PASS"
    assert v.loc["H-savings-126-executed", "verdict"] == "NOT-RUN"
    assert "not measured" in v.loc["H-savings-126-executed", "note"]


def test_non_faithful_rows_and_non_deciding_profiles():
    assert verdicts(rows("attn", [1.0], faithful=False)).loc["T1-attn-126", "verdict"] == "NOT-RUN"
    v = verdicts(rows("attn", [1.0]), {"name": "smoke", "decides_claims": False})
    assert v.loc["T1-attn-126", "verdict"] == "INCONCLUSIVE" and "cannot decide" in v.loc["T1-attn-126", "note"]
    v = verdicts(rows("attn", [1.0], distance=254))
    assert v.loc["T1-attn-254", "verdict"] == "INCONCLUSIVE"  # cpu is not among its deciders


def test_constant_schedule_rows_only_feed_t2():
    v = verdicts(rows("routed", [0.01], usage=0.0, lam=0.5, protocol="faithful-constant"))
    assert v.loc["T2-const05-126", "verdict"] == "PASS" and v.loc["T1-r05-126", "verdict"] == "NOT-RUN"


@pytest.mark.parametrize("comparator,mean,low,high,verdict", [
    (">=", 0.99, 0.985, 0.995, "PASS"), (">=", 0.99, 0.97, 1.0, "INCONCLUSIVE"), (">=", 0.9, 0.8, 0.97, "FAIL"),
    ("<=", 0.01, 0.0, 0.02, "PASS"), ("<=", 0.04, 0.03, 0.06, "INCONCLUSIVE"), ("<=", 0.3, 0.25, 0.35, "FAIL"),
    ("within", 0.8, 0.78, 0.83, "PASS"), ("within", 0.8, 0.7, 0.83, "INCONCLUSIVE"), ("within", 0.5, 0.45, 0.55, "FAIL"),
])
def test_comparators(comparator, mean, low, high, verdict):
    assert Check("accuracy", comparator, 0.98 if comparator == ">=" else 0.05 if comparator == "<=" else 0.8,
                 0.05).decide(mean, low, high) == verdict


def test_bad_registry(tmp_path):
    doc = {"claims": [{"id": "x", "source": "T1", "claim": "c", "published": "1%", "select": {},
                       "checks": [{"metric": "accuracy", "comparator": "~=", "threshold": 0.1}], "profiles": []}]}
    p = tmp_path / "c.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="unknown comparator '~='"):
        load_registry(p)
    doc["claims"][0]["checks"][0].update(comparator=">=", extra=1)
    p.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="unknown key 'extra'"):
        load_registry(p)


def test_one_seed_decides_accuracy_but_not_usage():
    v = verdicts(rows("routed", [1.0], usage=0.001, lam=0.5))
    assert v.loc["T1-r05-126", "verdict"] == "INCONCLUSIVE"
    assert "fewer than 3" in v.loc["T1-r05-126", "note"]
    assert "accuracy >= 0.98: 1.0000" in v.loc["T1-r05-126", "details"] and "-> PASS" in v.loc["T1-r05-126", "details"]


def test_a_fail_caused_by_the_epoch_cap_is_inconclusive():
    capped = rows("routed", [0.5, 0.6, 0.4], usage=[0.3, 0.3, 0.3], lam=0.5, epoch_cap=10, epochs_phase1=10,
                  phase2_ran=False, val_accuracy=0.6)
    v = verdicts(capped.assign(epoch_cap=10))
    assert v.loc["T1-r05-126", "verdict"] == "INCONCLUSIVE" and "epoch cap" in v.loc["T1-r05-126", "note"]
    # the same numbers without a cap fail
    assert verdicts(capped.assign(epoch_cap=None)).loc["T1-r05-126", "verdict"] == "FAIL"
    # a capped baseline that stayed at chance still decides 'at chance', with the cut noted
    conv = rows("conv", [0.01], usage=0.0, epochs_phase1=10, phase2_ran=False, val_accuracy=0.02).assign(epoch_cap=10)
    v = verdicts(conv)
    assert v.loc["T1-conv-126", "verdict"] == "PASS" and "cut: epoch cap" in v.loc["T1-conv-126", "note"]


def test_a_claim_over_two_distances_needs_both():
    only_254 = rows("routed", [1.0, 1.0, 1.0], usage=[0.1, 0.1, 0.1], lam=0.1, distance=254)
    v = verdicts(only_254, {"name": "paper", "decides_claims": True})
    assert v.loc["H-savings-254-510-notional", "verdict"] == "INCONCLUSIVE"
    assert "distance=510" in v.loc["H-savings-254-510-notional", "note"]
    both = pd.concat([only_254, rows("routed", [1.0, 1.0, 1.0], usage=[0.1, 0.1, 0.1], lam=0.1, distance=510)])
    assert verdicts(both, {"name": "paper", "decides_claims": True}).loc["H-savings-254-510-notional", "verdict"] == "PASS"


def test_bimodal_usage_is_inconclusive_and_the_seed_count_says_why():
    v = verdicts(rows("routed", [1.0, 1.0, 1.0], usage=[0.0025, 0.2498, 0.2560], lam=0.5))
    assert v.loc["T1-r05-126", "verdict"] == "INCONCLUSIVE"
    assert v.loc["T1-r05-126", "seed_success"] == "3/3 seeds accuracy >= 0.99; 1/3 seeds meet every check"
