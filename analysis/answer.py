"""The opening of the report: the answer in a few lines, then one table.

- :func:`opening`: the regime in one line; IP vs SP at equal sparsity and at equal storage, each as
  what C1's parts show (how many methods are higher, which are not) and C1's verdict under that
  accounting with the part it turns on; the caveats of parts a schedule or a grid edge explains;
  the claims by verdict.
- :func:`headline_table`: per sparse method at the headline sparsity, SP, IP and IP_eq test accuracy,
  IP−SP and IP_eq−SP with their intervals and C1's label of the part, and the numbers each stores.
- :func:`collapse_note`: which runs lost a layer (headline and sweep) and how many are disconnected.

Everything is generated from the claim results (:mod:`analysis.verdicts`) and the tables; the
details follow in the report's appendix (:mod:`analysis.report`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from . import tables as T
from .claims import ClaimResult
from .claims.accuracy import EQUAL_STORAGE_SUFFIX, accounting_label, sweep_points
from .claims.costs import EQUAL_STORAGE as C4_EQUAL_STORAGE
from .claims.costs import PAPER_NETS
from .claims.length import epochs_text, trends_of
from .claims.parts import GRID_EDGE_MARK, SCHEDULE_MARK, Part, claim_result, turns_on
from .claims.schedules import squeezed
from .claims.trainability import gf_epochs
from .evidence import Evidence
from .formatting import Scale, collapse_bits, fmt, fmt_sparsity, holm_gap, side_label
from .stats import CONFIDENCE, INCONCLUSIVE, NOT_SUPPORTED, NOT_TESTED, SUPPORTED, VERDICTS, Stats
from .training_length import HOLDS, axis_runs, methods_at, published_methods, trend_phrase

#: the first cells of the opening table's header (what tests and readers look for)
TABLE_HEADER = "| method | SP | IP | IP−SP |"
#: the marks of parts a caveat of the opening explains: a squeezed schedule, a choice on an edge of its grid
CAVEAT_MARKS = (SCHEDULE_MARK, GRID_EDGE_MARK)
#: how each accounting is named in the opening
ACCOUNTING_NAMES = {"ip": ("Equal sparsity", "IP vs SP, the paper's accounting: FB entries as overhead"),
                    T.EQUAL_STORAGE: ("Equal storage", "IP_eq vs SP: FB entries charged to IP's budget")}


def seeds_text(seeds) -> str:
    """'0–4' for consecutive seeds, else '0, 2, 5'."""
    seeds = sorted(int(s) for s in seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


def regime_line(ev: Evidence) -> str:
    """Data, network, length in epochs and steps, dense accuracy, seeds and sparsity, in one line."""
    m, summary = ev.tables.meta, ev.tables.summary
    data = str(T.meta_value(m, "dataset", "data.name") or "dataset missing")
    subset = T.meta_value(m, "train_subset", "data.train_subset")
    if subset is not None:
        data += f" ({subset} training images)"
    elif T.dotted_lookup(m.get("params") or {}, "data.train_subset")[0]:
        data += " (the full training split)"
    model = T.meta_value(m, "model", "model.name")
    width = T.meta_value(m, "width", "model.width")
    net = f"{model}" + (f" (width {width})" if width is not None else "") if model else "network missing"
    epochs, steps = T.meta_value(m, "epochs", "train.epochs"), T.steps_per_run(m, summary)
    length = (f"{epochs} epoch{'s' if epochs != 1 else ''}" if epochs is not None else "epochs missing") + \
        (f" = {steps} steps per run" if steps else "")
    seeds = summary["seed"].dropna().unique() if len(summary) else []
    bits = [data, net, length, f"dense test accuracy {dense_accuracy(summary)}",
            f"{len(seeds)} paired seed{'s' if len(seeds) != 1 else ''}" + (f" ({seeds_text(seeds)})" if len(seeds)
                                                                             else ""),
            f"sparsity {fmt_sparsity(ev.sparsity)}"]
    return "**Regime**: " + "; ".join(bits) + "."


def _names(parts: Sequence[Part]) -> str:
    return ", ".join(p.marked.removesuffix(EQUAL_STORAGE_SUFFIX) for p in parts)


def parts_text(parts: Sequence[Part], side: str) -> str:
    """What C1's parts under one accounting show, e.g. 'IP higher for 7 of 8 methods; rigl† inconclusive':
    higher = the part's 95 % interval above 0; lower = below 0 after Holm (the rule's labels)."""
    n = len(parts)
    by = {v: [p for p in parts if p.verdict == v] for v in VERDICTS}
    higher = len(by[SUPPORTED])
    named = f" ({_names(by[SUPPORTED])})" if 0 < higher <= 2 < n else ""
    bits = [f"{side} higher for {'every method (' if higher == n else ''}{higher} of {n}"
            f"{')' if higher == n else ' methods'}{named}"]
    if by[NOT_SUPPORTED]:
        bits.append(f"lower for {_names(by[NOT_SUPPORTED])} (after Holm)")
    if by[INCONCLUSIVE]:
        few = len(by[INCONCLUSIVE]) <= 3
        bits.append(f"{_names(by[INCONCLUSIVE])} inconclusive" if few else
                    f"inconclusive for {len(by[INCONCLUSIVE])}")
    if by[NOT_TESTED]:
        bits.append(f"not tested for {_names(by[NOT_TESTED])}")
    return ", ".join(bits)


def _pooled(c1: ClaimResult, against: str) -> str:
    """'its mean above 0 for 8 of 8 (sign test p = 0.0078)': C1's pooled information, never a verdict."""
    n = c1.numbers
    methods = n.get(f"pooled.{against}.methods")
    if not methods:
        return ""
    return (f"the mean difference is above 0 for {n[f'pooled.{against}.higher']} of {methods} (two-sided sign "
            f"test p = {n[f'pooled.{against}.sign_test_p']:.2g}; information)")


