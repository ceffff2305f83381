"""The accuracy claims: IP against SP in test accuracy.

- C1 :func:`claim_c1` IP beats SP for every pruning method, at the headline sparsity
- C2 :func:`claim_c2` the IP advantage grows with sparsity (sweep: highest vs lowest)
- C3 :func:`claim_c3` the advantage is larger on harder data (needs two datasets)
- C8 :func:`claim_c8` interspace representations also improve dense training
"""
from __future__ import annotations

from .. import tables as T
from ..figures import CLAIM_FIGURES
from ..formatting import Scale, accuracy_scale, describe, fmt, fmt_p, fmt_sparsity
from ..paper import CLAIMS
from ..stats import MIN_SEEDS, NOT_TESTED, combine, compare, compare_runs
from .evidence import ClaimResult, Part, missing_runs, numbers_of, per_method_parts, tally


def claim_c1(t: T.Tables) -> ClaimResult:
    """C1: at the headline sparsity, IP better than SP in test accuracy for every sparse method."""
    s = T.headline_sparsity(t)
    runs = T.at_sparsity(t.summary, s)
    methods = T.sparse_methods(runs)
    scale = accuracy_scale(runs)
    parts = per_method_parts(runs, methods, "test_acc", scale, "test accuracy")
    verdict = combine(p.verdict for p in parts)
    if not parts:
        expl = f"missing: no sparse runs in {t.path_of('summary')}"
    else:
        summary = (f"At sparsity {fmt_sparsity(s)}, test accuracy over seeds, methods: {tally(parts)}. "
                   f"Supported only if every method is.")
        expl = summary + " Per method: " + "; ".join(p.note for p in parts) + "."
    diff_scale = Scale(scale.factor, " pp", 2)
    key = "; ".join(f"{p.label} {diff_scale.diff(p.comparison.diff)} ({p.verdict})" for p in parts) or "missing"
    numbers = {"sparsity": s, **numbers_of(parts)}
    return ClaimResult("C1", CLAIMS["C1"], verdict, numbers, CLAIM_FIGURES["C1"], expl, parts,
                       f"IP−SP test acc. at s={fmt_sparsity(s)}: {key}", summary if parts else expl)


def claim_c2(t: T.Tables) -> ClaimResult:
    """C2: per method, the paired IP−SP advantage at the highest sweep sparsity against that at the lowest."""
    sweep = t.sweep
    methods = T.sparse_methods(sweep)
    parts = []
    scale = Scale(T.percent_scale(sweep["test_acc"]), " pp", 2)
    for method in methods:
        pairs = T.paired(sweep[sweep["method"] == method], "test_acc", keys=["method", "seed", "sparsity"])
        levels = sorted(pairs["sparsity"].dropna().unique())
        if len(levels) < 2:
            parts.append(Part(method, NOT_TESTED, {}, None,
                              f"{method}: SP/IP pairs at fewer than two sparsities"))
            continue
        lo, hi = levels[0], levels[-1]
        d_lo = pairs[pairs["sparsity"] == lo].set_index("seed")["diff"]
        d_hi = pairs[pairs["sparsity"] == hi].set_index("seed")["diff"]
        common = d_hi.index.intersection(d_lo.index)
        c = compare(d_hi, d_lo, (d_hi[common] - d_lo[common]).to_numpy(), metric="test_acc IP−SP",
                    a_label=f"s={fmt_sparsity(hi)}", b_label=f"s={fmt_sparsity(lo)}")
        outcome = {"a_better": "advantage larger at the highest sparsity",
                   "b_better": "advantage larger at the lowest sparsity",
                   "overlap": "±1 sd intervals overlap", "too_few_seeds": f"fewer than {MIN_SEEDS} seeds",
                   "missing": "missing"}[c.outcome]
        note = (f"{method}: IP−SP at s={fmt_sparsity(hi)} {scale.diff(c.a)} (n={c.a.n}) vs at "
                f"s={fmt_sparsity(lo)} {scale.diff(c.b)} (n={c.b.n}); change {scale.diff(c.diff)} "
                f"({fmt_p(c.p_value)}) → {outcome}")
        numbers = {"sparsity_low": lo, "sparsity_high": hi, "adv_high_mean": c.a.mean, "adv_high_sd": c.a.sd,
                   "adv_low_mean": c.b.mean, "adv_low_sd": c.b.sd, "change_mean": c.diff.mean,
                   "p_value": c.p_value}
        parts.append(Part(method, c.verdict, numbers, c, note))
    verdict = combine(p.verdict for p in parts)
    if not parts:
        expl = f"missing: no sweep runs in {t.path_of('sweep')}"
    else:
        summary = ("IP−SP test-accuracy advantage at the highest vs the lowest sweep sparsity, per method "
                   f"(same ±1 sd rule on the per-seed paired differences); methods: {tally(parts)}.")
        expl = summary + " Per method: " + "; ".join(p.note for p in parts) + "."
    key = "; ".join(f"{p.label} {scale.diff(p.comparison.b)} → {scale.diff(p.comparison.a)} ({p.verdict})"
                    for p in parts if p.comparison is not None) or "missing"
    return ClaimResult("C2", CLAIMS["C2"], verdict, numbers_of(parts), CLAIM_FIGURES["C2"], expl, parts,
                       f"IP−SP lowest → highest sparsity: {key}", summary if parts else expl)


