"""The decision rule: how per-seed numbers of IP and SP become a verdict (STUDY_SPEC section 5).

Every IP-vs-SP comparison is paired: the SP and IP runs of one seed share the initial
weights, data order and pruning data.  One *part* of a claim (a method, a sparsity, a
phase) is decided from its per-seed differences d = IP − SP:

* :class:`PairedDifferences` gives their mean, sample sd (ddof = 1), a Student-t
  confidence interval with n − 1 degrees of freedom (:func:`t_interval`), a percentile
  bootstrap interval for the mean from :data:`BOOTSTRAP_MIN_PAIRS` pairs on
  (:func:`bootstrap_interval`; printed beside the t interval, it never decides) and the
  two-sided t-test p-value (which only orders the parts for Holm).
* :func:`decide` labels the parts of one claim: *supported* if the part's own (1 − alpha)
  t interval lies on the claimed side of 0 (above 0 where higher is better, below 0 for a
  gap or a loss): an intersection–union test needs no adjustment for "every part holds";
  *not supported* if, under Holm–Bonferroni over the claim's parts (:func:`holm_levels`:
  the part with the k-th smallest p-value of m testable parts gets confidence
  1 − alpha/(m − k + 1)), its interval lies on the other side; *inconclusive* otherwise; a
  part with fewer than :data:`MIN_SEEDS` pairs is *not tested here*.  For each
  inconclusive part :func:`seeds_for_power` gives the number of seeds that would give 80 %
  power at the observed mean and sd (rough below :data:`ROUGH_BELOW` pairs).
* :func:`combine` gives the claim's verdict from its parts: supported if every part is,
  not supported if any part is, not tested here if no part could be tested, inconclusive
  otherwise.

:class:`Pairs` holds the seed pairs of one metric over some runs, with pairs that contain a
disconnected run left out and counted; :func:`compare_runs` turns them into a :class:`Comparison`
(IP and SP side summaries plus the paired differences) and
:func:`decide_family` applies :func:`decide` to the comparisons of one claim.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from . import tables as T

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
NOT_TESTED = "not tested here"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_TESTED)

#: fewer pairs than this leave no sd, so no interval: the part is not tested
MIN_SEEDS = 2
#: below this many pairs the seed-count advice is marked rough (the sd rests on very few pairs)
ROUGH_BELOW = 5
#: below this many pairs no bootstrap interval is given (it would be little more than the sample's range)
BOOTSTRAP_MIN_PAIRS = 10
#: family-wise error rate of a claim's parts when results/meta.json's params lack ``analysis.alpha``
DEFAULT_ALPHA = 0.05
#: the unadjusted interval printed for every difference (and in results/metrics.json)
CONFIDENCE = 0.95
#: the power the seed-count advice aims for
TARGET_POWER = 0.80
#: a fixed resampling stream, so the printed bootstrap interval does not change between runs of the report
BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 9999
#: the seed-count advice stops searching here (an effect this small is "not reachable")
MAX_SEEDS_SEARCHED = 100_000


def is_missing(value) -> bool:
    """True for NaN, None and anything that is not a number: such a value is never used as data."""
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def _clean(values: Iterable[float]) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and not is_missing(v)], dtype=float)


def alpha_of(meta: dict) -> float:
    """``analysis.alpha`` of the params snapshot in meta.json (:data:`DEFAULT_ALPHA` when absent)."""
    return float(T.meta_value(meta, "analysis.alpha", default=DEFAULT_ALPHA))


@dataclass(frozen=True)
class Stats:
    """Mean and sample sd (ddof = 1) of one side's per-seed values."""
    n: int
    mean: float
    sd: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Stats:
        arr = _clean(values)
        if arr.size == 0:
            return cls(0, math.nan, math.nan)
        return cls(int(arr.size), float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan)


# --------------------------------------------------------------------------- intervals of one sample of differences

