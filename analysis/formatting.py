"""How numbers are written in verdicts and in the report.

Plain number formats (:func:`fmt`, :func:`fmt_signed`, :func:`fmt_sci`, :func:`fmt_sparsity`),
which print a missing value as "n/a" rather than "nan"; :class:`Scale`, which prints a
metric with its factor and unit (accuracy stored as a fraction is printed in %, its
differences in pp) and a paired difference with its confidence intervals; and
:func:`describe`, the one sentence that states a decided :class:`~analysis.stats.Comparison`.
"""
from __future__ import annotations

import math

import pandas as pd

from . import tables as T
from .stats import (
    BOOTSTRAP_MIN_PAIRS,
    CONFIDENCE,
    INCONCLUSIVE,
    NOT_SUPPORTED,
    NOT_TESTED,
    SUPPORTED,
    TARGET_POWER,
    Comparison,
    PairedDifferences,
    Stats,
    is_missing,
)


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


def fmt_sparsity(s) -> str:
    return "n/a" if is_missing(s) else f"{float(s):g}"


def fmt_level(confidence: float) -> str:
    """A confidence level in %, with as many digits as it needs (95 %, 97.5 %, 99.17 %)."""
    return f"{100 * confidence:.4g} %"


class Scale:
    """How a metric is printed: a factor, a unit and a number format (accuracy: fraction -> %)."""

    def __init__(self, factor: float = 1.0, unit: str = "", digits: int = 2, sci: bool = False):
        self.factor, self.unit, self.digits, self.sci = factor, unit, digits, sci

    def _signed(self, value) -> str:
        return (fmt_sci if self.sci else fmt_signed)(value * self.factor, self.digits)

    def _bound(self, value) -> str:
        """An interval's end: as :meth:`_signed`, with the digits it needs not to read as 0 when it is not
        (a verdict turns on which side of 0 an end lies: '+0.001', not '+0.00')."""
        if self.sci or is_missing(value):
            return self._signed(value)
        x = float(value) * self.factor
        if x == 0 or abs(x) >= 0.5 * 10 ** -self.digits:
            return self._signed(value)
        return fmt_signed(x, min(-math.floor(math.log10(abs(x))), 9))

    def mean_sd(self, s: Stats) -> str:
        f = fmt_sci if self.sci else fmt
        if s.n == 0:
            return "missing"
        sd = f(s.sd * self.factor, self.digits) if not is_missing(s.sd) else "n/a"
        return f"{f(s.mean * self.factor, self.digits)} ± {sd}{self.unit} (n={s.n})"

    def diff(self, s: Stats) -> str:
        """Mean ± sd of a difference (information only; decisions use :meth:`with_ci`)."""
        if s.n == 0:
            return "no pairs"
        sd = (fmt_sci if self.sci else fmt)(s.sd * self.factor, self.digits) if not is_missing(s.sd) else "n/a"
        return f"{self._signed(s.mean)} ± {sd}{self.unit}"

    def interval(self, interval) -> str:
        low, high = interval
        if is_missing(low) or is_missing(high):
            return "[n/a]"
        return f"[{self._bound(low)}, {self._bound(high)}]"

    def with_ci(self, d: PairedDifferences) -> str:
        """Mean difference with its 95 % t interval, e.g. '+8.20 pp [95 % CI +5.10, +11.30]'."""
        if d.n == 0:
            return "no pairs"
        if not d.testable:
            return f"{self._signed(d.mean)}{self.unit} (1 pair, no CI)"
        low, high = d.ci
        level = fmt_level(CONFIDENCE)
        return f"{self._signed(d.mean)}{self.unit} [{level} CI {self._bound(low)}, {self._bound(high)}]"


def accuracy_scale(*frames: pd.DataFrame, column: str = "test_acc", diff: bool = False) -> Scale:
    factor = T.percent_scale(*[f[column] for f in frames if column in f])
    return Scale(factor, " pp" if diff else " %", 2)


def difference_scale(scale: Scale) -> Scale:
    """The scale of differences of a metric printed with ``scale`` (% becomes pp)."""
    return Scale(scale.factor, " pp" if scale.unit.strip() == "%" else scale.unit, scale.digits, scale.sci)


def side_label(label: str) -> str:
    """How a compared side is named: representations in capitals (SP, IP, IP_eq), anything else as given."""
    return {"sp": "SP", "ip": "IP", T.EQUAL_STORAGE: "IP_eq"}.get(label, label)