def accounting_line(c1: ClaimResult | None, against: str, run: bool) -> str:
    """One accounting of C1 as its parts show it, then C1's verdict there and the part it turns on."""
    title, what = ACCOUNTING_NAMES[against]
    head = f"**{title}** ({what}): "
    if not run:
        return head + "not run (no IP_eq runs)."
    group = next((g for g in (c1.group_verdicts if c1 else {}) if g.startswith(side_label(against) + " vs SP")), None)
    parts = [p for p in c1.parts if p.group == group] if c1 and group else []
    if not parts:
        return head + "missing (no sparse runs)."
    verdict = c1.group_verdicts[group]
    pooled = _pooled(c1, against)
    turning = turns_on(parts, verdict)
    on = f", on {_names([turning])} alone" if turning is not None else ""
    return (head + parts_text(parts, side_label(against)) + (f"; {pooled}" if pooled else "")
            + f". C1 under this accounting: **{verdict}**{on}.")


def _published_where(ev: Evidence, methods: Sequence[str]) -> str:
    """Where the schedules as published of ``methods`` are tested: the training-length axis, or that it is
    missing."""
    runs = axis_runs(ev.tables.axis, ev.tables.meta, ev.sparsity)
    tested = [m for m in published_methods(runs, ev.tables.meta) if m in methods] if len(runs) else []
    if tested:
        length = T.meta_value(ev.tables.meta, "axis.published.epochs")
        at = f" at {length} epochs" if length is not None else ""
        return f"{', '.join(tested)} with their schedules as published{at}: see \"Training length\""
    return "no run with their schedules as published (the training-length axis is missing)"


def training_caveat(ev: Evidence) -> str:
    """What every result rests on: the runs' training steps, with the range of the main runs' final training loss
    (how far from converged they are is the reader's to judge, with the training-length axis); and, where GF is
    logged at one epoch end only, that C6's "during training" is the GF at the end of training."""
    summary = ev.tables.summary
    if "experiment" in summary:
        summary = summary[summary["experiment"] == "main"]
    loss = summary["train_loss"].dropna() if "train_loss" in summary else []
    if not len(loss):
        return ""
    text = (f"every result comes after the runs' training steps (regime line): final training loss of the main "
            f"runs {fmt(loss.min())}–{fmt(loss.max())}")
    if gf_epochs(ev.tables.history) == 1:
        text += ("; C6's gradient flow \"during training\" is its value at the end of training (logged at each "
                 "epoch's end: one here)")
    return text


