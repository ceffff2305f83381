"""The accuracy claims: IP against SP in test accuracy.

- C1 :func:`claim_c1` IP beats SP for every pruning method, at the headline sparsity
- C2 :func:`claim_c2` the IP advantage grows with sparsity (sweep: highest vs lowest)
- C3 :func:`claim_c3` the advantage is larger on harder data (needs two datasets)
- C8 :func:`claim_c8` interspace representations also improve dense training
"""
from __future__ import annotations

import pandas as pd

from .. import tables as T
from ..evidence import Evidence
from ..figures import CLAIM_FIGURES
from ..formatting import Scale, fmt, fmt_sparsity
from ..paper import CLAIMS
from ..stats import NOT_TESTED, Pairs, combine, compare
from .parts import ClaimResult, Part, Pending, decide_parts, numbers_of, per_method_parts, tally, verdicts_by_group

#: what an equal-storage set of parts says when the study has no IP_eq runs
EQUAL_STORAGE_NOT_RUN = "not run"


def accounting_label(against: str) -> str:
    """'IP vs SP (paper's accounting: …)' or 'IP_eq vs SP (equal storage)'."""
    return f"{against.upper().replace('IP_EQ', 'IP_eq')} vs SP ({T.ACCOUNTINGS[against]})"


def accounting_verdicts(parts, ev: Evidence) -> dict:
    """The verdict under each accounting; equal storage is 'not run' without IP_eq runs."""
    out = verdicts_by_group(parts, [accounting_label(a) for a in T.ACCOUNTINGS])
    if not ev.has_equal_storage:
        out[accounting_label(T.EQUAL_STORAGE)] = EQUAL_STORAGE_NOT_RUN
    return out


def claim_c1(ev: Evidence) -> ClaimResult:
    """C1: for each accounting (STUDY_SPEC section 6), for each sparse method, the paired test-accuracy
    difference at the headline sparsity; each accounting's methods are one family of the intersection–union
    rule (Holm for a part shown to go the other way)."""
    parts, pending = [], []
    for against in ev.accountings:
        suffix = "" if against == "ip" else " (equal storage)"
        these = per_method_parts(ev.headline, "test_acc", ev.scale, f"test accuracy{suffix}", against=against,
                                 group=accounting_label(against), label_suffix=suffix)
        parts += decide_parts(these, ev.alpha)
        pending += these
    by_accounting = accounting_verdicts(parts, ev)
    # overall, "under every accounting" is one claim over all their parts: supported if every part is (each at
    # its own 95 %), not supported only if a part goes the other way after Holm over all of them
    verdict = combine(p.verdict for p in decide_parts(pending, ev.alpha))
    s = ev.sparsity
    if not parts:
        expl = summary = f"missing: no sparse runs in {ev.path_of('summary')}"
    else:
        summary = (f"At sparsity {fmt_sparsity(s)}, test accuracy, paired over seeds, per method; "
                   + "; ".join(f"{g}: {v}" for g, v in by_accounting.items())
                   + f" (parts: {tally(parts)}). Under an accounting the claim is supported only if every method "
                   "is; overall only if it is under every accounting run, and not supported overall only if a part "
                   f"goes the other way after Holm over the {len(parts)} parts of all accountings together: "
                   f"{verdict}.")
        expl = summary + " Per method: " + "; ".join(p.note for p in parts) + "."
    diff_scale = Scale(ev.scale.factor, " pp", 2)
    key = "; ".join(f"{p.label} {diff_scale.with_ci(p.comparison.diff)} ({p.verdict})" for p in parts) or "missing"
    numbers = {"sparsity": s, **numbers_of(parts)}
    return ClaimResult("C1", CLAIMS["C1"], verdict, numbers, CLAIM_FIGURES["C1"], expl, parts,
                       f"IP−SP test acc. at s={fmt_sparsity(s)}: {key}", summary, by_accounting)


def advantage_by_seed(sweep: pd.DataFrame, method: str) -> tuple[pd.DataFrame, int]:
    """Per seed (rows) and sweep sparsity (columns): the paired IP−SP test-accuracy difference of ``method``,
    pairs with a disconnected run left out; and how many such pairs were left out."""
    pairs = Pairs.of(sweep[sweep["method"] == method], "test_acc", keys=["method", "seed", "sparsity"])
    if pairs.connected.empty:
        return pd.DataFrame(), pairs.excluded_disconnected
    return (pairs.connected.pivot_table(index="seed", columns="sparsity", values="diff", aggfunc="first"),
            pairs.excluded_disconnected)


