"""The accuracy claims: IP against SP in test accuracy.

- C1 :func:`claim_c1` IP beats SP for every pruning method, at the headline sparsity (beside it, for
  information: a sign test over methods per accounting)
- C2 :func:`claim_c2` the IP advantage grows with sparsity (sweep: slope against −log10(1 − s))
- C3 :func:`claim_c3` the advantage is larger on harder data (needs two datasets)
- C8 :func:`claim_c8` interspace representations also improve dense training
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from .. import tables as T
from ..evidence import Evidence
from ..figures import CLAIM_FIGURES
from ..formatting import (Scale, collapse_bits, decision_text, fmt, fmt_level, fmt_sparsity, side_label,
                          verdict_label)
from ..paper import CLAIMS
from ..stats import (BOOTSTRAP_MIN_PAIRS, NOT_SUPPORTED, NOT_TESTED, SUPPORTED, Pairs, Stats, combine, compare,
                     is_missing)
from .parts import ClaimResult, Part, Pending, decide_parts, numbers_of, per_method_parts, tally, verdicts_by_group
from .schedules import mark_squeezed

#: what an equal-storage set of parts says when the study has no IP_eq runs
EQUAL_STORAGE_NOT_RUN = "not run"
#: how a part under equal storage is labelled: '<method> (equal storage)'
EQUAL_STORAGE_SUFFIX = " (equal storage)"


def accounting_label(against: str) -> str:
    """'IP vs SP (paper's accounting: …)' or 'IP_eq vs SP (equal storage)'."""
    return f"{against.upper().replace('IP_EQ', 'IP_eq')} vs SP ({T.ACCOUNTINGS[against]})"


def accounting_verdicts(parts, ev: Evidence) -> dict:
    """The verdict under each accounting; equal storage is 'not run' without IP_eq runs."""
    out = verdicts_by_group(parts, [accounting_label(a) for a in T.ACCOUNTINGS])
    if not ev.has_equal_storage:
        out[accounting_label(T.EQUAL_STORAGE)] = EQUAL_STORAGE_NOT_RUN
    return out


def pooled_sign_test(parts, against: str) -> dict:
    """Information beside C1, never a verdict: over the methods of one accounting (the parts whose group is
    ``against``'s), how many have a mean ``against``−SP difference above 0, below 0 and exactly 0 (a tie,
    left out), how many have no pairs, and the two-sided exact sign test over the methods that are not ties."""
    means = [p.comparison.diff.mean for p in parts
             if p.group == accounting_label(against) and p.comparison is not None]
    paired = [m for m in means if not is_missing(m)]
    higher, lower = sum(m > 0 for m in paired), sum(m < 0 for m in paired)
    n = higher + lower
    p_value = float(binomtest(higher, n, 0.5).pvalue) if n else math.nan
    return {"higher": higher, "lower": lower, "ties": len(paired) - n, "methods": n,
            "no_pairs": len(means) - len(paired), "sign_test_p": p_value}


def pooled_text(pooled: dict) -> str:
    """The pooled line beside C1: per accounting, k of n methods with IP higher and the sign test's p-value."""
    bits = []
    for against, d in pooled.items():
        name = side_label(against)
        extra = [f"{d['ties']} tie{'s' if d['ties'] != 1 else ''} (mean exactly 0) left out"] if d["ties"] else []
        extra += [f"{d['no_pairs']} without pairs"] if d["no_pairs"] else []
        p = f"p = {d['sign_test_p']:.3g}" if d["methods"] else "no method to test"
        bits.append(f"{name} vs SP: {name} higher in {d['higher']} of {d['methods']} methods"
                    + (f" ({'; '.join(extra)})" if extra else "") + f", two-sided exact sign test over methods {p}")
    return ("Pooled over methods (information, not a verdict; the verdict is the per-method rule above): "
            + "; ".join(bits) + ".")