def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Two-sided Student-t interval of the mean: mean ± t_{(1+c)/2, n−1} · sd/√n (NaN for n < 2)."""
    arr = _clean(values)
    if arr.size < MIN_SEEDS:
        return math.nan, math.nan
    standard_error = arr.std(ddof=1) / math.sqrt(arr.size)
    half_width = scipy_stats.t.ppf(0.5 + confidence / 2, arr.size - 1) * standard_error
    return float(arr.mean() - half_width), float(arr.mean() + half_width)


def bootstrap_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (one sample: the paired differences), fixed seed."""
    arr = _clean(values)
    if arr.size < MIN_SEEDS:
        return math.nan, math.nan
    if np.ptp(arr) == 0:        # every resample has the same mean
        return float(arr[0]), float(arr[0])
    res = scipy_stats.bootstrap((arr,), np.mean, confidence_level=confidence, method="percentile",
                                n_resamples=BOOTSTRAP_RESAMPLES, random_state=BOOTSTRAP_SEED, vectorized=True)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def t_p_value(values: Sequence[float]) -> float:
    """Two-sided one-sample t-test of the mean against 0; a difference without spread is exact (p 0 or 1)."""
    arr = _clean(values)
    if arr.size < MIN_SEEDS:
        return math.nan
    if np.ptp(arr) == 0:        # no spread: the sign of the (exact) difference is certain
        return 1.0 if arr[0] == 0 else 0.0
    t_stat = arr.mean() / (arr.std(ddof=1) / math.sqrt(arr.size))
    return float(2 * scipy_stats.t.sf(abs(t_stat), arr.size - 1))


def seeds_for_power(mean: float, sd: float, alpha: float, power: float = TARGET_POWER) -> int | None:
    """Smallest n ≥ 2 at which a two-sided paired t-test at level ``alpha`` has ``power`` if the true mean
    difference is ``mean`` with per-seed sd ``sd`` (noncentral t, noncentrality mean/sd·√n).

    None when no number of seeds helps: a zero observed mean, no spread to plan with, or more than
    :data:`MAX_SEEDS_SEARCHED` seeds needed.
    """
    if is_missing(mean) or is_missing(sd) or sd <= 0 or mean == 0:
        return None

    def achieved(n: int) -> float:
        dof, shift = n - 1, abs(mean) / sd * math.sqrt(n)
        critical = scipy_stats.t.ppf(1 - alpha / 2, dof)
        power_nct = float(scipy_stats.nct.sf(critical, dof, shift) + scipy_stats.nct.cdf(-critical, dof, shift))
        if math.isfinite(power_nct):
            return power_nct
        # scipy's noncentral t returns NaN far in its tail (large shift), where the normal limit is exact enough
        return float(scipy_stats.norm.sf(critical - shift) + scipy_stats.norm.cdf(-critical - shift))

    if achieved(MAX_SEEDS_SEARCHED) < power:
        return None
    low, high = 2, MAX_SEEDS_SEARCHED        # power grows with n: bisect for the first n that reaches it
    while low < high:
        mid = (low + high) // 2
        if achieved(mid) >= power:
            high = mid
        else:
            low = mid + 1
    return low


@dataclass(frozen=True)
class PairedDifferences:
    """The per-seed differences of one part (IP − SP, or high − low sparsity advantage) and what they show."""
    values: tuple
    higher_is_better: bool = True

    @classmethod
    def of(cls, values: Iterable[float], higher_is_better: bool = True) -> PairedDifferences:
        return cls(tuple(float(v) for v in _clean(values)), higher_is_better)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def sd(self) -> float:
        return float(np.std(self.values, ddof=1)) if self.n >= MIN_SEEDS else math.nan

    @cached_property
    def ci(self) -> tuple[float, float]:
        return t_interval(self.values, CONFIDENCE)

    @cached_property
    def bootstrap(self) -> tuple[float, float]:
        """The percentile bootstrap interval, only from :data:`BOOTSTRAP_MIN_PAIRS` pairs on (NaN below)."""
        if self.n < BOOTSTRAP_MIN_PAIRS:
            return math.nan, math.nan
        return bootstrap_interval(self.values, CONFIDENCE)

    @cached_property
    def p_value(self) -> float:
        return t_p_value(self.values)

    @property
    def testable(self) -> bool:
        return self.n >= MIN_SEEDS


# --------------------------------------------------------------------------- Holm over the parts of one claim

@dataclass(frozen=True)
class Decision:
    """The verdict of one part, and what it rests on: its own (1 − alpha) interval for the claimed
    side, the Holm-adjusted interval for the other side."""
    verdict: str
    reason: str = ""                       # why a part is not tested, or why Holm stopped before it
    holm_rank: int | None = None           # 1 = smallest p-value among the testable parts
    holm_m: int = 0                        # number of testable parts of the claim
    level: float = math.nan                # alpha/(m − k + 1): the adjusted interval has confidence 1 − level
    adjusted_ci: tuple = (math.nan, math.nan)
    seeds_needed: int | None = None        # for an inconclusive part: seeds for 80 % power at alpha
    alpha: float = math.nan                # the part's own interval has confidence 1 − alpha
    ci: tuple = (math.nan, math.nan)       # the part's own interval (claimed side: no adjustment)
    rough: bool = False                    # the seed-count advice rests on fewer than ROUGH_BELOW pairs