def claim_c2(ev: Evidence) -> ClaimResult:
    """C2: for each sweep method, per seed, the paired IP−SP advantage at the highest connected sweep sparsity
    minus that at the lowest; supported if that change is above 0."""
    sweep = ev.tables.sweep
    methods = T.sparse_methods(sweep)
    scale = Scale(T.percent_scale(sweep["test_acc"]), " pp", 2)
    pending, not_tested, compared_levels = [], {}, {}
    for method in methods:
        adv, excluded = advantage_by_seed(sweep, method)
        levels = sorted(adv.columns) if len(adv) else []
        if len(levels) < 2:
            not_tested[method] = f"{method}: connected SP/IP pairs at fewer than two sparsities"
            continue
        lo, hi = levels[0], levels[-1]
        compared_levels[method] = (lo, hi)
        # the seeds with a connected pair at both ends (the headline sparsity, when it is an end, has more
        # seeds than the sweep): the printed advantages at the two ends and their change use the same seeds
        both = adv[[lo, hi]].dropna()
        c = compare(both[hi], both[lo], both[hi] - both[lo], metric="test_acc IP−SP",
                    a_label=f"s={fmt_sparsity(hi)}", b_label=f"s={fmt_sparsity(lo)}", excluded_disconnected=excluded)
        pending.append(Pending(method, c, scale, f"{method}: IP−SP advantage at s={fmt_sparsity(hi)} vs "
                                                 f"s={fmt_sparsity(lo)}", "advantage"))
    parts = decide_parts(pending, ev.alpha)
    for p in parts:
        lo, hi = compared_levels[p.label]
        p.numbers.update({"sparsity_low": lo, "sparsity_high": hi, "adv_high_mean": p.comparison.a.mean,
                          "adv_low_mean": p.comparison.b.mean, "change_mean": p.comparison.diff.mean})
    parts += [Part(m, NOT_TESTED, {}, None, why) for m, why in not_tested.items()]
    verdict = combine(p.verdict for p in parts)
    if not parts:
        expl = summary = f"missing: no sweep runs in {ev.path_of('sweep')}"
    else:
        summary = ("Change of the paired IP−SP test-accuracy advantage from the lowest to the highest sweep "
                   f"sparsity, per method and seed (above 0: the advantage grows); methods: {tally(parts)}.")
        expl = summary + " Per method: " + "; ".join(p.note for p in parts) + "."
    key = "; ".join(f"{p.label} {scale.diff(p.comparison.b)} → {scale.diff(p.comparison.a)}, change "
                    f"{scale.with_ci(p.comparison.diff)} ({p.verdict})"
                    for p in parts if p.comparison is not None) or "missing"
    return ClaimResult("C2", CLAIMS["C2"], verdict, numbers_of(parts), CLAIM_FIGURES["C2"], expl, parts,
                       f"IP−SP lowest → highest sparsity: {key}", summary)


def claim_c3(ev: Evidence) -> ClaimResult:
    """C3: the IP−SP advantage on the hardest dataset (lowest SP accuracy) against that on the easiest."""
    summary = ev.tables.summary
    datasets = sorted(summary["dataset"].dropna().unique()) if "dataset" in summary else []
    if len(datasets) < 2:
        name = T.meta_value(ev.tables.meta, "dataset", "data.name") or (datasets[0] if datasets else "missing")
        expl = (f"Not tested here: the study ran one dataset ({name}); the claim compares the IP advantage on "
                f"harder data (ImageNet) with easier data (CIFAR), which needs runs on at least two datasets "
                f"(a paper-scale preset per dataset).")
        return ClaimResult("C3", CLAIMS["C3"], NOT_TESTED, {"n_datasets": len(datasets) or (1 if name else 0)},
                           CLAIM_FIGURES["C3"], expl, [], f"one dataset ({name})")
    runs = ev.headline.frame[ev.headline.frame["method"] != "dense"]
    sp_acc = runs[runs["repr"] == "sp"].groupby("dataset")["test_acc"].mean()
    hardest, easiest = sp_acc.idxmin(), sp_acc.idxmax()
    pairs = Pairs.of(runs, "test_acc", keys=["dataset", "method", "seed"])
    # the same method and seed on both datasets pair the two advantages
    adv = pairs.connected.pivot_table(index=["method", "seed"], columns="dataset", values="diff", aggfunc="first")
    d_hard, d_easy = adv.get(hardest, pd.Series(dtype=float)), adv.get(easiest, pd.Series(dtype=float))
    c = compare(d_hard, d_easy, (d_hard - d_easy).dropna(), metric="test_acc IP−SP", a_label=str(hardest),
                b_label=str(easiest), excluded_disconnected=pairs.excluded_disconnected)
    scale = Scale(T.percent_scale(runs["test_acc"]), " pp", 2)
    [part] = decide_parts([Pending("datasets", c, scale, f"IP−SP advantage {hardest} vs {easiest}",
                                   "advantage")], ev.alpha)
    expl = (f"Harder = lower mean SP test accuracy: {hardest} (SP {fmt(sp_acc[hardest] * scale.factor)} %) vs "
            f"{easiest} (SP {fmt(sp_acc[easiest] * scale.factor)} %); per method and seed, the IP−SP advantage "
            f"on {hardest} minus that on {easiest}. {part.note}.")
    return ClaimResult("C3", CLAIMS["C3"], part.verdict, part.numbers, CLAIM_FIGURES["C3"], expl, [part],
                       f"IP−SP {hardest} {scale.diff(c.a)} vs {easiest} {scale.diff(c.b)}; "
                       f"change {scale.with_ci(c.diff)}")


def claim_c8(ev: Evidence) -> ClaimResult:
    """C8: the paired IP−SP test-accuracy difference of the dense (unpruned) networks."""
    [part] = decide_parts(per_method_parts(ev.headline, "test_acc", ev.scale, "test accuracy", methods=["dense"]),
                          ev.alpha)
    key = f"dense IP−SP {Scale(ev.scale.factor, ' pp', 2).with_ci(part.comparison.diff)}" \
        if part.comparison.diff.n else "missing"
    return ClaimResult("C8", CLAIMS["C8"], part.verdict, part.numbers, CLAIM_FIGURES["C8"], part.note, [part], key)
