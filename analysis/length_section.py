"""The report's section on the training-length axis (STUDY_SPEC section 6): the axis methods'
accuracies and paired differences at every length, the methods trained with their schedules as
published beside SNIP at that length (C1's parts there), and the dense networks at their
lengths (how close to convergence the axis gets; C8 there).

Every number comes from ``results/axis.csv`` and meta.json's params snapshot.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from . import tables as T
from .claims.length import axis_scale, difference_scale, epochs_text, length_parts, trend_text, trends_of
from .claims import ClaimResult
from .claims.parts import claim_part, decide_parts, part_named, per_method_parts
from .answer import seeds_text
from .evidence import Evidence, Runs
from .formatting import Scale, fmt_sparsity, side_label
from .stats import CONFIDENCE, PairedDifferences, Stats
from .training_length import (
    METRIC,
    axis_runs,
    dst_updates,
    family_of,
    gmp_steps,
    headline_epochs,
    lengths,
    longest_length,
    methods_at,
    published_methods,
    recorded_updates,
    steps_at,
)

TITLE = "## Training length and the published schedules"


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _means(rows: pd.DataFrame, reprs: Sequence[str], scale: Scale) -> list[str]:
    """Mean ± sd (n) of the test accuracy of each representation (every run), 'missing' where none ran."""
    stats = T.seed_stats(rows, METRIC, ["repr"]).set_index("repr") if len(rows) else pd.DataFrame()
    cells = []
    for rep in reprs:
        if rep not in stats.index:
            cells.append("missing")
            continue
        s = stats.loc[rep]
        cells.append(scale.mean_sd(Stats(int(s["n"]), float(s["mean"]), float(s["sd"]))))
    return cells


def _labelled(parts, label: str, diff: Scale, reference: str = "") -> str:
    """'+3.20 [95 % CI +1.10, +5.30] (supported)' of the part named ``label``; '–' if there is none.  With a
    ``reference`` (the headline's runs of a subset of its seeds) no label of its own: which claim decides them."""
    part = part_named(parts, label)
    if part is None or part.comparison is None:
        return "–"
    if part.comparison.diff.n == 0:
        return part.note or "no pairs"
    return f"{diff.with_ci(part.comparison.diff)} (n={part.comparison.diff.n}; {reference or part.verdict})"


def _part_label(method: str, against: str) -> str:
    return method + ("" if against == "ip" else " (equal storage)")


def _difference_cells(parts, method: str, against: Sequence[str], diff: Scale,
                      reference=None) -> list[str]:
    """Each accounting's cell; ``reference(label)``, where given, says which claim decides the runs instead."""
    return [_labelled(parts, _part_label(method, a), diff, reference(_part_label(method, a)) if reference else "")
            for a in against]


def _headline_reference(ev: Evidence, claim: str, label: str, results: Sequence[ClaimResult]) -> str:
    """'reference: C1 decides these runs on seeds 0–4: supported' for rows that are the headline's runs (of fewer
    seeds than the headline has): their label is the claim's part ``label``, decided on all of its seeds."""
    seeds = T.meta_value(ev.tables.meta, "seeds")
    on = f" on seeds {seeds_text(seeds)}" if isinstance(seeds, list) and seeds else ""
    part = claim_part(results, claim, label)
    return f"reference: {claim} decides these runs{on}" + (f": {part.verdict}" if part is not None else "")


def _accountings(runs: pd.DataFrame) -> tuple[str, ...]:
    return tuple(r for r in T.reprs_present(runs) if r in T.ACCOUNTINGS)


def _length_tables(ev: Evidence, runs: pd.DataFrame, longest: int, results: Sequence[ClaimResult] = ()) -> list[str]:
    """(a) per method trained to the longest length: one row per length, and the change with the length."""
    out = []
    cell, diff = Scale(axis_scale(runs).factor, "", 2), difference_scale(runs)
    decided = {e: length_parts(runs, e, ev.alpha).parts for e in lengths(runs)}
    head = headline_epochs(ev.tables.meta)
    for method in methods_at(runs, longest):
        rows = runs[runs["method"] == method]
        against = _accountings(rows)
        reprs = ("sp", *against)
        header = ["epochs", "steps", *(side_label(r) for r in reprs), *(f"{side_label(a)}−SP" for a in against)]
        table = []
        for epochs in lengths(rows):
            at = rows[rows["epochs"] == epochs]
            steps = steps_at(at, epochs, ev.tables.meta)
            table.append([epochs, steps if steps is not None else "missing", *_means(at, reprs, cell),
                          *_difference_cells(decided[epochs], method, against, diff,
                                             (lambda label: _headline_reference(ev, "C1", label, results))
                                             if epochs == head else None)])
        out.append(f"**{method}** at every length:\n\n" + _table(header, table))
        trends = trends_of(runs, [method])
        if trends:
            out.append("Does the advantage shrink, hold or grow with training? Per seed, the difference at the "
                       "longest length minus that at the shortest: " + "; ".join(trend_text(t, diff) for t in trends)
                       + ".")
    return out


def _recorded(count: int | None, what: str) -> str:
    return f"{count} {what} recorded" if count is not None else "not recorded"


def _schedule_sentence(runs: pd.DataFrame, meta: dict, published: Sequence[str], length: int) -> str:
    """Why the 1-epoch headline does not use the published schedules: what they would make of its steps, and
    what each schedule makes (recorded) at its length; numbers from meta.json's params snapshot."""
    head = headline_epochs(meta)
    if head is None:
        return ""
    short, long_ = steps_at(runs, head, meta), steps_at(runs, length, meta)
    if short is None:
        return ""
    bits, kept = [], []
    for method, section in (("rigl", "dst"), ("gmp", "gmp")):
        if method not in published:
            continue
        pub = {k: T.meta_value(meta, f"axis.published.prune.{method}.{k}")
               for k in ("interval", "stop_fraction", "start_fraction", "end_fraction")}
        mine = {k: T.meta_value(meta, f"prune.{section}.{k}")
                for k in ("interval", "stop_fraction", "start_fraction", "end_fraction")}
        done = {e: recorded_updates(runs, method, e) for e in (head, length)}
        if method == "rigl" and pub["interval"] and mine["interval"] and pub["stop_fraction"] is not None \
                and mine["stop_fraction"] is not None:
            bits.append(f"RigL's published ΔT = {pub['interval']} steps (updates until "
                        f"{100 * pub['stop_fraction']:g} % of training) leaves room for "
                        f"{dst_updates(short, pub['interval'], pub['stop_fraction'])} mask updates")
            kept.append(f"RigL updates every {mine['interval']} steps until {100 * mine['stop_fraction']:g} % "
                        f"({_recorded(done[head], 'updates')}; as published at {epochs_text(length)}: "
                        f"{_recorded(done[length], 'updates')})")
        if method == "gmp" and pub["interval"] and mine["interval"] and None not in (
                pub["start_fraction"], pub["end_fraction"], mine["start_fraction"], mine["end_fraction"]):
            bits.append(f"GMP's cubic schedule as published, from {100 * pub['start_fraction']:g} % to "
                        f"{100 * pub['end_fraction']:g} % of training (Zhu & Gupta 2018), at the spacing of the "
                        f"{length}-epoch runs (a pruning step every {pub['interval']} steps: this study's "
                        "choice, not the paper's) leaves "
                        f"room for {gmp_steps(short, pub['interval'], pub['start_fraction'], pub['end_fraction'])} "
                        "pruning steps")
            kept.append(f"GMP prunes every {mine['interval']} steps from {100 * mine['start_fraction']:g} % to "
                        f"{100 * mine['end_fraction']:g} % ({_recorded(done[head], 'pruning steps')}; as published at "
                        f"{epochs_text(length)}: {_recorded(done[length], 'pruning steps')})")
    if not bits:
        return ""
    at_length = f" ({long_} steps)" if long_ is not None else ""
    return (f"Why the {head}-epoch headline uses other schedules: in its {short} steps, " + "; ".join(bits)
            + ". Its own schedules fit its steps: " + "; ".join(kept) + ". The published schedules are tested "
            f"where they fit, at {epochs_text(length)}{at_length}.")


def _published_table(ev: Evidence, runs: pd.DataFrame, published: Sequence[str]) -> list[str]:
    """(b) at the published methods' length: SNIP beside them, C1's parts there."""
    length = T.meta_value(ev.tables.meta, "axis.published.epochs")
    found = sorted({lengths(runs, m)[-1] for m in published if lengths(runs, m)})
    if not isinstance(length, (int, float)) or int(length) not in found:
        length = found[-1] if found else None
    if length is None:
        return ["No runs with the schedules as published."]
    length = int(length)
    at = runs[runs["epochs"] == length]
    against = _accountings(at[at["method"] != "dense"])
    cell, diff = Scale(axis_scale(runs).factor, "", 2), difference_scale(runs)
    decided = length_parts(runs, length, ev.alpha)
    reprs = ("sp", *against)
    header = ["method", "family", "mask updates", *(side_label(r) for r in reprs),
              *(f"{side_label(a)}−SP" for a in against)]
    rows = []
    for method in methods_at(runs, length):
        updates = recorded_updates(runs, method, length)
        rows.append([method + (" (as published)" if method in published else ""), family_of(method) or "–",
                     updates if updates else "–", *_means(at[at["method"] == method], reprs, cell),
                     *_difference_cells(decided.parts, method, against, diff)])
    groups = "; ".join(f"{g}: {v}" for g, v in decided.group_verdicts.items())
    text = [f"### At {epochs_text(length)}: the schedules as published",
            f"C1's parts at {epochs_text(length)} (each accounting's methods one Holm family, as in C1): "
            f"{groups or 'no parts'}; under every accounting together: {decided.overall}.",
            _table(header, rows)]
    why = _schedule_sentence(runs, ev.tables.meta, published, length)
    if why:
        text.append(why)
    return text


def _paired_gain(rows: pd.DataFrame, rep: str, short: int, long_: int) -> PairedDifferences:
    """Per seed, the test accuracy of ``rep`` after ``long_`` epochs minus that after ``short``."""
    side = rows[(rows["repr"] == rep) & ~T.is_disconnected(rows)]
    wide = side.pivot_table(index="seed", columns="epochs", values=METRIC, aggfunc="first")
    if short not in wide or long_ not in wide:
        return PairedDifferences.of([])
    return PairedDifferences.of((wide[long_] - wide[short]).dropna())


def _dense_part(ev: Evidence, runs: pd.DataFrame, results: Sequence[ClaimResult] = ()) -> list[str]:
    """(c) the dense networks at the shortest and longest of their lengths: accuracy, and C8 there."""
    dense = runs[runs["method"] == "dense"]
    found = lengths(dense)
    if not found:
        return ["### Dense networks\n\nNo dense runs on the axis."]
    cell, diff = Scale(axis_scale(runs).factor, "", 2), difference_scale(runs)
    shown = sorted({found[0], found[-1]})
    rows = []
    for epochs in shown:
        at = dense[dense["epochs"] == epochs]
        [part] = decide_parts(per_method_parts(Runs.of(at), METRIC, axis_scale(runs), "dense test accuracy",
                                               methods=["dense"]), ev.alpha)
        c = part.comparison.diff
        label = (_headline_reference(ev, "C8", "dense", results) if epochs == headline_epochs(ev.tables.meta)
                 else part.verdict)
        rows.append([epochs, *_means(at, ("sp", "ip"), cell), f"{diff.with_ci(c)} (n={c.n}; {label})" if c.n
                     else "no pairs"])
    text = ["### Dense networks: how close to convergence the axis gets",
            _table(["epochs", "SP", "IP", "IP−SP (C8 at that length)"], rows)]
    if len(shown) == 2:
        gains = [f"{side_label(rep)} {diff.with_ci(g)} (n={g.n})"
                 for rep in ("sp", "ip") if (g := _paired_gain(dense, rep, *shown)).n]
        if gains:
            text.append(f"Dense test accuracy gained from {shown[0]} to {epochs_text(shown[1])}, paired per seed: "
                        + "; ".join(gains) + ".")
    return text


def length_section(ev: Evidence, results: Sequence[ClaimResult] = ()) -> str:
    """The training-length axis and the schedules as published, from ``results/axis.csv``; the rows of the
    headline's length name the claim of ``results`` that decides those runs (C1, C8) instead of a label."""
    runs = axis_runs(ev.tables.axis, ev.tables.meta, ev.sparsity)
    longest = longest_length(runs)
    if runs.empty or longest is None:
        return f"{TITLE}\n\nmissing (no runs of the training-length axis in `{ev.path_of('axis')}`)."
    seeds = ", ".join(str(int(s)) for s in sorted(runs["seed"].dropna().unique()))
    head = headline_epochs(ev.tables.meta)
    unit = "%" if axis_scale(runs).factor == 100 else "fractions"
    text = [TITLE,
            f"From `{ev.path_of('axis')}`, sparsity {fmt_sparsity(ev.sparsity)}, seeds {seeds}"
            + (f"; the {head}-epoch rows are the headline's runs of those seeds" if head else "")
            + ". Every run uses the cosine schedule over its whole length. Test accuracy in "
            f"{unit}, mean ± sd over seeds (n = runs); differences paired per seed, with their "
            f"{100 * CONFIDENCE:.0f} % t interval and the label of the rule (at each length, each accounting's "
            f"methods are one Holm family, as in C1; the labels at {epochs_text(longest)} are C10's parts).",
            *_length_tables(ev, runs, longest, results)]
    published = published_methods(runs, ev.tables.meta)
    if published:
        text += _published_table(ev, runs, published)
    text += _dense_part(ev, runs, results)
    return "\n\n".join(text)