def claim_c1(ev: Evidence) -> ClaimResult:
    """C1: for each accounting (STUDY_SPEC section 6), for each sparse method, the paired test-accuracy
    difference at the headline sparsity; each accounting's methods are one family of the intersection–union
    rule (Holm for a part shown to go the other way)."""
    parts, pending = [], []
    for against in ev.accountings:
        suffix = "" if against == "ip" else EQUAL_STORAGE_SUFFIX
        these = per_method_parts(ev.headline, "test_acc", ev.scale, f"test accuracy{suffix}", against=against,
                                 group=accounting_label(against), label_suffix=suffix)
        parts += decide_parts(these, ev.alpha)
        pending += these
    mark_squeezed(parts, ev.tables.meta, ev.headline.frame)
    by_accounting = accounting_verdicts(parts, ev)
    # overall, "under every accounting" is one claim over all their parts: supported if every part is (each at
    # its own 95 %), not supported only if a part goes the other way after Holm over all of them
    verdict = combine(p.verdict for p in decide_parts(pending, ev.alpha))
    pooled = {against: pooled_sign_test(parts, against) for against in ev.accountings}
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
        summary += " " + pooled_text(pooled)
        expl = summary + " Per method: " + "; ".join(p.note for p in parts) + "."
    diff_scale = Scale(ev.scale.factor, " pp", 2)
    key = "; ".join(f"{p.label} {diff_scale.with_ci(p.comparison.diff)} ({p.verdict})" for p in parts) or "missing"
    numbers = {"sparsity": s, **numbers_of(parts),
               **{f"pooled.{a}.{k}": v for a, d in pooled.items() for k, v in d.items()}}
    result = ClaimResult("C1", CLAIMS["C1"], verdict, numbers, CLAIM_FIGURES["C1"], expl, parts,
                         f"IP−SP test acc. at s={fmt_sparsity(s)}: {key}", summary, by_accounting)
    result.brief = f"per method: the table at the top (test accuracy at s={fmt_sparsity(s)})" if parts else "missing"
    return result


def advantage_by_seed(sweep: pd.DataFrame, method: str, against: str = "ip") -> tuple[pd.DataFrame, int]:
    """Per seed (rows) and sweep sparsity (columns): the paired ``against``−SP test-accuracy difference of
    ``method``, pairs with a disconnected run left out; and how many such pairs were left out."""
    pairs = Pairs.of(sweep[sweep["method"] == method], "test_acc", keys=["method", "seed", "sparsity"],
                     against=against)
    if pairs.connected.empty:
        return pd.DataFrame(), pairs.excluded_disconnected
    return (pairs.connected.pivot_table(index="seed", columns="sparsity", values="diff", aggfunc="first"),
            pairs.excluded_disconnected)


def decades(sparsity) -> np.ndarray:
    """x = −log10(1 − s): how many tenfold reductions of the kept fraction 1 − s a sparsity is (0.9 → 1,
    0.99 → 2), so that an advantage that grows with sparsity has a positive slope in x."""
    return -np.log10(1.0 - np.asarray(sparsity, dtype=float))


def sparsity_slopes(adv: pd.DataFrame) -> tuple[pd.Series, list]:
    """Per seed (a row of :func:`advantage_by_seed`), the least-squares slope of the advantage against
    :func:`decades` over that seed's points; and the seeds left out for having fewer than two points."""
    slopes, short = {}, []
    for seed, row in adv.iterrows():
        points = row.dropna()
        if len(points) < 2:
            short.append(seed)
            continue
        x, y = decades(points.index.to_numpy(dtype=float)), points.to_numpy(dtype=float)
        slopes[seed] = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
    return pd.Series(slopes, dtype=float), short


def slope_points(sweep: pd.DataFrame, method: str, against: str = "ip") -> tuple[pd.DataFrame, int, pd.Series, list]:
    """The points C2's slope of ``method`` under ``against`` reads, chosen once for the claim and its figures:
    the per-seed advantages (:func:`advantage_by_seed`), the pairs left out as disconnected, the per-seed slopes
    (:func:`sparsity_slopes`; their index is the seeds the slope uses) and the seeds left out for having
    connected pairs at fewer than two sparsities (e.g. a main run at the headline sparsity beyond the sweep's
    seeds)."""
    adv, excluded = advantage_by_seed(sweep, method, against)
    slopes, short = sparsity_slopes(adv) if len(adv) else (pd.Series(dtype=float), [])
    return adv, excluded, slopes, short


