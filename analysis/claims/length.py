"""The training-length claim: does IP's advantage hold for longer training?

- C10 :func:`claim_c10` IP−SP and IP_eq−SP test accuracy at the longest length of the training-length
  axis (STUDY_SPEC section 6), decided like C1: per accounting, and overall as one family over the parts
  of both accountings
- :func:`length_parts`  the same parts at any length of the axis (the report's tables per length and at
  the length of the schedules as published)

The per-length differences and the change from the shortest to the longest length are given for
information (:mod:`analysis.training_length`); they never decide the verdict.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .. import tables as T
from ..evidence import Evidence, Runs
from ..figures import CLAIM_FIGURES
from ..formatting import Scale, fmt_signed, fmt_sparsity, side_label
from ..paper import CLAIMS
from ..stats import MIN_SEEDS, NOT_TESTED, combine
from ..training_length import (
    METRIC,
    Trend,
    against_of,
    axis_runs,
    headline_epochs,
    difference_table,
    longest_length,
    methods_at,
    published_methods,
    trend,
    trend_phrase,
)
from .accuracy import accounting_label
from .parts import ClaimResult, Part, Pending, decide_parts, numbers_of, per_method_parts, tally, verdicts_by_group


def epochs_text(epochs: int) -> str:
    return f"{epochs} epoch{'s' if epochs != 1 else ''}"


def axis_scale(runs: pd.DataFrame) -> Scale:
    """Accuracies of the axis in % (fractions in the table) or as stored."""
    factor = T.percent_scale(runs[METRIC]) if len(runs) else 100.0
    return Scale(factor, " %" if factor == 100 else "", 2)


def difference_scale(runs: pd.DataFrame) -> Scale:
    factor = T.percent_scale(runs[METRIC]) if len(runs) else 100.0
    return Scale(factor, " pp" if factor == 100 else "", 2)


@dataclass
class LengthParts:
    """The parts at one length: per accounting, each sparse method's paired difference, decided with Holm over
    that accounting's methods (C1's convention); ``overall`` over the parts of every accounting together."""
    epochs: int
    parts: list[Part] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    group_verdicts: dict = field(default_factory=dict)
    overall: str = NOT_TESTED


def length_parts(runs: pd.DataFrame, epochs: int, alpha: float, methods=None) -> LengthParts:
    """IP−SP and IP_eq−SP test accuracy of every sparse method (or ``methods``) trained ``epochs`` epochs."""
    at = runs[(runs["epochs"] == epochs) & (runs["method"] != "dense")] if len(runs) else runs
    frame = Runs.of(at)
    methods = list(frame.methods) if methods is None else list(methods)
    scale = axis_scale(runs)
    out = LengthParts(epochs)
    if not methods:
        return out
    accountings = against_of(at)
    for against in accountings:
        suffix = "" if against == "ip" else " (equal storage)"
        these = per_method_parts(frame, METRIC, scale, f"test accuracy after {epochs_text(epochs)}{suffix}",
                                 against=against, group=accounting_label(against), label_suffix=suffix,
                                 methods=methods)
        out.parts += decide_parts(these, alpha)
        out.pending += these
    out.group_verdicts = verdicts_by_group(out.parts, [accounting_label(a) for a in accountings])
    # "under every accounting" is one claim over all parts: Holm over all of them for the other side
    out.overall = combine(p.verdict for p in decide_parts(out.pending, alpha))
    return out


def trends_of(runs: pd.DataFrame, methods) -> list[Trend]:
    """The change of each method's advantage (each accounting) from its shortest to its longest length."""
    found = []
    for method in methods:
        for against in against_of(runs[runs["method"] == method]):
            t = trend(runs, method, against)
            if t is not None:
                found.append(t)
    return found


def trend_text(t: Trend, diff: Scale) -> str:
    """'snip IP−SP from 1 to 12 epochs: change +1.20 pp [95 % CI +0.40, +2.00] (n=3): the advantage grows'
    (:func:`~analysis.training_length.trend_phrase`)."""
    name = f"{t.method} {side_label(t.against)}−SP"
    if t.change.n == 0:
        return f"{name} from {t.shortest} to {epochs_text(t.longest)}: no seed has a pair at both lengths"
    return (f"{name} from {t.shortest} to {epochs_text(t.longest)}: change {diff.with_ci(t.change)} "
            f"(n={t.change.n} seeds): {trend_phrase(t.label)}")


def per_length_text(runs: pd.DataFrame, diff: Scale) -> str:
    """Per method and accounting, the mean paired difference with its 95 % t interval at every length."""
    table = difference_table(runs)
    bits = []
    for (method, against), g in table.groupby(["method", "against"], sort=False):
        cells = []
        for r in g.itertuples():
            ci = "" if r.n < MIN_SEEDS else f" {diff.interval((r.ci_low, r.ci_high))}"
            cells.append(f"{r.epochs}: {fmt_signed(r.mean * diff.factor, diff.digits)}{diff.unit}{ci} (n={r.n})"
                         if r.n else f"{r.epochs}: no pairs")
        bits.append(f"{method} {side_label(against)}−SP by epochs {'; '.join(cells)}")
    return "; ".join(bits)