def holm_levels(p_values: Sequence[float], alpha: float) -> list[tuple[int, float]]:
    """(rank, alpha/(m − rank + 1)) per p-value, rank 1 = smallest; ties keep the input order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    m = len(p_values)
    out: list = [None] * m
    for k, i in enumerate(order, start=1):
        out[i] = (k, alpha / (m - k + 1))
    return out


def _side(interval: tuple[float, float], higher_is_better: bool) -> str:
    """SUPPORTED if ``interval`` lies on the claimed side of 0, NOT_SUPPORTED on the other, else INCONCLUSIVE."""
    low, high = interval
    if low > 0 or high < 0:
        above = low > 0
        return SUPPORTED if above == higher_is_better else NOT_SUPPORTED
    return INCONCLUSIVE


def _holm(parts: Sequence[PairedDifferences], testable: list[int], alpha: float) -> dict[int, tuple]:
    """Holm's step-down over the testable parts (two-sided paired t-tests, smallest p-value first):
    per part (side of 0 of its adjusted interval, or INCONCLUSIVE once Holm stopped; rank; level;
    adjusted interval; whether Holm had stopped before it)."""
    ranks = dict(zip(testable, holm_levels([parts[i].p_value for i in testable], alpha)))
    out, stopped = {}, False
    for i in sorted(testable, key=lambda j: ranks[j][0]):
        rank, level = ranks[i]
        interval = t_interval(parts[i].values, 1 - level)
        side = INCONCLUSIVE if stopped else _side(interval, parts[i].higher_is_better)
        out[i] = (side, rank, level, interval, stopped)
        stopped = stopped or side == INCONCLUSIVE
    return out


def decide(parts: Sequence[PairedDifferences], alpha: float) -> list[Decision]:
    """Verdicts of the parts of one claim that holds only if every part holds (STUDY_SPEC section 5).

    - **supported**: the part's own two-sided (1 − alpha) t interval lies on the claimed side of 0.
      The claim is then an intersection–union test (Berger 1982): it is supported only if every
      part is, and is wrong only if some part is wrong, each with probability ≤ alpha, so no
      multiplicity adjustment is needed;
    - **not supported**: the part is shown to go the other way, a statement about one of several
      parts, so it takes Holm's step-down over the m testable parts (ordered by two-sided p-value):
      its interval at confidence 1 − alpha/(m − k + 1), reached before Holm stopped, lies on the
      other side of 0;
    - **inconclusive** otherwise (with the seeds that would give 80 % power at alpha, ``rough`` below
      :data:`ROUGH_BELOW` pairs); **not tested here** below :data:`MIN_SEEDS` pairs.
    """
    testable = [i for i, p in enumerate(parts) if p.testable]
    holm = _holm(parts, testable, alpha)
    decisions: dict[int, Decision] = {}
    for i in testable:
        part = parts[i]
        holm_side, rank, level, adjusted, stopped = holm[i]
        own = t_interval(part.values, 1 - alpha)
        if _side(own, part.higher_is_better) == SUPPORTED:
            verdict, reason = SUPPORTED, ""
        elif holm_side == NOT_SUPPORTED:
            verdict, reason = NOT_SUPPORTED, ""
        else:
            verdict = INCONCLUSIVE
            reason = ("on the other side of 0 at 1 − alpha, not after Holm's adjustment"
                      if _side(own, part.higher_is_better) == NOT_SUPPORTED else "")
            if stopped and reason:
                reason += " (Holm stopped at a part with a smaller p-value)"
        needed = seeds_for_power(part.mean, part.sd, alpha) if verdict == INCONCLUSIVE else None
        decisions[i] = Decision(verdict, reason, rank, len(testable), level, adjusted, needed, alpha, own,
                                part.n < ROUGH_BELOW)
    for i, part in enumerate(parts):
        if i not in decisions:
            why = "no pairs" if part.n == 0 else f"{part.n} pair(s), fewer than {MIN_SEEDS}"
            decisions[i] = Decision(NOT_TESTED, why)
    return [decisions[i] for i in range(len(parts))]


def combine(verdicts: Iterable[str]) -> str:
    """A claim's verdict from its parts' verdicts."""
    verdicts = list(verdicts)
    if not verdicts or all(v == NOT_TESTED for v in verdicts):
        return NOT_TESTED
    if any(v == NOT_SUPPORTED for v in verdicts):
        return NOT_SUPPORTED
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return INCONCLUSIVE


# --------------------------------------------------------------------------- comparisons of runs

@dataclass(frozen=True)
class Comparison:
    """``a`` (IP, IP_eq, or the high-sparsity advantage) against ``b`` (SP, ...) over paired seeds."""
    metric: str
    a_label: str
    b_label: str
    a: Stats
    b: Stats
    diff: PairedDifferences
    excluded_disconnected: int = 0
    decision: Decision | None = None

    @property
    def higher_is_better(self) -> bool:
        return self.diff.higher_is_better

    @property
    def verdict(self) -> str:
        if self.decision is None:
            raise ValueError("a comparison gets its verdict from decide_family (Holm over the claim's parts)")
        return self.decision.verdict

    def as_numbers(self, prefix: str = "") -> dict:
        a, b, d = self.a_label, self.b_label, self.diff
        out = {f"{prefix}{a}_mean": self.a.mean, f"{prefix}{a}_n": self.a.n,
               f"{prefix}{b}_mean": self.b.mean, f"{prefix}{b}_n": self.b.n,
               f"{prefix}diff_mean": d.mean, f"{prefix}diff_sd": d.sd, f"{prefix}n_pairs": d.n,
               f"{prefix}ci_low": d.ci[0], f"{prefix}ci_high": d.ci[1],
               f"{prefix}bootstrap_low": d.bootstrap[0], f"{prefix}bootstrap_high": d.bootstrap[1],
               f"{prefix}excluded_disconnected": self.excluded_disconnected}
        if self.decision is not None:
            out.update({f"{prefix}holm_level": self.decision.level,
                        f"{prefix}adjusted_ci_low": self.decision.adjusted_ci[0],
                        f"{prefix}adjusted_ci_high": self.decision.adjusted_ci[1],
                        f"{prefix}seeds_needed": self.decision.seeds_needed})
        return out


def compare(a_values, b_values, diffs, *, metric: str = "", a_label: str = "ip", b_label: str = "sp",
            higher_is_better: bool = True, excluded_disconnected: int = 0) -> Comparison:
    """An undecided comparison from the two sides' values and the paired differences a − b."""
    return Comparison(metric, a_label, b_label, Stats.of(a_values), Stats.of(b_values),
                      PairedDifferences.of(diffs, higher_is_better), excluded_disconnected)


