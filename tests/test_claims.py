import json

import pandas as pd
import pytest

from suite.judge.claims import Check, check_claims, load_registry
from suite.judge.published import key, load_published, text
from suite.report.run_md import main_table, report_markdown
from suite.errors import ConfigError

CPU = {"name": "cpu", "decides_claims": True}


def rows(model, accs, usage=1.0, lam=0.0, distance=126, n=3000, protocol="faithful", faithful=True, **extra):
    out = []
    for seed, a in enumerate(accs):
        u = usage[seed] if isinstance(usage, list) else usage
        out.append({"config_hash": f"{model}-{lam}-{distance}-{protocol}-{faithful}-{seed}", "status": "ok",
                    "task": "assoc_recall", "distance": distance, "model": model, "lambda_target": lam,
                    "protocol": protocol, "seed": seed, "faithful_model": faithful, "accuracy": a,
                    "test_correct": a * n, "test_total": n, "usage": u, "epoch_cap": None, **extra})
    return pd.DataFrame(out)


def verdicts(runs, profile=CPU):
    df = check_claims(runs, profile, load_registry())
    return df.set_index("claim_id")


def test_registry_has_every_claim_of_the_spec():
    ids = {c.id for c in load_registry()}
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
    threshold = 0.98 if comparator == ">=" else 0.05 if comparator == "<=" else 0.8
    check = Check(metric="accuracy", comparator=comparator, threshold=threshold,
                  tolerance=0.05 if comparator == "within" else None)
    assert check.decide(mean, low, high) == verdict


GOOD_CLAIM = {"id": "x", "source": "T1", "claim": "c", "published": "1%",
              "select": {"task": "assoc_recall", "distance": 126, "model": "conv", "protocol": "faithful"},
              "checks": [{"metric": "accuracy", "comparator": "<=", "threshold": 0.05}], "profiles": ["cpu"]}


def with_check(**change):
    return {**GOOD_CLAIM, "checks": [{**GOOD_CLAIM["checks"][0], **change}]}


def drop(d, key):
    return {k: v for k, v in d.items() if k != key}


@pytest.mark.parametrize("claims,message", [
    ([with_check(comparator="~=")], r"^claim x\.checks\[0\]\.comparator: Input should be '>=', '<=' or 'within'"),
    ([{**GOOD_CLAIM, "checks": [drop(GOOD_CLAIM["checks"][0], "threshold")]}],
     r"^claim x\.checks\[0\]\.threshold: missing \(required\)$"),
    ([{**GOOD_CLAIM, "checks": [drop(GOOD_CLAIM["checks"][0], "metric")]}], r"^claim x\.checks\[0\]\.metric: missing"),
    ([{**GOOD_CLAIM, "checks": []}], r"^claim x\.checks: List should have at least 1 item"),
    ([], r"^claims file\.claims: List should have at least 1 item"),
    (["T1-attn-126"], r"^claims\[0\]: Input should be a valid dictionary"),
    ([with_check(comparator="within")], r"^claim x\.checks\[0\]: comparator 'within' needs a tolerance"),
    ([with_check(extra=1)], r"^claim x\.checks\[0\]\.extra: unknown key"),
    ([{**GOOD_CLAIM, "seeds": 3}], r"^claim x\.seeds: unknown key"),
    ([{**GOOD_CLAIM, "select": {**GOOD_CLAIM["select"], "distanse": 126}}], r"^claim x\.select\.distanse: unknown key"),
    ([GOOD_CLAIM, GOOD_CLAIM], r"^claim x: duplicate id \(claims\[1\]\)$"),
    ([with_check(metric="accurracy")], r"^claim x\.checks\[0\]\.metric: unknown metric 'accurracy'; did you mean 'accuracy'\?"),
    ([with_check(threshold="0.05")], r"^claim x\.checks\[0\]\.threshold: Input should be a valid number"),
    ([{**GOOD_CLAIM, "reading": "best"}], r"^claim x\.reading: Input should be 'typical' or 'achievable'"),
    ([{**GOOD_CLAIM, "reading": "achievable"}], r"^claim x\.reason: reading 'achievable' needs one"),
])
def test_bad_registry_is_one_line(tmp_path, claims, message):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"claims": claims}))
    with pytest.raises(ConfigError, match=message) as e:
        load_registry(p)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("content,message", [
    (b'{"claims": [', r"^claims file: '.*' is not valid JSON \(Expecting value at line 1 column 13\)$"),
    ('{"claims": [], "comment": "caf\u00e9"}'.encode("latin-1"), r"^claims file: '.*' is not UTF-8 text$"),
    (b'[]', r"^claims file: Input should be a valid dictionary"),
])
def test_unreadable_registry_is_one_line(tmp_path, content, message):
    p = tmp_path / "c.json"
    p.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_registry(p)