def length_caveat(ev: Evidence, results: Sequence[ClaimResult]) -> str:
    """What longer training does to the advantage, in words (its numbers are C10's row and "Training length"):
    C10's verdict at the axis' longest length, and per accounting whether the advantage shrinks or grows from the
    headline's length to there, or no change is detected; '' where C10 is not tested."""
    c10 = claim_result(results, "C10")
    if c10 is None or c10.verdict == NOT_TESTED:
        return ""
    runs = axis_runs(ev.tables.axis, ev.tables.meta, ev.sparsity)
    longest = int(c10.numbers["epochs_longest"])
    methods = methods_at(runs, longest)
    trends = [t for t in trends_of(runs, methods) if t.change.n]
    if not trends:
        return ""
    shortest = min(t.shortest for t in trends)
    seeds = sorted(set(runs.loc[(runs["epochs"] == longest) & runs["method"].isin(methods), "seed"]))
    labels = {short_group(accounting_label(t.against)): t.label for t in trends} if len(methods) == 1 else \
        {f"{t.method} at {short_group(accounting_label(t.against))}": t.label for t in trends}
    if len(set(labels.values())) == 1 and len(labels) > 1:
        label = next(iter(labels.values()))
        how = f"{trend_phrase(label)} at " + (" or at " if label == HOLDS else " and at ").join(labels)
    else:
        how = "; ".join(f"at {where} {trend_phrase(label)}" for where, label in labels.items())
    after = "; ".join(f"{short_group(g)}: {v}" for g, v in c10.group_verdicts.items())
    return (f"Longer training ({', '.join(methods)}, seeds {seeds_text(seeds)}): after {epochs_text(longest)}, "
            f"C10 {c10.verdict} ({after}); from {shortest} to {epochs_text(longest)}, {how}: see "
            "\"Training length\"")


def caveat_line(ev: Evidence, results: Sequence[ClaimResult], controls: Sequence[ClaimResult] = ()) -> str:
    """The caveats every result rests on (:func:`training_caveat`), and those of parts a schedule (†) or a grid
    edge (‡) explains (:attr:`Part.caveat`), in one line; '' if none."""
    bits = [b for b in (training_caveat(ev), length_caveat(ev, results)) if b]
    sched = squeezed(ev.tables.meta, ev.headline.frame)
    c1 = claim_result(results, "C1")
    with_caveat = {p.label.removesuffix(EQUAL_STORAGE_SUFFIX) for p in (c1.parts if c1 else [])
                   if p.mark == SCHEDULE_MARK}
    marked = [m for m in sched if m in with_caveat]
    if marked:
        defaults = {sched[m].default_interval for m in marked}
        default = (f" (the library's default for each: one every {defaults.pop()} steps)" if len(defaults) == 1
                   and None not in defaults else "")
        bits.append(f"{SCHEDULE_MARK} {', '.join(marked)}: schedules squeezed into the run's length: "
                    + "; ".join(f"{m} {sched[m].short()}" for m in marked) + default
                    + f"; {_published_where(ev, marked)}")
    edges = [f"{r.claim_id} {p.marked}: {p.caveat}" for r in controls for p in r.parts
             if p.mark == GRID_EDGE_MARK and p.caveat]
    if edges:
        bits.append(f"{GRID_EDGE_MARK} a choice on an edge of its grid, not bracketed (a value beyond it might do "
                    "better): " + "; ".join(edges))
    return ("**Caveats**: " + ". ".join(bits) + ".") if bits else ""


#: how the body names a claim's sets of parts (the appendix gives the full names)
SHORT_GROUPS = {accounting_label("ip"): "equal sparsity", accounting_label(T.EQUAL_STORAGE): "equal storage",
                PAPER_NETS: "FB overhead of the paper's nets", C4_EQUAL_STORAGE: "IP_eq stores ≤ SP"}