@dataclass(frozen=True, eq=False)
class Pairs:
    """The seed pairs of ``metric``, ``against`` (IP or IP_eq) vs ``base`` (SP; IP_eq for what the FB
    entries buy), over some runs (:func:`analysis.tables.paired`): the pairs in which both runs are
    connected, and how many pairs were left out because one is not (STUDY_SPEC section 5)."""
    metric: str
    against: str
    base: str
    connected: pd.DataFrame
    excluded_disconnected: int = 0
    missing: tuple = ()          # of ``base`` and ``against``, the representations without any run

    @classmethod
    def of(cls, runs: pd.DataFrame, metric: str, keys: Sequence[str] | None = None, against: str = "ip",
           base: str = "sp") -> Pairs:
        pairs = T.paired(runs, metric, keys=keys, against=against, base=base)
        flagged = pairs["disconnected"].astype(bool)
        have = set(runs["repr"].dropna().unique()) if "repr" in runs else set()
        return cls(metric, against, base, pairs[~flagged], int(flagged.sum()),
                   tuple(r for r in (base, against) if r not in have))

    def values(self, rep: str) -> pd.Series:
        """``rep``'s side (``against`` or ``base``) of the connected pairs."""
        return self.connected[f"{self.metric}_{rep}"]

    @property
    def diffs(self) -> pd.Series:
        return self.connected["diff"]

    def comparison(self, higher_is_better: bool = True) -> Comparison:
        """The undecided comparison of the connected pairs (the left-out pairs counted)."""
        return compare(self.values(self.against), self.values(self.base), self.diffs, metric=self.metric,
                       a_label=self.against, b_label=self.base, higher_is_better=higher_is_better,
                       excluded_disconnected=self.excluded_disconnected)


def compare_runs(runs: pd.DataFrame, metric: str, higher_is_better: bool = True,
                 keys: Sequence[str] | None = None, against: str = "ip", base: str = "sp") -> Comparison:
    """``against`` vs ``base`` on ``metric`` over ``runs`` (:class:`Pairs`): pairs with a disconnected run are
    left out of both sides and counted."""
    return Pairs.of(runs, metric, keys, against, base).comparison(higher_is_better)


def decide_family(comparisons: Sequence[Comparison], alpha: float) -> list[Comparison]:
    """The comparisons of one claim's parts with their Holm-adjusted decisions (:func:`decide`)."""
    decisions = decide([c.diff for c in comparisons], alpha)
    return [replace(c, decision=d) for c, d in zip(comparisons, decisions)]
