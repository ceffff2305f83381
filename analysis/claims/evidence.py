"""What a claim function returns, and the building blocks the claims share.

A claim is tested on one or more :class:`Part` (a method, a phase, a paper net), each
with its own verdict by the rule of :mod:`analysis.stats`; the claim's verdict combines
them (:func:`analysis.stats.combine`) and comes back as a :class:`ClaimResult`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd

from .. import tables as T
from ..formatting import Scale, describe
from ..stats import VERDICTS, Comparison, compare_runs


@dataclass
class Part:
    """One piece of evidence of a claim (a method, a phase, a paper net)."""
    label: str
    verdict: str
    numbers: dict = field(default_factory=dict)
    comparison: Comparison | None = None
    note: str = ""


@dataclass
class ClaimResult:
    claim_id: str
    claim: str
    verdict: str
    numbers: dict
    figures: tuple
    explanation: str
    parts: list = field(default_factory=list)
    key_numbers: str = ""        # one line for the claims table
    summary: str = ""            # the explanation without the per-part details (which are in ``parts``)

    @property
    def figure(self) -> str:
        return self.figures[0] if self.figures else ""


def missing_runs(runs: pd.DataFrame) -> str:
    """The representations (SP, IP) with no run in ``runs``, e.g. 'IP'."""
    have = set(runs["repr"].dropna().unique())
    gone = [r.upper() for r in T.REPRS if r not in have]
    return ", ".join(gone)


def per_method_parts(runs: pd.DataFrame, methods: Sequence[str], metric: str, scale: Scale, what: str,
                     higher_is_better: bool = True, better: str = "higher") -> list[Part]:
    """One part per method: IP vs SP on ``metric`` over the method's runs."""
    parts = []
    for method in methods:
        sub = runs[runs["method"] == method]
        c = compare_runs(sub, metric, higher_is_better)
        note = describe(c, scale, f"{method} {what}", better)
        if c.outcome == "missing":
            note = f"{method}: {missing_runs(sub) or 'values'} missing for {metric}"
        parts.append(Part(method, c.verdict, c.as_numbers(), c, note))
    return parts


def tally(parts: Sequence[Part]) -> str:
    """How many parts got each verdict, e.g. 'supported 2/3, inconclusive 1/3'."""
    counts = {v: sum(p.verdict == v for p in parts) for v in VERDICTS}
    shown = [f"{v} {counts[v]}/{len(parts)}" for v in VERDICTS if counts[v]]
    return ", ".join(shown)


def numbers_of(parts: Sequence[Part]) -> dict:
    """The numbers of every part, keyed ``<part label>.<number name>``."""
    return {f"{p.label}.{k}": v for p in parts for k, v in p.numbers.items()}