def short_group(name: str) -> str:
    return SHORT_GROUPS.get(name, name)


def _claim_name(r: ClaimResult) -> str:
    """'C1', or 'C1 (equal storage)' where only some of a claim's sets of parts have its verdict: which ones."""
    sets = r.group_verdicts or {}
    mine = [g for g, v in sets.items() if v == r.verdict]
    if not sets or len(mine) == len(sets) or not mine:
        return r.claim_id
    return f"{r.claim_id} ({', '.join(short_group(g) for g in mine)})"


def claims_line(results: Sequence[ClaimResult]) -> str:
    """The claims by verdict; a claim whose verdict comes from some of its sets of parts names them."""
    by_verdict = {v: [_claim_name(r) for r in results if r.verdict == v] for v in VERDICTS}
    return ("**Claims** (the table \"Claims\" below; every claim's detail in the appendix): "
            + "; ".join(f"{v}: {', '.join(ids)}" for v, ids in by_verdict.items() if ids) + ".")


def opening(ev: Evidence, results: Sequence[ClaimResult], controls: Sequence[ClaimResult] = ()) -> list[str]:
    """The answer, one line each: regime, equal sparsity, equal storage, caveats, the claims by verdict."""
    c1 = claim_result(results, "C1")
    lines = [regime_line(ev), accounting_line(c1, "ip", True),
             accounting_line(c1, T.EQUAL_STORAGE, ev.has_equal_storage),
             caveat_line(ev, results, controls), claims_line(results)]
    return [f"- {line}" for line in lines if line]


# --------------------------------------------------------------------------- the table

def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _stored(runs: pd.DataFrame, method: str, reprs: Sequence[str]) -> str:
    """'5,412 / 6,951 / 5,412': mean numbers stored per run of each representation ('–' where none)."""
    rows = runs[runs["method"] == method]
    cells = []
    for rep in reprs:
        values = rows.loc[rows["repr"] == rep, "stored_params"].dropna() if "stored_params" in rows else []
        cells.append(f"{np.mean(values):,.0f}" if len(values) else "–")
    return " / ".join(cells)