def c2_accountings(sweep: pd.DataFrame) -> list[str]:
    """The accountings C2 has slopes for: the representations compared with SP that the sweep ran (IP; IP_eq)."""
    return [a for a in T.reprs_present(sweep)[1:] if a in T.ACCOUNTINGS] if "repr" in sweep else []


def slope_runs(sweep: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """The rows of the sweep table (the headline sparsity's main runs included) that C2's slopes read, for the
    figures that show them (figs. 2 and 13): per sweep method and accounting, that accounting's runs of the seeds
    with a slope (:func:`slope_points`), at every sparsity, and SP's runs of the seeds of either accounting.  A
    seed left out of the slope (runs at one sparsity only) is left out here; a disconnected run of a kept seed
    stays, to be drawn apart and left out of the means as the slope leaves its pair out.  Where a method has no
    slope under an accounting (C2 leaves that part not tested), its runs under that accounting stay as recorded,
    with SP's; those (method, accounting) are returned beside the rows."""
    if sweep.empty or not {"method", "repr", "seed"} <= set(sweep.columns):
        return sweep, []
    keep = pd.Series(False, index=sweep.index)
    untested = []
    for method in T.sparse_methods(sweep):
        mine = sweep["method"] == method
        sp = mine & (sweep["repr"] == "sp")
        sp_seeds: set = set()
        for against in c2_accountings(sweep):
            side = mine & (sweep["repr"] == against)
            slopes = slope_points(sweep, method, against)[2]
            if slopes.empty:
                untested.append((method, against))
                seeds = set(sweep.loc[side | sp, "seed"].dropna())
            else:
                seeds = set(slopes.index)
            keep |= side & sweep["seed"].isin(seeds)
            sp_seeds |= seeds
        if not c2_accountings(sweep):
            sp_seeds = set(sweep.loc[sp, "seed"].dropna())
        keep |= sp & sweep["seed"].isin(sp_seeds)
    return sweep[keep], untested


def infeasible_sparsities(runs: pd.DataFrame, method: str, rep: str) -> list[float]:
    """The sparsities at which the sweep recorded ``rep`` of ``method`` as infeasible (IP_eq whose FB entries
    alone exceed the budget)."""
    if "infeasible" not in runs:
        return []
    flag = runs["infeasible"].map(lambda v: isinstance(v, str) and v.strip() != "")
    bad = runs[(runs["method"] == method) & (runs["repr"] == rep) & flag]
    return sorted(float(s) for s in bad["sparsity"].dropna().round(T.SPARSITY_DECIMALS).unique())


def storage_ratios(runs: pd.DataFrame, method: str, against: str, points: pd.DataFrame) -> pd.Series:
    """Per sparsity: mean stored parameters of ``against`` over those of SP, over the pairs in ``points``
    (seed × sparsity, True where the pair enters the slope)."""
    stored = T.paired(runs[runs["method"] == method], "stored_params", keys=["method", "seed", "sparsity"],
                      against=against)
    used = points.stack()
    used = set(used[used].index)
    stored = stored[[(seed, s) in used for seed, s in zip(stored["seed"], stored["sparsity"])]]
    if stored.empty:
        return pd.Series(dtype=float)
    means = stored.groupby("sparsity")[[f"stored_params_{against}", "stored_params_sp"]].mean()
    return means[f"stored_params_{against}"] / means["stored_params_sp"]


def collapsed_at(runs: pd.DataFrame, method: str, against: str, sparsity: float, seeds) -> str:
    """'; a layer lost: IP_eq 3 of 3 runs, SP 1 of 3' at one sweep point, over ``seeds`` (a prunable layer left
    with no kept entry); '' where no run lost one."""
    if "collapsed_layers" not in runs:
        return ""
    at = runs[(runs["method"] == method) & np.isclose(runs["sparsity"].astype(float), float(sparsity), rtol=0,
                                                      atol=10 ** -T.SPARSITY_DECIMALS) & runs["seed"].isin(seeds)]
    bits = []
    for rep in (against, "sp"):
        mine = at[at["repr"] == rep]["collapsed_layers"].fillna(0)
        if (mine > 0).any():
            bits.append(f"{side_label(rep)} {int((mine > 0).sum())} of {len(mine)} runs")
    return f"; a layer lost: {', '.join(bits)}" if bits else ""


def _slope_decision(c, scale: Scale) -> str:
    """The interval a slope's verdict rests on, and the verdict in words about the advantage."""
    d = c.decision
    if d.verdict == SUPPORTED:
        return f"→ supported (the {fmt_level(1 - d.alpha)} CI lies above 0: the advantage grows with sparsity)"
    if d.verdict == NOT_SUPPORTED:
        return (f"Holm {d.holm_rank}/{d.holm_m}: {fmt_level(1 - d.level)} CI {scale.interval(d.adjusted_ci)} → "
                "not supported (the advantage shrinks with sparsity)")
    return decision_text(c, scale)


def sweep_points(sweep: pd.DataFrame, headline: float | None) -> pd.DataFrame:
    """The sweep's runs at its own sparsities: the headline sparsity's rows (the main runs) left out."""
    if sweep.empty or headline is None:
        return sweep
    return sweep[~np.isclose(sweep["sparsity"].astype(float), float(headline), rtol=0,
                             atol=10 ** -T.SPARSITY_DECIMALS)]


#: the unit of a slope of IP−SP against −log10(1 − s)
SLOPE_UNIT = " pp/decade"


def claim_c2(ev: Evidence) -> ClaimResult:
    """C2: per sweep method and accounting, the slope of the paired IP−SP (IP_eq−SP) test-accuracy difference
    against x = −log10(1 − s) over every connected sweep point (the headline sparsity's main runs included):
    per seed the least-squares slope over that seed's points, the part their mean with its t interval (above
    0: the advantage grows with sparsity); all parts one family.  Each point's mean difference and storage
    ratio, and the change from the lowest to the highest sparsity, are printed for information."""
    sweep = ev.tables.sweep
    methods = T.sparse_methods(sweep)
    factor = T.percent_scale(sweep["test_acc"])
    scale = Scale(factor, " pp", 2)
    slope_scale = Scale(factor, SLOPE_UNIT, 2)
    accountings = c2_accountings(sweep)
    pending, not_tested, info = [], [], {}
    for against in accountings:
        suffix = "" if against == "ip" else " (equal storage)"
        name = side_label(against)
        for method in methods:
            label = f"{method}{suffix}"
            adv, excluded, slopes, short = slope_points(sweep, method, against)
            infeasible = infeasible_sparsities(sweep, method, against)
            dropped = []
            if infeasible:
                dropped.append(f"{len(infeasible)} point{'s' if len(infeasible) != 1 else ''} infeasible "
                               f"(s={', '.join(fmt_sparsity(s) for s in infeasible)}: the FB entries exceed the "
                               "budget)")
            if excluded:
                dropped.append(f"{excluded} pair{'s' if excluded != 1 else ''} disconnected")
            if short:
                dropped.append(f"{len(short)} seed{'s' if len(short) != 1 else ''} with fewer than two points "
                               f"(seed {', '.join(str(int(s)) if float(s).is_integer() else str(s) for s in short)})")
            left_out = "; left out: " + ", ".join(dropped) if dropped else ""
            group = accounting_label(against)
            levels = sorted(adv.columns) if len(adv) else []
            if len(levels) < 2 or slopes.empty:
                not_tested.append(Part(label, NOT_TESTED, {"n_infeasible": len(infeasible),
                                                           "excluded_disconnected": excluded}, None,
                                       f"{label}: connected {name}/SP pairs at fewer than two sparsities of any one "
                                       f"seed{left_out}",
                                       group))
                continue
            used = adv.loc[slopes.index]
            lo, hi = levels[0], levels[-1]
            # the ends, for information: over the seeds with a connected pair at both (the headline sparsity,
            # when it is an end, has more seeds than the sweep)
            both = adv[[lo, hi]].dropna()
            ends = compare(both[hi], both[lo], both[hi] - both[lo], a_label=f"s={fmt_sparsity(hi)}",
                           b_label=f"s={fmt_sparsity(lo)}")
            # the part: the per-seed slopes are its differences (decided as every part of §5); its two sides
            # are the advantages at the two ends, printed for information
            c = compare(both[hi], both[lo], slopes, metric=f"slope of test_acc {name}−SP against −log10(1 − s)",
                        a_label=f"s={fmt_sparsity(hi)}", b_label=f"s={fmt_sparsity(lo)}",
                        excluded_disconnected=excluded)
            ratios = storage_ratios(sweep, method, against, used.notna())
            per_point = [(s, Stats.of(used[s]), ratios.get(s, np.nan),
                          collapsed_at(sweep, method, against, s, used.index[used[s].notna()]))
                         for s in levels]
            pending.append(Pending(label, c, slope_scale, label, "advantage", group))
            info[label] = dict(against=against, lo=lo, hi=hi, ends=ends, per_point=per_point, left_out=left_out,
                               n_infeasible=len(infeasible), n_short=len(short))
    parts = decide_parts(pending, ev.alpha)
    testable = max((p.comparison.decision.holm_m for p in parts), default=0)
    for p in parts:
        i, c = info[p.label], p.comparison
        name = side_label(i["against"])
        points = "; ".join(f"s={fmt_sparsity(s)} {scale.diff(st)} (n={st.n}; storage {name}/SP "
                           f"{fmt(r, 3)}{lost})" for s, st, r, lost in i["per_point"])
        boot = f" (bootstrap {slope_scale.interval(c.diff.bootstrap)})" if c.diff.n >= BOOTSTRAP_MIN_PAIRS else ""
        p.note = (f"{p.label}: slope of {name}−SP against −log10(1 − s) {slope_scale.with_ci(c.diff)}{boot} "
                  f"(n={c.diff.n} seeds, each over its connected points){i['left_out']}; "
                  f"{_slope_decision(c, slope_scale)}. Per sparsity, mean {name}−SP over these seeds (storage "
                  f"{name}/SP): {points}. For information, the change from s={fmt_sparsity(i['lo'])} to "
                  f"s={fmt_sparsity(i['hi'])}: {scale.with_ci(i['ends'].diff)} (n={i['ends'].diff.n})")
        p.numbers.update({"slope_mean": c.diff.mean, "slope_ci_low": c.diff.ci[0], "slope_ci_high": c.diff.ci[1],
                          "n_seeds": c.diff.n, "n_seeds_short": i["n_short"], "n_infeasible": i["n_infeasible"],
                          "sparsity_low": i["lo"], "sparsity_high": i["hi"], "adv_high_mean": c.a.mean,
                          "adv_low_mean": c.b.mean, "change_mean": i["ends"].diff.mean,
                          "change_ci_low": i["ends"].diff.ci[0], "change_ci_high": i["ends"].diff.ci[1]})
        for s, st, r, _ in i["per_point"]:
            p.numbers.update({f"adv_mean@{fmt_sparsity(s)}": st.mean, f"storage_ratio@{fmt_sparsity(s)}": r})
    parts += not_tested
    mark_squeezed(parts, ev.tables.meta, sweep)
    verdict = combine(p.verdict for p in parts)
    by_accounting = verdicts_by_group(parts, [accounting_label(a) for a in T.ACCOUNTINGS])
    if T.EQUAL_STORAGE not in accountings:
        by_accounting[accounting_label(T.EQUAL_STORAGE)] = EQUAL_STORAGE_NOT_RUN
    if not parts:
        expl = summary = f"missing: no sweep runs in {ev.path_of('sweep')}"
    else:
        summary = ("Per sweep method and accounting, the slope of the paired test-accuracy difference (IP−SP; "
                   "IP_eq−SP) against x = −log10(1 − s), the number of tenfold reductions of the kept fraction "
                   "1 − s (0.9 → 1, 0.99 → 2): a positive slope means the advantage grows with sparsity. Per "
                   "seed, the least-squares slope over that seed's connected sweep points (the headline "
                   "sparsity's main runs included; infeasible points and pairs with a disconnected run left out "
                   "and counted); the part is the mean over seeds with its t interval, all parts one family "
                   f"(Holm over the {testable} testable parts for the other side); "
                   + "; ".join(f"{g}: {v}" for g, v in by_accounting.items()) + f" (parts: {tally(parts)}). "
                   "Beside each sparsity's mean difference: the storage ratio (mean stored parameters, IP or "
                   "IP_eq over SP); the change from the lowest to the highest sparsity is information, not part "
                   "of the verdict.")
        lost = collapse_bits(sweep_points(sweep, ev.sparsity), by_sparsity=True)
        summary += (" Layer collapse at the sweep's own points (a prunable layer left with no kept entry; such "
                    "runs stay in the slopes unless disconnected): " + ("; ".join(lost) if lost else "none") + ".")
        expl = summary + " Per method: " + "; ".join(p.note for p in parts) + "."
    key = "; ".join(f"{p.label} {slope_scale.with_ci(p.comparison.diff)} ({p.verdict})"
                    for p in parts if p.comparison is not None) or "missing"
    result = ClaimResult("C2", CLAIMS["C2"], verdict, numbers_of(parts), CLAIM_FIGURES["C2"], expl, parts,
                         f"slope of IP−SP per decade of 1/(1 − s): {key}", summary, by_accounting)
    result.brief = _c2_brief(parts, slope_scale, accountings)
    return result


def storage_ends(parts) -> str:
    """What IP stores over SP at the lowest and the highest sparsity of the slopes of ``parts`` (one accounting),
    e.g. 'IP stores 1.06× SP at s=0.9, 2.14× at 0.995'; per method where the methods differ."""
    ends = {}
    for p in parts:
        lo, hi = p.numbers.get("sparsity_low"), p.numbers.get("sparsity_high")
        if lo is None or hi is None:
            continue
        ratios = tuple(p.numbers.get(f"storage_ratio@{fmt_sparsity(s)}") for s in (lo, hi))
        if not any(is_missing(r) for r in ratios):
            ends[p.marked] = (lo, hi, *(fmt(r, 2) for r in ratios))
    if not ends:
        return ""
    text = [f"{label + ': ' if len(set(ends.values())) > 1 else ''}IP stores {r_lo}× SP at s={fmt_sparsity(lo)}, "
            f"{r_hi}× at {fmt_sparsity(hi)}" for label, (lo, hi, r_lo, r_hi) in ends.items()]
    return "; ".join(dict.fromkeys(text))


def _c2_brief(parts, slope_scale: Scale, accountings) -> str:
    """C2 in the claims table: per accounting the slopes with their labels (and where an interval lies on one side
    of 0 while Holm leaves the part inconclusive, that it does), and under the paper's accounting what IP stores
    over SP at the sweep's ends."""
    bits = []
    for against in accountings:
        these = [p for p in parts if p.group == accounting_label(against) and p.comparison is not None]
        if not these:
            continue
        slopes = "; ".join(f"{p.marked} {slope_scale.with_ci(p.comparison.diff)} ({verdict_label(p.comparison)})"
                           for p in these)
        stored = storage_ends(these) if against == "ip" else ""
        bits.append(slopes + (f"; {stored}" if stored else ""))
    return ("slope of IP−SP per decade of 1/(1 − s): " + "; ".join(bits)) if bits else "missing"


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
