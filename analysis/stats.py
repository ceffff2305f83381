"""The decision rule: how per-seed numbers of IP and SP become a verdict.

One rule decides every IP-vs-SP comparison over seeds (:func:`compare`):

* per-seed values of IP and of SP give mean and sample sd (ddof = 1);
* **IP better** if ``mean_IP - sd_IP > mean_SP + sd_SP`` (the +-1 sd intervals do not
  overlap), **SP better** if ``mean_SP - sd_SP > mean_IP + sd_IP``; otherwise the result
  is **inconclusive**; with fewer than 2 seeds on either side it is inconclusive too.
  For a metric where lower is better (generalisation gap) the roles of the bounds swap.
* the paired difference IP - SP (same method, seed, ...) is reported as mean +- sd with a
  paired t-test p-value (scipy) as extra information; it does not change the verdict.

Per part (a method, a phase): IP better -> supported, SP better -> not supported,
otherwise inconclusive; no data -> not tested here.  Parts are combined by
:func:`combine`: supported only if every part is supported, not supported if any part
is, not tested here if no part was tested, inconclusive otherwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
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

#: fewer seeds than this on either side make a comparison inconclusive
MIN_SEEDS = 2


def is_missing(value) -> bool:
    """True for NaN, None and anything that is not a number: such a value is never used as data."""
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


@dataclass(frozen=True)
class Stats:
    n: int
    mean: float
    sd: float

    @classmethod
    def of(cls, values: Iterable[float]) -> "Stats":
        arr = np.asarray([v for v in values if v is not None and not is_missing(v)], dtype=float)
        if arr.size == 0:
            return cls(0, math.nan, math.nan)
        return cls(int(arr.size), float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan)


@dataclass(frozen=True)
class Comparison:
    """Outcome of the rule for ``a`` (IP, or the high-sparsity advantage) against ``b`` (SP, ...)."""
    metric: str
    a_label: str
    b_label: str
    a: Stats
    b: Stats
    diff: Stats            # paired a - b
    p_value: float         # paired t-test of the differences (NaN if not computable)
    higher_is_better: bool
    outcome: str           # "a_better" | "b_better" | "overlap" | "too_few_seeds" | "missing"

    @property
    def verdict(self) -> str:
        return {"a_better": SUPPORTED, "b_better": NOT_SUPPORTED, "overlap": INCONCLUSIVE,
                "too_few_seeds": INCONCLUSIVE, "missing": NOT_TESTED}[self.outcome]

    def as_numbers(self, prefix: str = "") -> dict:
        a, b = self.a_label, self.b_label
        return {f"{prefix}{a}_mean": self.a.mean, f"{prefix}{a}_sd": self.a.sd, f"{prefix}{a}_n": self.a.n,
                f"{prefix}{b}_mean": self.b.mean, f"{prefix}{b}_sd": self.b.sd, f"{prefix}{b}_n": self.b.n,
                f"{prefix}diff_mean": self.diff.mean, f"{prefix}diff_sd": self.diff.sd,
                f"{prefix}n_pairs": self.diff.n, f"{prefix}p_value": self.p_value}


def rule(a: Stats, b: Stats, higher_is_better: bool = True) -> str:
    """The non-overlap rule (module docstring): 'a_better', 'b_better', 'overlap', 'too_few_seeds' or 'missing'."""
    if a.n == 0 or b.n == 0:
        return "missing"
    if a.n < MIN_SEEDS or b.n < MIN_SEEDS:
        return "too_few_seeds"
    sign = 1.0 if higher_is_better else -1.0
    a_lo, a_hi = sorted((sign * a.mean - a.sd, sign * a.mean + a.sd))
    b_lo, b_hi = sorted((sign * b.mean - b.sd, sign * b.mean + b.sd))
    if a_lo > b_hi:
        return "a_better"
    if b_lo > a_hi:
        return "b_better"
    return "overlap"


def paired_p_value(diffs: Sequence[float]) -> float:
    """Two-sided paired t-test of the differences against 0 (NaN for < 2 pairs or zero spread)."""
    arr = np.asarray([d for d in diffs if not is_missing(d)], dtype=float)
    if arr.size < 2 or np.allclose(arr, arr[0]):
        return math.nan
    return float(scipy_stats.ttest_1samp(arr, 0.0).pvalue)


def compare(a_values, b_values, diffs=(), *, metric: str = "", a_label: str = "ip", b_label: str = "sp",
            higher_is_better: bool = True) -> Comparison:
    a, b = Stats.of(a_values), Stats.of(b_values)
    diff = Stats.of(diffs)
    return Comparison(metric, a_label, b_label, a, b, diff, paired_p_value(diffs), higher_is_better,
                      rule(a, b, higher_is_better))


def compare_runs(runs: pd.DataFrame, metric: str, higher_is_better: bool = True,
                 keys: Sequence[str] | None = None) -> Comparison:
    """IP vs SP on ``metric`` over the runs in ``runs`` (one method, one sparsity, ...)."""
    ip = runs.loc[runs["repr"] == "ip", metric] if metric in runs else []
    sp = runs.loc[runs["repr"] == "sp", metric] if metric in runs else []
    pairs = T.paired(runs, metric, keys=keys) if len(runs) else pd.DataFrame(columns=["diff"])
    return compare(ip, sp, pairs["diff"], metric=metric, higher_is_better=higher_is_better)


def combine(verdicts: Iterable[str]) -> str:
    verdicts = list(verdicts)
    if not verdicts or all(v == NOT_TESTED for v in verdicts):
        return NOT_TESTED
    if any(v == NOT_SUPPORTED for v in verdicts):
        return NOT_SUPPORTED
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return INCONCLUSIVE