def headline_table(ev: Evidence, results: Sequence[ClaimResult] = ()) -> str:
    """Per sparse method at the headline sparsity: SP, IP, IP−SP [95 % CI] label, and with equal storage IP_eq,
    IP_eq−SP [95 % CI] label; the numbers each representation stores. Labels are C1's parts'."""
    runs = ev.headline
    frame = runs.frame[runs.frame["method"] != "dense"] if len(runs.frame) else runs.frame
    table = T.accuracy_table(frame, "test_acc")
    if table.empty:
        return "Test accuracy per method: missing (no sparse runs in the summary table)."
    c1 = claim_result(results, "C1")
    labels = {p.label: p for p in (c1.parts if c1 else [])}
    cell_scale, diff_scale = Scale(ev.scale.factor, "", 2), Scale(ev.scale.factor, "", 2)
    seeds = frame["seed"].dropna().nunique()
    reprs = T.reprs_present(frame)

    def cell(row, rep):
        n = int(row[f"{rep}_n"])
        text = cell_scale.mean_sd(Stats(n, row[f"{rep}_mean"], row[f"{rep}_sd"]))
        return text.replace(f" (n={seeds})", "") if n == seeds else text

    def paired_cell(method, against):
        part = labels.get(method + ("" if against == "ip" else EQUAL_STORAGE_SUFFIX))
        c = part.comparison if part is not None else runs.comparison(method, "test_acc", against=against,
                                                                     keys=["method", "seed"])
        if c.diff.n == 0:
            return "no pairs" if not c.excluded_disconnected else f"no pairs ({c.excluded_disconnected} disconnected)"
        text = diff_scale.with_ci(c.diff).replace(f"[{100 * CONFIDENCE:.0f} % CI ", "[")
        if c.diff.n != seeds:
            text += f" (n={c.diff.n})"
        if c.excluded_disconnected:
            text += f" ({c.excluded_disconnected} excluded: disconnected)"
        if part is None:
            return text
        gap = holm_gap(part.comparison) if part.comparison is not None else ""
        return text + f" {part.verdict}{part.mark}" + (f" ({gap})" if gap else "")

    header = ["method", "SP", "IP", "IP−SP"] + (["IP_eq", "IP_eq−SP"] if ev.has_equal_storage else [])
    header.append(f"numbers stored ({' / '.join(side_label(r) for r in reprs)})")
    rows = []
    for _, r in table.iterrows():
        row = [r["method"], cell(r, "sp"), cell(r, "ip"), paired_cell(r["method"], "ip")]
        if ev.has_equal_storage:
            row += [cell(r, T.EQUAL_STORAGE), paired_cell(r["method"], T.EQUAL_STORAGE)]
        rows.append(row + [_stored(frame, r["method"], reprs)])
    unit = "%" if ev.scale.factor == 100 else "as a fraction"
    marks = [m for m in CAVEAT_MARKS if any(p.mark == m for p in labels.values())]
    legend = (f"Test accuracy ({unit}) at sparsity {fmt_sparsity(ev.sparsity)}, mean ± sd over the {seeds} seeds "
              f"(every run; n where fewer). IP−SP{' and IP_eq−SP' if ev.has_equal_storage else ''}: mean of the "
              f"paired per-seed differences ({'pp' if unit == '%' else 'fraction'}) over connected pairs, its "
              f"{100 * CONFIDENCE:.0f} % t interval and C1's label of the part (supported: the interval lies above "
              "0; not supported: below 0 after Holm over the accounting's methods). IP keeps as many coefficients as "
              "SP keeps weights and stores its FB entries on top; "
              + ("IP_eq keeps that many less the FB entries, so it stores what SP stores. " if ev.has_equal_storage
                 else "equal storage (IP_eq): not run. ")
              + "Numbers stored: mean per run." + (f" {', '.join(marks)}: see Caveats." if marks else ""))
    return _table(header, rows) + "\n\n" + legend


def collapse_note(runs: pd.DataFrame, sweep: pd.DataFrame | None = None, sparsity: float | None = None) -> str:
    """Which runs have a collapsed layer (a prunable layer with no kept entry) or are disconnected (no path from
    input to output): the main runs ``runs`` and, when given, the sweep at its own sparsities; reported, not
    hidden (STUDY_SPEC §2)."""
    if runs.empty or "collapsed_layers" not in runs or runs["collapsed_layers"].isna().all():
        return "Layer collapse: not recorded."
    bits = collapse_bits(runs)
    text = "Layer collapse (a prunable layer left with no kept entry): " + ("; ".join(bits) if bits else "none")
    disconnected = f"{int(T.is_disconnected(runs).sum())}"
    if sweep is not None and len(sweep):
        points = sweep_points(sweep, sparsity)
        lost = collapse_bits(points, by_sparsity=True)
        text += "; in the sweep, " + ("; ".join(lost) if lost else "none")
        disconnected += f" (sweep: {int(T.is_disconnected(points).sum())})"
    return text + (f". Disconnected runs (no path from input to output; left out of every comparison): "
                   f"{disconnected}.")


def dense_accuracy(summary: pd.DataFrame) -> str:
    """Mean SP test accuracy of the dense runs (the unpruned reference), e.g. '71.90 % (SP, mean of 3 seeds)'."""
    dense = summary[(summary["method"] == "dense") & (summary["repr"] == "sp")]["test_acc"].dropna()
    if dense.empty:
        return "missing"
    factor = T.percent_scale(dense)
    return f"{dense.mean() * factor:.2f}{' %' if factor == 100 else ''} (SP, mean of {len(dense)} seeds)"


__all__ = ["CAVEAT_MARKS", "TABLE_HEADER", "accounting_line", "caveat_line", "claims_line", "collapse_note",
           "dense_accuracy", "headline_table", "opening", "parts_text", "regime_line"]