def claim_c10(ev: Evidence) -> ClaimResult:
    """C10: per accounting, each sparse method's paired test-accuracy difference after the axis' longest length;
    supported only if every part is, not supported only if a part goes the other way after Holm over the parts
    of both accountings together (one family, as C1 overall).  The change of the advantage from the shortest
    to the longest length is printed beside, for information."""
    runs = axis_runs(ev.tables.axis, ev.tables.meta, ev.sparsity)
    longest, head = longest_length(runs), headline_epochs(ev.tables.meta)
    why = ""
    if longest is None:
        why = f"no sparse runs of the training-length axis in {ev.path_of('axis')}"
    elif head is not None and longest <= head:
        why = (f"the training-length axis in {ev.path_of('axis')} has no sparse run longer than the headline's "
               f"{epochs_text(head)}")
    if why:
        text = f"Not tested here: {why}."
        return ClaimResult("C10", CLAIMS["C10"], NOT_TESTED, {}, CLAIM_FIGURES["C10"], text, [],
                           f"missing: {why}", text)
    at = length_parts(runs, longest, ev.alpha)
    parts, verdict = at.parts, at.overall
    diff = difference_scale(runs)
    published = set(published_methods(runs, ev.tables.meta))
    trends = trends_of(runs, methods_at(runs, longest))
    others = trends_of(runs, [m for m in T.sparse_methods(runs) if m not in methods_at(runs, longest)])
    where = (f"after {epochs_text(longest)} (the axis' longest length) at sparsity {fmt_sparsity(ev.sparsity)}, "
             "test accuracy paired over seeds, per method")
    if verdict == NOT_TESTED:
        summary = (f"Not tested here: no part has {MIN_SEEDS} or more connected seed pairs {where} "
                   f"({', '.join(p.label for p in parts) or 'no parts'}).")
    else:
        summary = (f"{where[0].upper()}{where[1:]}; "
                   + "; ".join(f"{g}: {v}" for g, v in at.group_verdicts.items())
                   + f" (parts: {tally(parts)}). Supported only if every part is; not supported only if a part goes "
                   f"the other way after Holm over the {len(parts)} parts of both accountings together: {verdict}.")
    if trends:
        summary += (" Whether the advantage shrinks, holds or grows with training (per seed, the difference at the "
                    "longest length minus that at the shortest; information, not the verdict): "
                    + "; ".join(trend_text(t, diff) for t in trends) + ".")
    expl = summary + (" Per part: " + "; ".join(p.note for p in parts) + "." if parts else "")
    if others:
        pub = sorted({t.method for t in others if t.method in published})
        expl += (" Methods not trained to the longest length (not parts): "
                 + "; ".join(trend_text(t, diff) for t in others)
                 + (f" ({', '.join(pub)}: the shortest length uses the headline's schedule, the longest the "
                    "published one, so length and schedule change together)" if pub else "") + ".")
    per_length = per_length_text(runs, diff)
    if per_length:
        expl += f" Per length (95 % t intervals): {per_length}."
    key = "; ".join(f"{p.label} {diff.with_ci(p.comparison.diff)} ({p.verdict})" for p in parts
                    if p.comparison is not None) or "missing"
    change = "; ".join(f"{t.method} {side_label(t.against)}−SP {t.label}" for t in trends)
    numbers = {"epochs_longest": longest, **numbers_of(parts)}
    for t in trends + others:
        prefix = f"{t.method}.{t.against}"
        numbers.update({f"{prefix}.epochs_shortest": t.shortest, f"{prefix}.epochs_longest": t.longest,
                        f"{prefix}.change_mean": t.change.mean, f"{prefix}.change_n": t.change.n,
                        f"{prefix}.change_ci_low": t.ci[0], f"{prefix}.change_ci_high": t.ci[1],
                        f"{prefix}.trend": t.label})
    for r in difference_table(runs).itertuples():
        prefix = f"{r.method}.{r.against}.e{r.epochs}"
        numbers.update({f"{prefix}.diff_mean": r.mean, f"{prefix}.ci_low": r.ci_low, f"{prefix}.ci_high": r.ci_high,
                        f"{prefix}.n_pairs": r.n})
    return ClaimResult("C10", CLAIMS["C10"], verdict, numbers, CLAIM_FIGURES["C10"], expl, parts,
                       f"after {epochs_text(longest)}: {key}" + (f"; from shortest to longest: {change}"
                                                                  if change else ""),
                       summary, at.group_verdicts)
