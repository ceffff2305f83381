"""What a claim function returns, and the building blocks the claims share.

A claim is tested on one or more :class:`Part` (a method, a phase, a paper net).  The
comparisons of a claim's parts are collected first (:class:`Pending`, e.g. from
:func:`per_method_parts` over the seed pairs of an :class:`analysis.evidence.Runs`) and
decided together by :func:`decide_parts`, because the Holm adjustment of
:mod:`analysis.stats` depends on every part of the claim; the claim's verdict combines the
parts (:func:`analysis.stats.combine`) and comes back as a :class:`ClaimResult`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..evidence import Runs
from ..formatting import Scale, describe
from ..stats import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, VERDICTS, Comparison, combine, decide_family

#: the mark of a part measured on a method whose step-counted schedule the run squeezed (:mod:`.schedules`)
SCHEDULE_MARK = "†"
#: the mark of a part that rests on a choice on an edge of the grid it was chosen from (not bracketed)
GRID_EDGE_MARK = "‡"


@dataclass
class Part:
    """One piece of evidence of a claim (a method, a phase, a paper net)."""
    label: str
    verdict: str
    numbers: dict = field(default_factory=dict)
    comparison: Comparison | None = None
    note: str = ""
    group: str = ""              # the set of parts it belongs to (an accounting, a phase); "" if one set
    caveat: str = ""             # a known limit of what the part measured, said next to its number (a schedule
                                 # squeezed into the run, a learning rate chosen on an edge of its grid)
    mark: str = ""               # the sign the report prints after the part's method for that limit
                                 # (:data:`SCHEDULE_MARK`, :data:`GRID_EDGE_MARK`); "" without one

    @property
    def marked(self) -> str:
        """The label with the part's mark after its first word, the method: 'rigl† (equal storage)', 'gmp† GF'."""
        if not self.mark:
            return self.label
        method, space, rest = self.label.partition(" ")
        return method + self.mark + space + rest


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
    group_verdicts: dict = field(default_factory=dict)   # verdict per set of parts, e.g. per accounting
    caveat: str = ""             # said beside the verdict wherever it is printed (a part the verdict rests on
                                 # with a known limit, e.g. a learning rate chosen on an edge of its grid)
    brief: str = ""              # the key numbers in one short line for the report's claims table ("" : key_numbers)

    @property
    def figure(self) -> str:
        return self.figures[0] if self.figures else ""


@dataclass
class Pending:
    """A part whose comparison waits for the Holm adjustment over all parts of its claim."""
    label: str
    comparison: Comparison
    scale: Scale
    what: str
    better: str = "higher"
    group: str = ""
    missing_note: str = ""       # said instead of the numbers when no pair could be formed


def per_method_parts(runs: Runs, metric: str, scale: Scale, what: str, higher_is_better: bool = True,
                     better: str = "higher", against: str = "ip", group: str = "", label_suffix: str = "",
                     methods: Sequence[str] | None = None) -> list[Pending]:
    """One pending part per method (``runs.methods`` unless given): ``against`` (IP or IP_eq) vs SP on
    ``metric`` over the method's seed pairs."""
    pending = []
    for method in runs.methods if methods is None else methods:
        pairs = runs.pairs(method, metric, against=against)
        c = pairs.comparison(higher_is_better)
        gone = ", ".join(r.upper() for r in pairs.missing)
        missing = f"{method}: {gone or 'values'} missing for {metric}" if c.diff.n == 0 and \
            not c.excluded_disconnected else ""
        pending.append(Pending(f"{method}{label_suffix}", c, scale, f"{method} {what}", better, group, missing))
    return pending


def decide_parts(pending: Sequence[Pending], alpha: float) -> list[Part]:
    """The parts of one claim, decided together (Holm over all of them) and described."""
    decided = decide_family([p.comparison for p in pending], alpha)
    parts = []
    for p, c in zip(pending, decided):
        note = p.missing_note or describe(c, p.scale, p.what, p.better)
        parts.append(Part(p.label, c.verdict, c.as_numbers(), c, note, p.group))
    return parts


def verdicts_by_group(parts: Sequence[Part], groups: Sequence[str]) -> dict:
    """The combined verdict of each named set of parts; a set without parts is not tested."""
    return {g: combine(p.verdict for p in parts if p.group == g) for g in groups}


def tally(parts: Sequence[Part], marked: bool = False) -> str:
    """How many parts got each verdict, e.g. 'supported 2/3, inconclusive 1/3'; ``marked``: with the marked parts
    of each verdict named by their method and mark, e.g. 'supported 1/8 (gmp†), inconclusive 7/8 (rigl† among
    them)'."""
    shown = []
    for v in VERDICTS:
        these = [p for p in parts if p.verdict == v]
        if not these:
            continue
        text = f"{v} {len(these)}/{len(parts)}"
        named = [p.label.partition(" ")[0] + p.mark for p in these if p.mark] if marked else []
        if named:
            text += f" ({', '.join(named)}{'' if len(named) == len(these) else ' among them'})"
        shown.append(text)
    return ", ".join(shown)


def turning_parts(parts: Sequence[Part], verdict: str) -> list[Part]:
    """The parts a verdict turns on: for *not supported*, the parts shown to go the other way; for
    *inconclusive*, the parts that are not supported (on the claimed side); none for *supported* (every part
    holds) or *not tested here*.  With one such part the verdict would change were that part to change."""
    if verdict == NOT_SUPPORTED:
        return [p for p in parts if p.verdict == NOT_SUPPORTED]
    if verdict == INCONCLUSIVE:
        return [p for p in parts if p.verdict != SUPPORTED]
    return []


def turns_on(parts: Sequence[Part], verdict: str) -> Part | None:
    """The one part ``verdict`` turns on (:func:`turning_parts`), or None when it rests on several or none."""
    found = turning_parts(parts, verdict)
    return found[0] if len(found) == 1 else None


def turns_on_text(parts: Sequence[Part], verdict: str) -> str:
    """'on rigl alone' (with its caveat when it has one: 'on rigl alone, whose …'), or '' when the verdict does
    not turn on one part."""
    part = turns_on(parts, verdict)
    if part is None:
        return ""
    return f"on {part.label} alone" + (f" ({part.caveat})" if part.caveat else "")


def claim_result(results: Sequence[ClaimResult], claim_id: str) -> ClaimResult | None:
    """The result of claim ``claim_id`` among ``results``; None if it is absent."""
    return next((r for r in results if r.claim_id == claim_id), None)


def part_named(parts: Sequence[Part], label: str) -> Part | None:
    """The part labelled ``label``; None if there is none."""
    return next((p for p in parts if p.label == label), None)


def claim_part(results: Sequence[ClaimResult], claim_id: str, label: str) -> Part | None:
    """The part ``label`` of claim ``claim_id`` among ``results``; None if either is absent."""
    r = claim_result(results, claim_id)
    return part_named(r.parts, label) if r is not None else None


def numbers_of(parts: Sequence[Part]) -> dict:
    """The numbers of every part, keyed ``<part label>.<number name>``."""
    return {f"{p.label}.{k}": v for p in parts for k, v in p.numbers.items()}
