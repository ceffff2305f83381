"""The opening of the report: which claims hold at this scale, under which accounting, with the
intervals they rest on, and the headline table of test accuracy per method.

Both are generated from the claim results (:mod:`analysis.verdicts`) and the summary table;
the details follow later in the report (:mod:`analysis.report`).
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from . import tables as T
from .claims import ClaimResult
from .evidence import Evidence
from .formatting import Scale, fmt_sparsity, side_label
from .stats import CONFIDENCE, VERDICTS, Stats

HEADLINE_TITLE = "## Headline: test accuracy per method"


def _scale_text(ev: Evidence) -> str:
    """'fashion_mnist, resnet20 (width 8), 4 epochs, 3 seeds, sparsity 0.98'."""
    m = ev.tables.meta
    bits = [str(T.meta_value(m, "dataset", "data.name") or "dataset missing")]
    model = T.meta_value(m, "model", "model.name")
    width = T.meta_value(m, "width", "model.width")
    if model:
        bits.append(f"{model}" + (f" (width {width})" if width is not None else ""))
    epochs = T.meta_value(m, "epochs", "train.epochs")
    if epochs is not None:
        bits.append(f"{epochs} epochs")
    seeds = ev.tables.summary["seed"].dropna().nunique()
    if seeds:
        bits.append(f"{seeds} seed{'s' if seeds != 1 else ''}")
    if ev.sparsity is not None:
        bits.append(f"sparsity {fmt_sparsity(ev.sparsity)}")
    return ", ".join(bits)


def _question(ev: Evidence, results: Sequence[ClaimResult]) -> list[str]:
    """The study's question first: does IP beat SP, under each accounting (C1's parts), and what the
    FB parameters buy (IP − IP_eq per method)."""
    c1 = next((r for r in results if r.claim_id == "C1"), None)
    if c1 is None or not c1.parts:
        return []
    diff = Scale(ev.scale.factor, " pp", 2)
    lines = [f"**Does IP beat SP at sparsity {fmt_sparsity(ev.sparsity)}?** (test accuracy, IP − SP paired over "
             f"seeds, {100 * CONFIDENCE:.0f} % t interval; C1 below)", ""]
    for group, verdict in c1.group_verdicts.items():
        parts = [p for p in c1.parts if p.group == group]
        per_method = "; ".join(f"{p.label.split(' ')[0]} {diff.with_ci(p.comparison.diff)}" for p in parts)
        lines.append(f"- {group}: **{verdict}**" + (f" — {per_method}" if per_method else ""))
    if ev.has_equal_storage:
        bought = "; ".join(f"{m} {diff.with_ci(ev.headline.comparison(m, 'test_acc', against='ip', base=T.EQUAL_STORAGE, keys=['method', 'seed']).diff)}"
                           for m in ev.methods)
        lines.append(f"- what the FB entries buy (IP − IP_eq: the same IP with and without its FB entries charged "
                     f"to the budget): {bought}")
    return lines + [""]


def answer_section(ev: Evidence, results: Sequence[ClaimResult]) -> str:
    """The study's question under both accountings, then the claims grouped by verdict and one line per
    claim with its evidence."""
    by_verdict = {v: [r.claim_id for r in results if r.verdict == v] for v in VERDICTS}
    counts = "; ".join(f"{v}: {', '.join(ids)}" for v, ids in by_verdict.items() if ids)
    lines = ["## The answer", *_question(ev, results),
             f"At this scale ({_scale_text(ev)}) the claims come out as follows ({counts}). A part is supported "
             f"when its paired {100 * CONFIDENCE:.0f} % t interval lies on the claimed side (a claim on every part "
             f"needs no adjustment: intersection–union test), not supported when its Holm-adjusted interval lies "
             f"on the other side (see \"How a verdict is decided\"); the intervals below are the unadjusted "
             f"{100 * CONFIDENCE:.0f} % ones.", ""]
    for r in results:
        sets = "; ".join(f"{name}: {v}" for name, v in r.group_verdicts.items())
        lines.append(f"- **{r.claim_id}** {r.claim}: **{r.verdict}**" + (f" ({sets})" if sets else "")
                     + (f". {r.key_numbers}" if r.key_numbers else ""))
    return "\n".join(lines)


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def headline_table(ev: Evidence) -> str:
    """Per method at the headline sparsity: SP, IP, IP−SP [95 % CI] and, when run, IP_eq, IP_eq−SP [CI]."""
    runs = ev.headline
    table = T.accuracy_table(runs.frame, "test_acc")
    if table.empty:
        return f"{HEADLINE_TITLE}\n\nmissing (no summary table)."
    unit = "%" if ev.scale.factor == 100 else "fraction"
    cell_scale, diff_scale = Scale(ev.scale.factor, "", 2), Scale(ev.scale.factor, "", 2)
    equal_storage = ev.has_equal_storage

    def cell(row, rep):
        return cell_scale.mean_sd(Stats(int(row[f"{rep}_n"]), row[f"{rep}_mean"], row[f"{rep}_sd"]))

    def paired_cell(method, against, base="sp"):
        c = runs.comparison(method, "test_acc", against=against, base=base, keys=["method", "seed"])
        text = diff_scale.with_ci(c.diff) + (f" (n={c.diff.n})" if c.diff.n else "")
        return text + (f"; {c.excluded_disconnected} excluded: disconnected" if c.excluded_disconnected else "")

    header = ["method", "SP", "IP", "IP−SP"]
    if equal_storage:
        header += ["IP_eq", "IP_eq−SP", "IP−IP_eq"]
    rows = []
    for _, r in table.iterrows():
        row = [r["method"], cell(r, "sp"), cell(r, "ip"), paired_cell(r["method"], "ip")]
        if equal_storage:
            no_budget = r["method"] == "dense"   # a dense run keeps everything: no equal-storage twin
            row += (["–", "–", "–"] if no_budget else
                    [cell(r, T.EQUAL_STORAGE), paired_cell(r["method"], T.EQUAL_STORAGE),
                     paired_cell(r["method"], "ip", base=T.EQUAL_STORAGE)])
        rows.append(row)
    accountings = (f"IP: {T.ACCOUNTINGS['ip']}. " + (f"IP_eq: {T.ACCOUNTINGS[T.EQUAL_STORAGE]} (kept λ plus every FB "
                   "entry = SP's kept weights; dense runs have none). IP−IP_eq is what storing the FB entries on "
                   "top of SP's budget buys: IP keeps as many λ as SP keeps weights, IP_eq that many less the FB "
                   "entries, and both train their FBs." if equal_storage else "Equal storage: not run."))
    return (f"{HEADLINE_TITLE}\n\nTest accuracy ({unit}) at sparsity {fmt_sparsity(ev.sparsity)} (dense: none), "
            f"mean ± sd over seeds (n = seeds, every run); differences in {'pp' if unit == '%' else 'fractions'}: mean "
            f"of the paired per-seed differences over connected pairs with its {100 * CONFIDENCE:.0f} % Student-t "
            f"interval. {accountings} \"missing\" means the run is not in the summary table.\n\n"
            + _table(header, rows) + "\n\n" + collapse_note(runs.frame))


def collapse_note(runs: pd.DataFrame) -> str:
    """Which runs have a collapsed layer (a prunable layer with no kept entry) or are disconnected (no path
    from input to output), per method and representation: reported, not hidden (STUDY_SPEC §2)."""
    if runs.empty or "collapsed_layers" not in runs or runs["collapsed_layers"].isna().all():
        return "Layer collapse: not recorded."
    bits = []
    for (method, repr_), g in runs.groupby(["method", "repr"], sort=False):
        collapsed = g["collapsed_layers"].fillna(0)
        hit = int((collapsed > 0).sum())
        if hit:
            cut = int(T.is_disconnected(g).sum())
            bits.append(f"{method} {side_label(repr_)} {hit} of {len(g)} runs (at most {int(collapsed.max())} "
                        f"layer{'s' if collapsed.max() > 1 else ''}{f'; {cut} disconnected' if cut else ''})")
    disconnected = int(T.is_disconnected(runs).sum())
    return ("Layer collapse (a prunable layer left with no kept entry): "
            + ("; ".join(bits) if bits else "none") + f". Disconnected runs (no path from input to output; left "
            f"out of every comparison): {disconnected}.")


def dense_accuracy(summary: pd.DataFrame) -> str:
    """Mean SP test accuracy of the dense runs (the unpruned reference), e.g. '71.90 % (3 seeds)'."""
    dense = summary[(summary["method"] == "dense") & (summary["repr"] == "sp")]["test_acc"].dropna()
    if dense.empty:
        return "missing"
    factor = T.percent_scale(dense)
    return f"{dense.mean() * factor:.2f}{' %' if factor == 100 else ''} (SP, mean of {len(dense)} seeds)"