def decision_text(c: Comparison, scale: Scale, better: str = "higher") -> str:
    """The interval a part's verdict rests on and the verdict, e.g. '95 % CI [+2.10, +14.30] → supported
    (IP higher)': its own interval for the claimed side, Holm's adjusted one for the other side."""
    d = c.decision
    if d.verdict == NOT_TESTED:
        return f"→ not tested here ({d.reason})"
    if d.verdict == SUPPORTED:
        return f"→ supported ({side_label(c.a_label)} {better}: the {fmt_level(1 - d.alpha)} CI excludes 0)"
    holm = f"Holm {d.holm_rank}/{d.holm_m}: {fmt_level(1 - d.level)} CI {scale.interval(d.adjusted_ci)}"
    if d.verdict == NOT_SUPPORTED:
        return f"{holm} → not supported ({side_label(c.b_label)} {better})"
    stop = f", {d.reason}" if d.reason else ""
    need = (f"{d.seeds_needed} seeds would give {100 * TARGET_POWER:.0f} % power" if d.seeds_needed
            else f"no seed count gives {100 * TARGET_POWER:.0f} % power at this mean and sd")
    if d.seeds_needed and d.rough:
        need += f" (rough: from {c.diff.n} pairs)"
    return f"→ inconclusive ({holm}{stop}); {need}"


def holm_gap(c: Comparison) -> str:
    """Where an inconclusive part's own interval lies entirely on one side of 0 (the other side than claimed:
    on the claimed side the part would be supported), and only Holm's adjustment keeps it from *not supported*:
    'below 0 at 95 %, not after Holm over 4 parts'; '' otherwise."""
    d = c.decision
    if d is None or d.verdict != INCONCLUSIVE or not c.diff.testable:
        return ""
    low, high = c.diff.ci
    side = "below" if high < 0 else "above" if low > 0 else ""
    if not side:
        return ""
    level = fmt_level(1 - d.alpha) if not is_missing(d.alpha) else fmt_level(CONFIDENCE)
    return f"{side} 0 at {level}, not after Holm over {d.holm_m} part{'s' if d.holm_m != 1 else ''}"


def verdict_label(c: Comparison | None) -> str:
    """A part's label where its interval is printed beside it: the verdict, and :func:`holm_gap` where that
    applies ('inconclusive: below 0 at 95 %, not after Holm over 4 parts')."""
    if c is None or c.decision is None:
        return "—"
    gap = holm_gap(c)
    return c.verdict + (f": {gap}" if gap else "")


def excluded_text(c: Comparison) -> str:
    n = c.excluded_disconnected
    return f"; {n} pair{'s' if n != 1 else ''} excluded: disconnected" if n else ""


def describe(c: Comparison, scale: Scale, what: str, better: str = "higher") -> str:
    """One sentence with the numbers of a decided comparison and its verdict."""
    ds = difference_scale(scale)
    a, b = side_label(c.a_label), side_label(c.b_label)
    sides = f"{a} {scale.mean_sd(c.a)}, {b} {scale.mean_sd(c.b)}; " if c.diff.n else ""
    boot = f" (bootstrap {ds.interval(c.diff.bootstrap)})" if c.diff.n >= BOOTSTRAP_MIN_PAIRS else ""
    return (f"{what}: {sides}paired {a}−{b} {ds.with_ci(c.diff)}{boot} (n={c.diff.n} pairs{excluded_text(c)}); "
            f"{decision_text(c, ds, better)}")


def _layers(counts: pd.Series) -> str:
    """'1 layer', '4 layers' or '6–8 layers': how many layers the runs of a group lost, each."""
    low, high = int(counts.min()), int(counts.max())
    return f"{low} layer{'s' if low != 1 else ''}" if low == high else f"{low}–{high} layers"


def collapse_bits(runs: pd.DataFrame, by_sparsity: bool = False) -> list[str]:
    """Per method (and sparsity) the representations with runs that lost a layer (a prunable layer with no kept
    entry), e.g. 'snip IP_eq 1 of 5 runs (1 layer)' or, ``by_sparsity``, 'snip at s=0.99: SP 1 of 3 runs
    (4 layers), IP_eq 3 of 3 runs (6–8 layers)'; disconnected runs among them are counted."""
    if runs.empty or "collapsed_layers" not in runs or runs["collapsed_layers"].isna().all():
        return []
    keys = ["method", "sparsity"] if by_sparsity else ["method"]
    work = runs.assign(_order=runs["method"].map({m: i for i, m in enumerate(T.ordered_methods(
        runs["method"].dropna().unique()))}))
    bits = []
    for key, g in work.sort_values(["_order", *keys[1:]]).groupby(["_order", *keys], sort=False):
        method = key[1]
        hits = []
        for repr_ in T.reprs_present(g):
            side = g[g["repr"] == repr_].dropna(subset=["collapsed_layers"])
            lost = side[side["collapsed_layers"] > 0]
            if len(lost):
                cut = int(T.is_disconnected(lost).sum())
                hits.append(f"{side_label(repr_)} {len(lost)} of {len(side)} runs ({_layers(lost['collapsed_layers'])}"
                            f"{f'; {cut} disconnected' if cut else ''})")
        if hits and by_sparsity:
            bits.append(f"{method} at s={fmt_sparsity(key[2])}: " + ", ".join(hits))
        elif hits:
            bits += [f"{method} {h}" for h in hits]
    return bits