def test_duplicated_cells_are_refused_naming_the_row():
    three = rows("attn", [1.0, 0.999, 0.998])
    same_hash = pd.concat([three, three.iloc[[1]]], ignore_index=True)
    with pytest.raises(ConfigError, match=r"^runs.csv line 5: duplicate cell \(same config_hash as line 3\)"):
        verdicts(same_hash)
    same_seed = pd.concat([three, three.iloc[[0]].assign(config_hash="rerun")], ignore_index=True)
    with pytest.raises(ConfigError, match=r"^runs.csv line 5: duplicate cell \(same task, distance, model, lambda, "
                                          r"protocol and seed as line 2\)"):
        verdicts(same_seed)
    # the same seed in another tier, or a failed attempt beside the ok one, is not a duplicate
    mini = three.iloc[[0]].assign(config_hash="mini", faithful_model=False)
    failed = three.iloc[[0]].assign(config_hash="attempt", status="failed", accuracy=None)
    assert verdicts(pd.concat([three, mini], ignore_index=True)).loc["T1-attn-126", "verdict"] == "PASS"
    assert verdicts(pd.concat([three, failed.assign(config_hash=three["config_hash"][0])], ignore_index=True)) \
        .loc["T1-attn-126", "n_seeds"] == 3


def test_nan_in_a_checked_metric_is_refused_naming_row_and_claim():
    runs = rows("attn", [1.0, float("nan"), 0.998])
    with pytest.raises(ConfigError, match=r"^runs.csv line 3: accuracy is empty or NaN in an ok row \(claim T1-attn-126\)"):
        verdicts(runs)
    # a metric the run measured nowhere is 'not measured', not an error
    v = verdicts(rows("routed", [1.0, 1.0, 1.0], usage=[0.001] * 3, lam=0.5, savings_executed=float("nan")))
    assert v.loc["H-savings-126-executed", "verdict"] == "NOT-RUN"


def failed_seed(model, lam=0.0, seed=9, **extra):
    return rows(model, [0.0], lam=lam, **extra).assign(seed=seed, config_hash=f"failed-{model}-{seed}", status="failed",
                                                       error="RuntimeError: out of memory", accuracy=None, usage=None,
                                                       test_correct=None)


def test_failed_cells_never_count_and_keep_a_claim_from_passing():
    ok = rows("attn", [1.0, 0.999, 0.998])
    v = verdicts(pd.concat([ok, failed_seed("attn")], ignore_index=True)).loc["T1-attn-126"]
    assert v["verdict"] == "INCONCLUSIVE" and "1 failed cell(s)" in v["note"]
    assert v["n_seeds"] == 3 and "t over 3 seeds" in v["details"]
    # a FAIL stands: the failed seed cannot rescue the interval of the others
    v = verdicts(pd.concat([rows("conv", [0.3, 0.31, 0.29]), failed_seed("conv")], ignore_index=True)).loc["T1-conv-126"]
    assert v["verdict"] == "FAIL" and "1 failed cell(s)" in v["note"]
    # only failed seeds: nothing to judge, and the run did try
    v = verdicts(failed_seed("attn")).loc["T1-attn-126"]
    assert v["verdict"] == "INCONCLUSIVE" and v["note"] == "1 failed cell(s), no seed finished"


