"""How numbers are written in verdicts and in the report.

Plain number formats (:func:`fmt`, :func:`fmt_signed`, :func:`fmt_sci`, :func:`fmt_p`,
:func:`fmt_sparsity`), which print a missing value as "n/a" rather than "nan";
:class:`Scale`, which prints a metric with its factor and unit (accuracy stored as a
fraction is printed in %, its differences in pp); and :func:`describe`, the one
sentence that states a :class:`~analysis.stats.Comparison` and the rule's outcome.
"""
from __future__ import annotations

import pandas as pd

from . import tables as T
from .stats import MIN_SEEDS, Comparison, Stats, is_missing


def fmt(value, digits: int = 2) -> str:
    if is_missing(value):
        return "n/a"
    return f"{float(value):.{digits}f}"


def fmt_signed(value, digits: int = 2) -> str:
    if is_missing(value):
        return "n/a"
    return f"{float(value):+.{digits}f}"


def fmt_sci(value, digits: int = 2) -> str:
    if is_missing(value):
        return "n/a"
    return f"{float(value):.{digits}e}"


def fmt_p(p: float) -> str:
    if is_missing(p):
        return "p n/a"
    return f"p={p:.3g}"


def fmt_sparsity(s) -> str:
    return "n/a" if is_missing(s) else f"{float(s):g}"


class Scale:
    """How a metric is printed: a factor, a unit and a number format (accuracy: fraction -> %)."""

    def __init__(self, factor: float = 1.0, unit: str = "", digits: int = 2, sci: bool = False):
        self.factor, self.unit, self.digits, self.sci = factor, unit, digits, sci

    def mean_sd(self, s: Stats) -> str:
        f = fmt_sci if self.sci else fmt
        if s.n == 0:
            return "missing"
        sd = f(s.sd * self.factor, self.digits) if not is_missing(s.sd) else "n/a"
        return f"{f(s.mean * self.factor, self.digits)} ± {sd}{self.unit} (n={s.n})"

    def diff(self, s: Stats) -> str:
        f = fmt_sci if self.sci else fmt_signed
        if s.n == 0:
            return "no pairs"
        sd = (fmt_sci if self.sci else fmt)(s.sd * self.factor, self.digits) if not is_missing(s.sd) else "n/a"
        return f"{f(s.mean * self.factor, self.digits)} ± {sd}{self.unit}"


def accuracy_scale(*frames: pd.DataFrame, column: str = "test_acc", diff: bool = False) -> Scale:
    factor = T.percent_scale(*[f[column] for f in frames if column in f])
    return Scale(factor, " pp" if diff else " %", 2)


def describe(c: Comparison, scale: Scale, what: str, better: str = "higher") -> str:
    """One sentence with the numbers of a comparison and the rule's outcome."""
    outcome = {"a_better": f"{c.a_label.upper()} {better} (±1 sd intervals do not overlap)",
               "b_better": f"{c.b_label.upper()} {better} (±1 sd intervals do not overlap)",
               "overlap": "±1 sd intervals overlap",
               "too_few_seeds": f"fewer than {MIN_SEEDS} seeds",
               "missing": "missing"}[c.outcome]
    diff_scale = Scale(scale.factor, " pp" if scale.unit.strip() == "%" else scale.unit, scale.digits, scale.sci)
    return (f"{what}: {c.a_label.upper()} {scale.mean_sd(c.a)}, {c.b_label.upper()} {scale.mean_sd(c.b)}; "
            f"paired {c.a_label.upper()}−{c.b_label.upper()} {diff_scale.diff(c.diff)} "
            f"(n={c.diff.n} pairs, {fmt_p(c.p_value)}) → {outcome}")
