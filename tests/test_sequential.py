"""The typical reading's test on seed success: its error rates by simulation (seeds added one at a
time up to the largest budget), and the cases claims.md names."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from suite.judge.sequential import ALPHA, MAX_SEEDS, achievable, e_values, more_to_decide, seed_test

REPLICATES = 20_000


def _log_e(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised through the module's own scalar function: a table over every (k, n) reachable."""
    table_pass = np.full((MAX_SEEDS + 1, MAX_SEEDS + 1), -np.inf)
    table_fail = table_pass.copy()
    for nn in range(1, MAX_SEEDS + 1):
        for kk in range(nn + 1):
            ep, ef = e_values(kk, nn)
            table_pass[kk, nn], table_fail[kk, nn] = math.log(ep), math.log(ef)
    return table_pass[k, n], table_fail[k, n]


def simulate(p: float, seed: int = 0):
    """(share PASS, share FAIL, median seeds to a verdict) over REPLICATES sequences of MAX_SEEDS seeds,
    each stopped at its first crossing, the same rule as seed_test."""
    rng = np.random.default_rng(seed)
    k = np.cumsum(rng.random((REPLICATES, MAX_SEEDS)) < p, axis=1)
    n = np.broadcast_to(np.arange(1, MAX_SEEDS + 1), k.shape)
    lp, lf = _log_e(k, n)
    bound = math.log(1.0 / ALPHA)
    never = MAX_SEEDS + 1
    first_pass = np.where((lp >= bound).any(1), (lp >= bound).argmax(1), never)
    first_fail = np.where((lf >= bound).any(1), (lf >= bound).argmax(1), never)
    stop = np.minimum(first_pass, first_fail)
    decided = stop < never
    return (float((first_pass < first_fail).mean()), float((first_fail < first_pass).mean()),
            float(np.median(stop[decided] + 1)) if decided.any() else math.inf)


def _upper(share: float) -> float:
    return float(stats.binomtest(round(share * REPLICATES), REPLICATES).proportion_ci(0.95, "exact").high)


def test_error_rates_at_one_half_stay_below_alpha_with_seeds_added_one_at_a_time():
    false_pass, false_fail, _ = simulate(0.5)
    assert false_pass <= ALPHA and false_fail <= ALPHA
    assert _upper(false_pass) < 0.055 and _upper(false_fail) < 0.055
    print(f"p=0.5 over {MAX_SEEDS} seeds: false PASS {false_pass:.4f}, false FAIL {false_fail:.4f}")


@pytest.mark.parametrize("p, verdict_share", [(0.9, 0), (0.1, 1)])
def test_clear_rates_decide_within_a_few_seeds(p, verdict_share):
    shares = simulate(p, seed=1)
    median = shares[2]
    assert shares[verdict_share] >= 0.99 and median <= 8, shares
    print(f"p={p}: median seeds to a verdict {median:g}")


def test_the_cases_claims_md_names():
    assert seed_test([True] * 6).verdict == "PASS" and seed_test([False] * 6).verdict == "FAIL"
    assert seed_test([True] * 3).verdict == "INCONCLUSIVE" and seed_test([False] * 3).verdict == "INCONCLUSIVE"
    for where in range(16):                               # 15 of 16, the one failure anywhere
        assert seed_test([i != where for i in range(16)]).verdict == "PASS"
    for wins in ([0], [3], [0, 1], [5, 11], [14, 15]):     # 1 or 2 of 16
        assert seed_test([i in wins for i in range(16)]).verdict == "FAIL"
    assert seed_test([]).verdict == "INCONCLUSIVE"


def test_five_of_six_is_not_enough_and_says_how_many_more_would_decide():
    t = seed_test([True, True, False, True, True, True])
    assert (t.verdict, t.n, t.successes, t.decided_at) == ("INCONCLUSIVE", 6, 5, None)
    assert t.more_to_pass == more_to_decide(5, 6, "PASS") and seed_test([True, True, False] + [True] * (3 + t.more_to_pass)).verdict == "PASS"
    assert seed_test([True, True, False] + [True] * (2 + t.more_to_pass)).verdict == "INCONCLUSIVE"
    assert "more succeeding seeds would PASS it" in t.more()
    three = seed_test([True] * 3)
    assert three.more_to_pass == 3 and three.more() .startswith("3 more succeeding seeds")


def test_it_stops_at_the_first_crossing_and_says_why():
    t = seed_test([True] * 6 + [False] * 10)
    assert (t.verdict, t.decided_at, t.decided_successes, t.successes, t.n) == ("PASS", 6, 6, 6, 16)
    assert t.stopped() == "PASS at seed 6 of 16 (6 of the first 6 succeeded)" and t.more() == ""


def test_the_evidence_is_symmetric_and_refuses_impossible_counts():
    assert e_values(2, 9) == pytest.approx(e_values(7, 9)[::-1])
    with pytest.raises(ValueError, match="successes: 4 is not within 0..3"):
        e_values(4, 3)
    with pytest.raises(ValueError, match="alpha"):
        seed_test([True], alpha=1.5)


def test_achievable_is_a_rate_with_its_exact_interval():
    assert achievable(1, 8) == "1 of 8 seeds, exact 95% interval 0%-53%"
    assert achievable(3, 3) == "3 of 3 seeds, exact 95% interval 29%-100%"
    assert achievable(0, 0) == ""