def claim_c3(t: T.Tables) -> ClaimResult:
    """C3: the IP−SP advantage on the hardest dataset (lowest SP accuracy) against that on the easiest."""
    summary = t.summary
    datasets = sorted(summary["dataset"].dropna().unique()) if "dataset" in summary else []
    if len(datasets) < 2:
        name = T.meta_value(t.meta, "dataset", "data.name") or (datasets[0] if datasets else "missing")
        expl = (f"Not tested here: the study ran one dataset ({name}); the claim compares the IP advantage on "
                f"harder data (ImageNet) with easier data (CIFAR), which needs runs on at least two datasets "
                f"(a paper-scale preset per dataset).")
        return ClaimResult("C3", CLAIMS["C3"], NOT_TESTED, {"n_datasets": len(datasets) or (1 if name else 0)},
                           CLAIM_FIGURES["C3"], expl, [], f"one dataset ({name})")
    s = T.headline_sparsity(t)
    runs = T.at_sparsity(summary, s, keep_dense=False)
    runs = runs[runs["method"] != "dense"]
    sp_acc = runs[runs["repr"] == "sp"].groupby("dataset")["test_acc"].mean()
    hardest, easiest = sp_acc.idxmin(), sp_acc.idxmax()
    pairs = T.paired(runs, "test_acc", keys=["dataset", "method", "seed"])
    d_hard = pairs.loc[pairs["dataset"] == hardest, "diff"]
    d_easy = pairs.loc[pairs["dataset"] == easiest, "diff"]
    c = compare(d_hard, d_easy, (), metric="test_acc IP−SP", a_label=str(hardest), b_label=str(easiest))
    scale = Scale(T.percent_scale(runs["test_acc"]), " pp", 2)
    expl = (f"Harder = lower mean SP test accuracy: {hardest} (SP {fmt(sp_acc[hardest] * scale.factor)} %) vs "
            f"{easiest} (SP {fmt(sp_acc[easiest] * scale.factor)} %). IP−SP over methods and seeds: {hardest} "
            f"{scale.diff(c.a)} (n={c.a.n}), {easiest} {scale.diff(c.b)} (n={c.b.n}).")
    return ClaimResult("C3", CLAIMS["C3"], c.verdict, c.as_numbers(), CLAIM_FIGURES["C3"], expl,
                       [Part("datasets", c.verdict, c.as_numbers(), c, expl)],
                       f"IP−SP {hardest} {scale.diff(c.a)} vs {easiest} {scale.diff(c.b)}")


def claim_c8(t: T.Tables) -> ClaimResult:
    """C8: dense (unpruned) networks, IP better than SP in test accuracy."""
    dense = t.summary[t.summary["method"] == "dense"]
    scale = accuracy_scale(t.summary)
    c = compare_runs(dense, "test_acc")
    if c.outcome == "missing":
        expl = f"missing: dense {missing_runs(dense) or 'runs'} not in {t.path_of('summary')}"
    else:
        expl = describe(c, scale, "dense test accuracy")
    diff_scale = Scale(scale.factor, " pp", 2)
    return ClaimResult("C8", CLAIMS["C8"], c.verdict, c.as_numbers(), CLAIM_FIGURES["C8"], expl,
                       [Part("dense", c.verdict, c.as_numbers(), c, expl)],
                       f"dense IP−SP {diff_scale.diff(c.diff)}" if c.outcome != "missing" else "missing")