def test_intervals_are_clipped_to_the_metric_range():
    v = verdicts(rows("attn", [0.9858, 1.0, 0.9995])).loc["T1-attn-126"]
    assert v["high"] == 1.0 and "1.0000] t over 3 seeds" in v["details"]
    v = verdicts(rows("routed", [1.0, 1.0, 1.0], usage=[0.0, 0.1, 0.2], lam=0.5)).loc["H-savings-126-notional"]
    assert v["high"] == 1.0 and v["low"] < 0.9


def test_both_readings_with_the_seed_success_rate():
    v = verdicts(rows("routed", [1.0, 1.0, 1.0], usage=[0.0025, 0.2498, 0.2560], lam=0.5)).loc["T1-r05-126"]
    assert (v["reading"], v["typical"], v["achievable"], v["verdict"]) == ("typical", "INCONCLUSIVE", "PASS",
                                                                          "INCONCLUSIVE")
    assert v["achievable_seeds"] == "1/3"
    assert (round(v["seed_success_low"], 3), round(v["seed_success_high"], 3)) == (0.061, 0.792)
    v = verdicts(rows("routed", [1.0, 1.0, 1.0], usage=[0.25, 0.24, 0.26], lam=0.5)).loc["T1-r05-126"]
    assert (v["typical"], v["achievable"], v["achievable_seeds"]) == ("FAIL", "FAIL", "0/3")


def test_an_achievable_reading_decides_when_the_registry_says_so(tmp_path):
    claim = {**GOOD_CLAIM, "select": {**GOOD_CLAIM["select"], "model": "routed", "lambda_target": 0.5},
             "checks": [{"metric": "usage", "comparator": "<=", "threshold": 0.005}],
             "reading": "achievable", "reason": "the original ran one unseeded model"}
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"claims": [claim]}))
    runs = rows("routed", [1.0, 1.0, 1.0], usage=[0.0025, 0.2498, 0.2560], lam=0.5)
    v = check_claims(runs, CPU, load_registry(p)).set_index("claim_id").loc["x"]
    assert (v["typical"], v["achievable"], v["verdict"]) == ("INCONCLUSIVE", "PASS", "PASS")


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


def test_every_t1_claim_publishes_what_published_csv_says():
    published = load_published()
    t1 = [c for c in load_registry() if c.source.startswith("T1")]
    assert len(t1) == 20
    for c in t1:
        sel = c.select
        assert text(published[key(sel.distance, sel.model, sel.lambda_target)]) == c.published, c.id


def test_published_csv_is_checked_on_load(tmp_path):
    p = tmp_path / "published.csv"
    p.write_text("distance,model,lambda,accuracy,usage\n126,attn,,1.2,\n")
    with pytest.raises(ConfigError, match=r"^published.csv line 2\.accuracy: Input should be less than or equal to 1"):
        load_published(p)


def test_the_report_lists_failed_cells_and_both_readings():
    runs = pd.concat([rows("routed", [1.0, 1.0, 1.0], usage=[0.0025, 0.2498, 0.2560], lam=0.5),
                      failed_seed("routed", lam=0.5)], ignore_index=True)
    claims = check_claims(runs, CPU, load_registry())
    manifest = {"run_id": "r", "profile": {"name": "cpu", "description": "d", "test_sequences": 3000},
                "environment": {}, "status": "complete"}
    md = report_markdown(manifest, "plan", runs, claims)
    assert "## Failed cells" in md and "RuntimeError: out of memory" in md
    assert "PASS (1/3 seeds, 95% CI 6%-79%)" in md
    assert "## Failed cells" not in report_markdown(manifest, "plan", runs[runs["status"] == "ok"], claims)
    table = main_table(runs).set_index("distance")
    assert table.loc[126, "Routed lambda->0.5"].endswith("n=3, usage 0.2%-26% | pub. 100% (0.3%)")
