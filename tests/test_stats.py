"""The verdict rule on fixed numbers: the paired t interval, Holm's order and step-down, the power advice,
disconnected runs, and which sweep sparsities C2 and C7 compare."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from analysis import stats as S
from analysis import tables as T
from analysis import verdicts as V
from analysis.evidence import Evidence

DIFFS = [0.1, 0.3, 0.2, 0.5]


def scipy_interval(values, confidence):
    values = np.asarray(values, dtype=float)
    return scipy_stats.t.interval(confidence, values.size - 1, loc=values.mean(),
                                  scale=values.std(ddof=1) / math.sqrt(values.size))


def with_p_value(p: float, higher_is_better: bool = True, sign: float = 1.0) -> S.PairedDifferences:
    """Three differences with sd 1 whose two-sided one-sample t-test has p-value ``p``."""
    t_stat = scipy_stats.t.isf(p / 2, 2)
    mean = sign * t_stat / math.sqrt(3)
    return S.PairedDifferences.of([mean - 1, mean, mean + 1], higher_is_better)


# --------------------------------------------------------------------------- one part

@pytest.mark.parametrize("confidence", [0.95, 0.99, 1 - 0.05 / 3])
def test_t_interval_is_scipys_two_sided_student_t_with_n_minus_1_dof(confidence):
    assert S.t_interval(DIFFS, confidence) == pytest.approx(scipy_interval(DIFFS, confidence), rel=1e-12)
    # the numbers themselves: mean 0.275, sd 0.170782, t_{0.975, 3} = 3.182446
    assert S.t_interval(DIFFS) == pytest.approx((0.0032469116, 0.5467530884), abs=1e-9)


def test_interval_and_p_value_agree_and_need_two_pairs():
    d = S.PairedDifferences.of(DIFFS)
    assert d.p_value == pytest.approx(scipy_stats.ttest_1samp(DIFFS, 0.0).pvalue, rel=1e-12)
    # the (1 - p) interval touches 0: interval and test are one rule
    assert S.t_interval(DIFFS, 1 - d.p_value)[0] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(S.t_interval([0.3])[0]) and not S.PairedDifferences.of([0.3]).testable
    assert S.t_p_value([0.2, 0.2, 0.2]) == 0.0 and S.t_p_value([0.0, 0.0]) == 1.0


def test_bootstrap_interval_is_scipys_percentile_bootstrap_with_a_fixed_seed():
    expected = scipy_stats.bootstrap((np.asarray(DIFFS),), np.mean, confidence_level=0.95, method="percentile",
                                     n_resamples=S.BOOTSTRAP_RESAMPLES, random_state=S.BOOTSTRAP_SEED)
    got = S.bootstrap_interval(DIFFS)
    assert got == pytest.approx((expected.confidence_interval.low, expected.confidence_interval.high))
    assert got == S.bootstrap_interval(DIFFS)                 # the same numbers every time the report runs
    assert S.bootstrap_interval([0.2, 0.2, 0.2]) == (0.2, 0.2)


def test_seeds_for_power_is_the_smallest_n_reaching_80_percent():
    # effect size 1 (mean = sd), two-sided alpha 0.05: n = 10 has power 0.803, n = 9 has 0.75 (textbook values)
    assert S.seeds_for_power(1.0, 1.0, 0.05) == 10
    assert S.seeds_for_power(-0.5, 1.0, 0.05) == 34
    assert S.seeds_for_power(0.5, 1.0, 0.01) > 34             # a stricter level needs more seeds
    assert S.seeds_for_power(0.0, 1.0, 0.05) is None and S.seeds_for_power(1.0, 0.0, 0.05) is None


# --------------------------------------------------------------------------- Holm over a claim's parts

def test_holm_levels_follow_the_p_values():
    assert S.holm_levels([0.04, 0.001, 0.03], 0.05) == [(3, 0.05), (1, 0.05 / 3), (2, 0.025)]


def test_holm_takes_the_smallest_p_value_first():
    strong, weak = with_p_value(0.001), with_p_value(0.04)
    # the weak part (p 0.04) passes at alpha/1 = 0.05 only because the strong part was rejected first at 0.025
    decisions = S.decide([weak, strong], 0.05)
    assert [d.verdict for d in decisions] == [S.SUPPORTED, S.SUPPORTED]
    assert [d.holm_rank for d in decisions] == [2, 1]
    assert decisions[0].level == pytest.approx(0.05) and decisions[1].level == pytest.approx(0.025)
    assert decisions[1].adjusted_ci == pytest.approx(scipy_interval(strong.values, 0.975))


def test_every_part_on_the_claimed_side_at_95_percent_supports_the_claim_where_holm_would_not():
    """The intersection-union test: "every part holds" needs each part's own 95 % interval on the
    claimed side, no adjustment.  Holm would stop at the first part (0.03 > 0.05/2) and call both
    inconclusive."""
    first, second = with_p_value(0.03), with_p_value(0.04)
    decisions = S.decide([second, first], 0.05)
    assert [d.verdict for d in decisions] == [S.SUPPORTED, S.SUPPORTED]
    assert S.combine(d.verdict for d in decisions) == S.SUPPORTED
    # what Holm alone would have said: the adjusted interval of the smaller p-value includes 0
    assert decisions[1].holm_rank == 1 and decisions[1].adjusted_ci[0] < 0 < decisions[1].adjusted_ci[1]
    assert decisions[0].ci == pytest.approx(scipy_interval(second.values, 0.95)) and decisions[0].ci[0] > 0


def test_a_part_on_the_other_side_needs_holms_adjusted_interval():
    against, weak_against, other = with_p_value(0.001, sign=-1), with_p_value(0.04, sign=-1), with_p_value(0.5)
    # shown to go the other way after Holm (rank 1 of 3 at 0.05/3): not supported, and so is the claim
    decisions = S.decide([other, against], 0.05)
    assert [d.verdict for d in decisions] == [S.INCONCLUSIVE, S.NOT_SUPPORTED]
    assert decisions[1].adjusted_ci[1] < 0 and decisions[1].level == pytest.approx(0.025)
    assert S.combine(d.verdict for d in decisions) == S.NOT_SUPPORTED
    # on the other side at 95 % but not at Holm's 97.5 %: a statement about one of two parts stays inconclusive
    decisions = S.decide([other, weak_against], 0.05)
    assert decisions[1].ci[1] < 0 < decisions[1].adjusted_ci[1]
    assert decisions[1].verdict == S.INCONCLUSIVE and "not after Holm" in decisions[1].reason
    assert decisions[1].seeds_needed is not None and decisions[1].rough      # 3 pairs: rough advice


def test_bootstrap_interval_needs_ten_pairs():
    assert all(math.isnan(v) for v in S.PairedDifferences.of(DIFFS).bootstrap)
    ten = S.PairedDifferences.of([0.1 * i for i in range(10)])
    assert ten.bootstrap == pytest.approx(S.bootstrap_interval(ten.values))


def test_sides_of_zero_and_lower_is_better():
    assert S.decide([with_p_value(0.001, sign=-1)], 0.05)[0].verdict == S.NOT_SUPPORTED
    assert S.decide([with_p_value(0.001, higher_is_better=False, sign=-1)], 0.05)[0].verdict == S.SUPPORTED
    assert S.decide([with_p_value(0.001, higher_is_better=False)], 0.05)[0].verdict == S.NOT_SUPPORTED
    [one_pair] = S.decide([S.PairedDifferences.of([0.4])], 0.05)
    assert one_pair.verdict == S.NOT_TESTED and "fewer than 2" in one_pair.reason


def test_untestable_parts_do_not_count_in_holms_m():
    decisions = S.decide([S.PairedDifferences.of([]), with_p_value(0.04)], 0.05)
    assert decisions[1].holm_m == 1 and decisions[1].verdict == S.SUPPORTED


def test_combine():
    assert S.combine([S.SUPPORTED, S.SUPPORTED]) == S.SUPPORTED
    assert S.combine([S.SUPPORTED, S.INCONCLUSIVE]) == S.INCONCLUSIVE
    assert S.combine([S.SUPPORTED, S.NOT_SUPPORTED, S.INCONCLUSIVE]) == S.NOT_SUPPORTED
    assert S.combine([S.SUPPORTED, S.NOT_TESTED]) == S.INCONCLUSIVE
    assert S.combine([S.NOT_TESTED, S.NOT_TESTED]) == S.NOT_TESTED and S.combine([]) == S.NOT_TESTED


def test_alpha_comes_from_the_params_snapshot():
    assert S.alpha_of({}) == 0.05
    assert S.alpha_of({"params": {"analysis": {"alpha": 0.01}}}) == 0.01


# --------------------------------------------------------------------------- runs: disconnected pairs

def claim(cid: str, tables: T.Tables):
    return V.CLAIM_FUNCTIONS[cid](Evidence.from_tables(tables))


def run_rows(diffs, method="snip", sparsity=0.98, disconnected=(), base=0.5, column="test_acc", **extra):
    """SP/IP rows of one method, seed i with IP − SP = diffs[i]; seeds in ``disconnected``: IP run disconnected."""
    rows = []
    for seed, d in enumerate(diffs):
        rows.append({"experiment": "main", "method": method, "repr": "sp", "seed": seed, "sparsity": sparsity,
                     column: base + 0.01 * seed, "disconnected": False, **extra})
        rows.append({"experiment": "main", "method": method, "repr": "ip", "seed": seed, "sparsity": sparsity,
                     column: base + 0.01 * seed + d, "disconnected": seed in disconnected, **extra})
    return rows


def test_a_disconnected_pair_is_left_out_and_counted():
    runs = T.normalise_table("summary", pd.DataFrame(run_rows([0.05, 0.06, 0.055, -0.4], disconnected={3})))
    c = S.compare_runs(runs, "test_acc")
    assert c.excluded_disconnected == 1 and c.diff.n == 3 and c.a.n == 3 and c.b.n == 3
    assert c.diff.mean == pytest.approx(0.055)
    t = T.Tables.from_frames(summary=runs, meta={"sparsity": 0.98})
    c1 = claim("C1", t)
    assert c1.verdict == S.SUPPORTED and "1 pair excluded: disconnected" in c1.parts[0].note
    # the same runs without the flag: the chance-level pair makes it inconclusive
    connected = runs.assign(disconnected=False)
    assert claim("C1", T.Tables.from_frames(summary=connected, meta={"sparsity": 0.98})).verdict \
        == S.INCONCLUSIVE


def test_results_without_the_column_are_connected():
    runs = pd.DataFrame(run_rows([0.05, 0.06, 0.055])).drop(columns="disconnected")
    pairs = T.paired(runs, "test_acc")
    assert not pairs["disconnected"].any() and len(pairs) == 3


# --------------------------------------------------------------------------- which sparsities C2 and C7 compare

def sweep_frame(advantage_by_sparsity: dict, column="test_acc", spread=(0.0, 0.004, -0.004)) -> pd.DataFrame:
    rows = []
    for s, adv in advantage_by_sparsity.items():
        rows += run_rows([adv + e for e in spread], method="snip", sparsity=s, column=column)
    return T.normalise_table("sweep", pd.DataFrame(rows).assign(experiment="sweep"))


def test_c2_compares_the_highest_with_the_lowest_sweep_sparsity():
    # written out of order; the middle sparsity has the largest advantage, the highest a larger one than the lowest
    sweep = sweep_frame({0.9: 0.10, 0.99: 0.05, 0.5: 0.01})
    result = claim("C2", T.Tables.from_frames(sweep=sweep))
    assert result.numbers["snip.sparsity_high"] == 0.99 and result.numbers["snip.sparsity_low"] == 0.5
    assert result.numbers["snip.change_mean"] == pytest.approx(0.04)
    assert result.verdict == S.SUPPORTED
    shrinking = sweep_frame({0.9: 0.10, 0.99: 0.01, 0.5: 0.05})
    assert claim("C2", T.Tables.from_frames(sweep=shrinking)).verdict == S.NOT_SUPPORTED


def test_c7_takes_the_lowest_sweep_sparsity():
    # IP's gap (train − test) is smaller only at the lowest sparsity, 0.8
    sweep = sweep_frame({0.95: 0.03, 0.8: -0.03, 0.99: 0.04}, column="gap_acc")
    result = claim("C7", T.Tables.from_frames(sweep=sweep))
    assert result.numbers["sparsity"] == 0.8
    assert result.verdict == S.SUPPORTED
    assert result.numbers["snip.diff_mean"] == pytest.approx(-0.03)
