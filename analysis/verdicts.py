"""A verdict for each claim C1..C9 of STUDY_SPEC section 5, computed from the tables.

One rule decides every IP-vs-SP comparison over seeds (:func:`compare`):

* per-seed values of IP and of SP give mean and sample sd (ddof = 1);
* **IP better** if ``mean_IP - sd_IP > mean_SP + sd_SP`` (the +-1 sd intervals do not
  overlap), **SP better** if ``mean_SP - sd_SP > mean_IP + sd_IP``; otherwise the result
  is **inconclusive**; with fewer than 2 seeds on either side it is inconclusive too.
  For a metric where lower is better (generalisation gap) the roles of the bounds swap.
* the paired difference IP - SP (same method, seed, ...) is reported as mean +- sd with a
  paired t-test p-value (scipy) as extra information; it does not change the verdict.

Per part (a method, a phase): IP better -> supported, SP better -> not supported,
otherwise inconclusive; no data -> not tested here.  Parts are combined by
:func:`combine`: supported only if every part is supported, not supported if any part
is, not tested here if no part was tested, inconclusive otherwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from . import tables as T

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
NOT_TESTED = "not tested here"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_TESTED)

#: a choice of this study: "equal runtime" means the median IP/SP training-step time ratio is at most this
STEP_TIME_RATIO_MAX = 1.10
#: the paper's statement (introduction): all FBs together cost at most 0.01 % of the dense network's parameters
PAPER_FB_OVERHEAD_PERCENT = 0.01
#: fewer seeds than this on either side make a comparison inconclusive
MIN_SEEDS = 2

CLAIMS = {
    "C1": "IP beats SP for every tested pruning method (PaI, LT, DST, during/after training)",
    "C2": "the IP advantage grows with sparsity (largest at high sparsity)",
    "C3": "the advantage is larger on harder data (ImageNet vs CIFAR)",
    "C4": "equal runtime and parameter costs (FB overhead <= 0.01 % of dense parameters for the paper's nets)",
    "C5": "IP yields spatially dense filters after sparse training, SP sparse ones",
    "C6": "IP trains better: higher gradient flow (Thm 1 at init, empirically during training)",
    "C7": "at lower sparsity IP also generalises better (smaller gap)",
    "C8": "interspace representations also improve dense training",
    "C9": "Thm 1 holds numerically",
}

#: figure file stems (written by analysis.figures) that carry the evidence of each claim
FIGURES = {
    "accuracy": "fig1_accuracy",
    "sweep": "fig2_sweep",
    "filters": "fig3_filters",
    "gradient_flow": "fig4_gradient_flow",
    "hessian": "fig5_hessian",
    "generalisation": "fig6_generalisation",
    "theorem1": "fig7_theorem1",
    "ablation": "fig8_ablation",
    "costs": "fig9_costs",
}
CLAIM_FIGURES = {
    "C1": (FIGURES["accuracy"],),
    "C2": (FIGURES["sweep"],),
    "C3": (),
    "C4": (FIGURES["costs"],),
    "C5": (FIGURES["filters"],),
    "C6": (FIGURES["gradient_flow"], FIGURES["hessian"]),
    "C7": (FIGURES["generalisation"],),
    "C8": (FIGURES["ablation"], FIGURES["accuracy"]),
    "C9": (FIGURES["theorem1"],),
}


# --------------------------------------------------------------------------- the rule

@dataclass(frozen=True)
class Stats:
    n: int
    mean: float
    sd: float

    @classmethod
    def of(cls, values: Iterable[float]) -> "Stats":
        arr = np.asarray([v for v in values if v is not None and not _isnan(v)], dtype=float)
        if arr.size == 0:
            return cls(0, math.nan, math.nan)
        return cls(int(arr.size), float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan)


@dataclass(frozen=True)
class Comparison:
    """Outcome of the rule for ``a`` (IP, or the high-sparsity advantage) against ``b`` (SP, ...)."""
    metric: str
    a_label: str
    b_label: str
    a: Stats
    b: Stats
    diff: Stats            # paired a - b
    p_value: float         # paired t-test of the differences (NaN if not computable)
    higher_is_better: bool
    outcome: str           # "a_better" | "b_better" | "overlap" | "too_few_seeds" | "missing"

    @property
    def verdict(self) -> str:
        return {"a_better": SUPPORTED, "b_better": NOT_SUPPORTED, "overlap": INCONCLUSIVE,
                "too_few_seeds": INCONCLUSIVE, "missing": NOT_TESTED}[self.outcome]

    def as_numbers(self, prefix: str = "") -> dict:
        a, b = self.a_label, self.b_label
        return {f"{prefix}{a}_mean": self.a.mean, f"{prefix}{a}_sd": self.a.sd, f"{prefix}{a}_n": self.a.n,
                f"{prefix}{b}_mean": self.b.mean, f"{prefix}{b}_sd": self.b.sd, f"{prefix}{b}_n": self.b.n,
                f"{prefix}diff_mean": self.diff.mean, f"{prefix}diff_sd": self.diff.sd,
                f"{prefix}n_pairs": self.diff.n, f"{prefix}p_value": self.p_value}


def _isnan(value) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def rule(a: Stats, b: Stats, higher_is_better: bool = True) -> str:
    """The non-overlap rule (module docstring): 'a_better', 'b_better', 'overlap', 'too_few_seeds' or 'missing'."""
    if a.n == 0 or b.n == 0:
        return "missing"
    if a.n < MIN_SEEDS or b.n < MIN_SEEDS:
        return "too_few_seeds"
    sign = 1.0 if higher_is_better else -1.0
    a_lo, a_hi = sorted((sign * a.mean - a.sd, sign * a.mean + a.sd))
    b_lo, b_hi = sorted((sign * b.mean - b.sd, sign * b.mean + b.sd))
    if a_lo > b_hi:
        return "a_better"
    if b_lo > a_hi:
        return "b_better"
    return "overlap"


def paired_p_value(diffs: Sequence[float]) -> float:
    """Two-sided paired t-test of the differences against 0 (NaN for < 2 pairs or zero spread)."""
    arr = np.asarray([d for d in diffs if not _isnan(d)], dtype=float)
    if arr.size < 2 or np.allclose(arr, arr[0]):
        return math.nan
    return float(scipy_stats.ttest_1samp(arr, 0.0).pvalue)


def compare(a_values, b_values, diffs=(), *, metric: str = "", a_label: str = "ip", b_label: str = "sp",
            higher_is_better: bool = True) -> Comparison:
    a, b = Stats.of(a_values), Stats.of(b_values)
    diff = Stats.of(diffs)
    return Comparison(metric, a_label, b_label, a, b, diff, paired_p_value(diffs), higher_is_better,
                      rule(a, b, higher_is_better))


def compare_runs(runs: pd.DataFrame, metric: str, higher_is_better: bool = True,
                 keys: Sequence[str] | None = None) -> Comparison:
    """IP vs SP on ``metric`` over the runs in ``runs`` (one method, one sparsity, ...)."""
    ip = runs.loc[runs["repr"] == "ip", metric] if metric in runs else []
    sp = runs.loc[runs["repr"] == "sp", metric] if metric in runs else []
    pairs = T.paired(runs, metric, keys=keys) if len(runs) else pd.DataFrame(columns=["diff"])
    return compare(ip, sp, pairs["diff"], metric=metric, higher_is_better=higher_is_better)


def combine(verdicts: Iterable[str]) -> str:
    verdicts = list(verdicts)
    if not verdicts or all(v == NOT_TESTED for v in verdicts):
        return NOT_TESTED
    if any(v == NOT_SUPPORTED for v in verdicts):
        return NOT_SUPPORTED
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return INCONCLUSIVE


# --------------------------------------------------------------------------- results

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


# --------------------------------------------------------------------------- formatting (shared with the report)

def fmt(value, digits: int = 2) -> str:
    if _isnan(value):
        return "n/a"
    return f"{float(value):.{digits}f}"


def fmt_signed(value, digits: int = 2) -> str:
    if _isnan(value):
        return "n/a"
    return f"{float(value):+.{digits}f}"


def fmt_sci(value, digits: int = 2) -> str:
    if _isnan(value):
        return "n/a"
    return f"{float(value):.{digits}e}"


def fmt_p(p: float) -> str:
    if _isnan(p):
        return "p n/a"
    return f"p={p:.3g}"


def fmt_sparsity(s) -> str:
    return "n/a" if _isnan(s) else f"{float(s):g}"


class Scale:
    """How a metric is printed: a factor, a unit and a number format (accuracy: fraction -> %)."""

    def __init__(self, factor: float = 1.0, unit: str = "", digits: int = 2, sci: bool = False):
        self.factor, self.unit, self.digits, self.sci = factor, unit, digits, sci

    def value(self, x) -> str:
        f = fmt_sci if self.sci else fmt
        return f(x * self.factor if not _isnan(x) else x, self.digits) + self.unit

    def mean_sd(self, s: Stats) -> str:
        f = fmt_sci if self.sci else fmt
        if s.n == 0:
            return "missing"
        sd = f(s.sd * self.factor, self.digits) if not _isnan(s.sd) else "n/a"
        return f"{f(s.mean * self.factor, self.digits)} ± {sd}{self.unit} (n={s.n})"

    def diff(self, s: Stats) -> str:
        f = fmt_sci if self.sci else fmt_signed
        if s.n == 0:
            return "no pairs"
        sd = (fmt_sci if self.sci else fmt)(s.sd * self.factor, self.digits) if not _isnan(s.sd) else "n/a"
        return f"{f(s.mean * self.factor, self.digits)} ± {sd}{self.unit}"


def accuracy_scale(*frames: pd.DataFrame, column: str = "test_acc", diff: bool = False) -> Scale:
    factor = T.percent_scale(*[f[column] for f in frames if column in f])
    return Scale(factor, " pp" if diff else " %", 2)


def describe(c: Comparison, scale: Scale, what: str, better: str = "higher") -> str:
    """One sentence with the numbers of a comparison and the rule's outcome."""
    outcome = {"a_better": f"{c.a_label.upper()} {better} (±1 sd intervals do not overlap)",
               "b_better": f"{c.b_label.upper()} {better} (±1 sd intervals do not overlap)",
               "overlap": "±1 sd intervals overlap",
               "too_few_seeds": f"fewer than {MIN_SEEDS} seeds",
               "missing": "missing"}[c.outcome]
    diff_scale = Scale(scale.factor, " pp" if scale.unit.strip() == "%" else scale.unit, scale.digits, scale.sci)
    return (f"{what}: {c.a_label.upper()} {scale.mean_sd(c.a)}, {c.b_label.upper()} {scale.mean_sd(c.b)}; "
            f"paired {c.a_label.upper()}−{c.b_label.upper()} {diff_scale.diff(c.diff)} "
            f"(n={c.diff.n} pairs, {fmt_p(c.p_value)}) → {outcome}")


def _missing_runs(runs: pd.DataFrame) -> str:
    have = set(runs["repr"].dropna().unique())
    gone = [r.upper() for r in T.REPRS if r not in have]
    return ", ".join(gone)


def _per_method_parts(runs: pd.DataFrame, methods: Sequence[str], metric: str, scale: Scale, what: str,
                      higher_is_better: bool = True, better: str = "higher") -> list[Part]:
    parts = []
    for method in methods:
        sub = runs[runs["method"] == method]
        c = compare_runs(sub, metric, higher_is_better)
        note = describe(c, scale, f"{method} {what}", better)
        if c.outcome == "missing":
            note = f"{method}: {_missing_runs(sub) or 'values'} missing for {metric}"
        parts.append(Part(method, c.verdict, c.as_numbers(), c, note))
    return parts


def _tally(parts: Sequence[Part]) -> str:
    counts = {v: sum(p.verdict == v for p in parts) for v in VERDICTS}
    shown = [f"{v} {counts[v]}/{len(parts)}" for v in VERDICTS if counts[v]]
    return ", ".join(shown)


# --------------------------------------------------------------------------- claims

def claim_c1(t: T.Tables) -> ClaimResult:
    s = T.headline_sparsity(t)
    runs = T.at_sparsity(t.summary, s)
    methods = T.sparse_methods(runs)
    scale = accuracy_scale(runs)
    parts = _per_method_parts(runs, methods, "test_acc", scale, "test accuracy")
    verdict = combine(p.verdict for p in parts)
    if not parts:
        expl = f"missing: no sparse runs in {t.path_of('summary')}"
    else:
        summary = (f"At sparsity {fmt_sparsity(s)}, test accuracy over seeds, methods: {_tally(parts)}. "
                   f"Supported only if every method is.")
        expl = summary + " Per method: " + "; ".join(p.note for p in parts) + "."
    diff_scale = Scale(scale.factor, " pp", 2)
    key = "; ".join(f"{p.label} {diff_scale.diff(p.comparison.diff)} ({p.verdict})" for p in parts) or "missing"
    numbers = {"sparsity": s, **{f"{p.label}.{k}": v for p in parts for k, v in p.numbers.items()}}
    return ClaimResult("C1", CLAIMS["C1"], verdict, numbers, CLAIM_FIGURES["C1"], expl, parts,
                       f"IP−SP test acc. at s={fmt_sparsity(s)}: {key}", summary if parts else expl)


def claim_c2(t: T.Tables) -> ClaimResult:
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
                   f"(same ±1 sd rule on the per-seed paired differences); methods: {_tally(parts)}.")
        expl = summary + " Per method: " + "; ".join(p.note for p in parts) + "."
    key = "; ".join(f"{p.label} {scale.diff(p.comparison.b)} → {scale.diff(p.comparison.a)} ({p.verdict})"
                    for p in parts if p.comparison is not None) or "missing"
    numbers = {f"{p.label}.{k}": v for p in parts for k, v in p.numbers.items()}
    return ClaimResult("C2", CLAIMS["C2"], verdict, numbers, CLAIM_FIGURES["C2"], expl, parts,
                       f"IP−SP lowest → highest sparsity: {key}", summary if parts else expl)


def claim_c3(t: T.Tables) -> ClaimResult:
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


def claim_c4(t: T.Tables) -> ClaimResult:
    summary = t.summary
    parts = []
    # runtime: median over (method, seed) pairs of the IP/SP training-step time
    steps = T.paired(summary, "step_seconds", keys=["method", "seed"]) if len(summary) else pd.DataFrame()
    if len(steps):
        ratios = steps["step_seconds_ip"] / steps["step_seconds_sp"]
        median = float(ratios.median())
        v = SUPPORTED if median <= STEP_TIME_RATIO_MAX else NOT_SUPPORTED
        parts.append(Part("runtime", v, {"step_ratio_median": median, "step_ratio_min": float(ratios.min()),
                                         "step_ratio_max": float(ratios.max()), "n_pairs": int(len(ratios))},
                          None, f"training step time IP/SP: median {fmt(median, 3)} over {len(ratios)} pairs "
                                f"(range {fmt(ratios.min(), 3)}–{fmt(ratios.max(), 3)}); equal runtime means "
                                f"median ≤ {STEP_TIME_RATIO_MAX:.2f} (our threshold)"))
    else:
        parts.append(Part("runtime", NOT_TESTED, {}, None, "training step time: missing (no SP/IP pairs with "
                                                           "step_seconds in summary)"))
    # paper-scale nets: FB overhead against the paper's 0.01 %
    ref = t.costs_reference.dropna(subset=["fb_overhead_percent"])
    if len(ref):
        for _, row in ref.iterrows():
            label = f"{row['model']}" + ("" if _isnan(row.get("width")) else f" (width {int(row['width'])})")
            if "share" in ref.columns and isinstance(row.get("share"), str):
                label += f", share={row['share']}"
            pct = float(row["fb_overhead_percent"])
            v = SUPPORTED if pct <= PAPER_FB_OVERHEAD_PERCENT else NOT_SUPPORTED
            parts.append(Part(label, v, {"fb_overhead_percent": pct, "fb_overhead_params": row["fb_overhead_params"],
                                         "dense_params": row["dense_params"]}, None,
                              f"{label}: FB overhead {fmt(row['fb_overhead_params'], 0)} of "
                              f"{fmt(row['dense_params'], 0)} dense parameters = {pct:.4g} % "
                              f"({'≤' if v == SUPPORTED else '>'} the paper's {PAPER_FB_OVERHEAD_PERCENT} %)"))
    else:
        parts.append(Part("paper nets", NOT_TESTED, {}, None,
                          f"FB overhead of the paper's nets: missing ({t.path_of('costs_reference')})"))
    verdict = combine(p.verdict for p in parts)
    # our own (small) setting: information, not part of the verdict (the claim is about the paper's nets)
    numbers = {f"{p.label}.{k}": v for p in parts for k, v in p.numbers.items()}
    info = []
    s = T.headline_sparsity(t)
    ip_runs = T.at_sparsity(summary, s)
    ip_runs = ip_runs[(ip_runs["repr"] == "ip") & (ip_runs["method"] != "dense")]
    ip_runs = ip_runs.dropna(subset=["fb_overhead_params", "stored_params"])
    if len(ip_runs):
        share_stored = float((ip_runs["fb_overhead_params"] / ip_runs["stored_params"]).median())
        dense_params = ip_runs["total_params"] - ip_runs["fb_overhead_params"]
        share_dense = float((ip_runs["fb_overhead_params"] / dense_params).median())
        numbers.update({"ours.fb_share_of_stored": share_stored, "ours.fb_share_of_dense": share_dense})
        info.append(f"In this study's network at sparsity {fmt_sparsity(s)}, the FB entries are "
                    f"{fmt(100 * share_stored)} % of the parameters an IP network stores (median over IP runs) and "
                    f"{fmt(100 * share_dense, 3)} % of the dense parameters; see the fair-budget ablation")
    flops = T.paired(T.at_sparsity(summary, s), "flops_sparse", keys=["method", "seed"]) if len(summary) else []
    if len(flops):
        fr = float((flops["flops_sparse_ip"] / flops["flops_sparse_sp"]).median())
        numbers["ours.flops_ratio_median"] = fr
        info.append(f"Sparse-inference MACs IP/SP (factorised path): median {fmt(fr, 3)}")
    summary = (f"Runtime: median IP/SP training-step time ≤ {STEP_TIME_RATIO_MAX:.2f} counts as equal (our "
               f"threshold). Parameters: the FB overhead of the paper's networks against the paper's "
               f"{PAPER_FB_OVERHEAD_PERCENT} %. " + (". ".join(info) + "." if info else ""))
    expl = summary + " Parts: " + "; ".join(p.note for p in parts) + "."
    key_bits = []
    for p in parts:
        if not p.numbers:
            key_bits.append(f"{p.label}: missing")
        elif p.label == "runtime":
            key_bits.append(f"step time IP/SP median {fmt(p.numbers['step_ratio_median'], 3)}")
        else:
            key_bits.append(f"{p.label} FB {p.numbers['fb_overhead_percent']:.4g} %")
    key = "; ".join(key_bits)
    return ClaimResult("C4", CLAIMS["C4"], verdict, numbers, CLAIM_FIGURES["C4"], expl, parts, key, summary)


def _filter_density_runs(t: T.Tables) -> tuple[pd.DataFrame, str]:
    s = T.headline_sparsity(t)
    runs = T.at_sparsity(t.summary, s)
    if runs["filter_density"].notna().any():
        return runs, f"{t.path_of('summary')} (filter_density)"
    fd = t.filter_density
    if fd.empty:
        return runs, "missing"
    per_run = fd.groupby(["method", "repr", "seed"])["density"].mean().reset_index()
    return per_run.rename(columns={"density": "filter_density"}), f"{t.path_of('filter_density')} (mean over layers)"


def claim_c5(t: T.Tables) -> ClaimResult:
    runs, source = _filter_density_runs(t)
    methods = T.sparse_methods(runs) if len(runs) else []
    scale = Scale(100.0, " %", 1)
    parts = _per_method_parts(runs, methods, "filter_density", scale, "spatial filter density", True, "denser")
    verdict = combine(p.verdict for p in parts)
    if not parts or source == "missing":
        expl, verdict = f"missing: no filter densities ({t.path_of('filter_density')})", NOT_TESTED
        summary = expl
    else:
        summary = (f"Fraction of spatially non-zero entries of trained K×K filters, from {source}; "
                   f"methods: {_tally(parts)}.")
        expl = summary + " Per method: " + "; ".join(p.note for p in parts) + "."
    key = "; ".join(f"{p.label} SP {fmt(100 * p.comparison.b.mean, 1)} % / IP {fmt(100 * p.comparison.a.mean, 1)} %"
                    for p in parts if p.comparison is not None and p.comparison.outcome != "missing") or "missing"
    numbers = {f"{p.label}.{k}": v for p in parts for k, v in p.numbers.items()}
    return ClaimResult("C5", CLAIMS["C5"], verdict, numbers, CLAIM_FIGURES["C5"], expl, parts,
                       f"filter density: {key}", summary)


def claim_c6(t: T.Tables) -> ClaimResult:
    s = T.headline_sparsity(t)
    runs = T.at_sparsity(t.summary, s)
    methods = T.sparse_methods(runs)
    gf_scale = Scale(1.0, "", 2, sci=True)
    parts = []
    for p in _per_method_parts(runs, methods, "gf_init", gf_scale, "GF at init"):
        p.label = f"{p.label} @init"
        parts.append(p)
    train = T.history_means(t.history, "gf")
    for p in _per_method_parts(train, T.sparse_methods(train) if len(train) else [], "gf", gf_scale,
                               "mean GF over training epochs"):
        p.label = f"{p.label} @training"
        parts.append(p)
    if not len(train):
        parts.append(Part("training", NOT_TESTED, {}, None, f"GF during training: missing ({t.path_of('history')})"))
    verdict = combine(p.verdict for p in parts)
    init_parts = [p for p in parts if p.label.endswith("@init")]
    train_parts = [p for p in parts if p.label.endswith("@training")]
    summary = ("Gradient flow ‖g‖² over all trainable unpruned coordinates (IP: λ and F), at initialisation and "
               f"as the mean over training epochs ≥ 1; parts (method × phase): {_tally(parts)}. "
               + _hessian_info(t))
    expl = (summary + " At initialisation: " + ("; ".join(p.note for p in init_parts) or "missing")
            + ". During training: " + ("; ".join(p.note for p in train_parts) or "missing") + ".")

    def ratio(ps):
        vals = [p.comparison.a.mean / p.comparison.b.mean for p in ps
                if p.comparison is not None and p.comparison.a.n and p.comparison.b.n and p.comparison.b.mean]
        if not vals:
            return "missing"
        return f"median IP/SP {fmt(np.median(vals), 2)} over {len(vals)} method{'s' if len(vals) != 1 else ''}"

    key = f"GF init: {ratio(init_parts)} ({_tally(init_parts) or 'missing'}); training: {ratio(train_parts)} " \
          f"({_tally(train_parts) or 'missing'})"
    numbers = {f"{p.label}.{k}": v for p in parts for k, v in p.numbers.items()}
    return ClaimResult("C6", CLAIMS["C6"], verdict, numbers, CLAIM_FIGURES["C6"], expl, parts, key, summary)


def _hessian_info(t: T.Tables) -> str:
    """Top Hessian eigenvalue and trace, IP/SP, median over methods (information, not part of the verdict)."""
    h = t.hessian.dropna(subset=["value"])
    bits = []
    for kind, select in (("top eigenvalue", (h["kind"] == "eigenvalue") & (h["rank"] == 1)),
                         ("trace", h["kind"] == "trace")):
        for when in ("init", "final"):
            rows = h[select & (h["when"] == when)]
            means = rows.groupby(["method", "repr"])["value"].mean().unstack() if len(rows) else pd.DataFrame()
            if {"sp", "ip"} <= set(means.columns):
                ratio = (means["ip"] / means["sp"]).dropna()
                if len(ratio):
                    bits.append(f"{kind} {'at init' if when == 'init' else 'after training'} IP/SP median "
                                f"{fmt(ratio.median(), 2)} over {len(ratio)} method{'s' if len(ratio) != 1 else ''}")
    if not bits:
        return "Hessian spectra: missing."
    return "Hessian (information, fig. 5): " + "; ".join(bits) + "."


def claim_c7(t: T.Tables) -> ClaimResult:
    sweep = t.sweep.dropna(subset=["sparsity"])
    if sweep.empty:
        return ClaimResult("C7", CLAIMS["C7"], NOT_TESTED, {}, CLAIM_FIGURES["C7"],
                           f"missing: no sweep runs ({t.path_of('sweep')})", [], "missing")
    lowest = float(sweep["sparsity"].min())
    runs = T.at_sparsity(sweep, lowest, keep_dense=False)
    scale = Scale(T.percent_scale(runs["train_acc"], runs["test_acc"]), " pp", 2)
    parts = _per_method_parts(runs, T.sparse_methods(runs), "gap_acc", scale,
                              "gap train−test acc.", higher_is_better=False, better="smaller gap")
    verdict = combine(p.verdict for p in parts)
    loss = [compare_runs(runs[runs["method"] == m], "gap_loss", False) for m in T.sparse_methods(runs)]
    loss_txt = "; ".join(f"{m} IP−SP {Scale(1, '', 3).diff(c.diff)}" for m, c in zip(T.sparse_methods(runs), loss))
    summary = (f"Generalisation gap (train acc − test acc) at the lowest sweep sparsity {fmt_sparsity(lowest)}, "
               f"smaller is better; methods: {_tally(parts)}. Loss gap (test − train loss) IP−SP, for "
               f"information: {loss_txt or 'missing'}.")
    expl = summary + " Per method: " + "; ".join(p.note for p in parts) + "."
    key = "; ".join(f"{p.label} {scale.diff(p.comparison.diff)}" for p in parts if p.comparison) or "missing"
    numbers = {"sparsity": lowest, **{f"{p.label}.{k}": v for p in parts for k, v in p.numbers.items()}}
    return ClaimResult("C7", CLAIMS["C7"], verdict, numbers, CLAIM_FIGURES["C7"], expl, parts,
                       f"IP−SP acc. gap at s={fmt_sparsity(lowest)}: {key}", summary)


def claim_c8(t: T.Tables) -> ClaimResult:
    dense = t.summary[t.summary["method"] == "dense"]
    scale = accuracy_scale(t.summary)
    c = compare_runs(dense, "test_acc")
    if c.outcome == "missing":
        expl = f"missing: dense {_missing_runs(dense) or 'runs'} not in {t.path_of('summary')}"
    else:
        expl = describe(c, scale, "dense test accuracy")
    diff_scale = Scale(scale.factor, " pp", 2)
    return ClaimResult("C8", CLAIMS["C8"], c.verdict, c.as_numbers(), CLAIM_FIGURES["C8"], expl,
                       [Part("dense", c.verdict, c.as_numbers(), c, expl)],
                       f"dense IP−SP {diff_scale.diff(c.diff)}" if c.outcome != "missing" else "missing")


def one_step_ranges(one_step: pd.DataFrame) -> pd.DataFrame:
    """Per (method, sparsity): tested eta range, etas where L_IP <= L_SP, and the largest eta up to which it holds."""
    cols = ["method", "sparsity", "seed", "n_eta", "eta_min", "eta_max", "n_holds", "holds_min", "holds_max",
            "holds_up_to"]
    rows = []
    if one_step.empty:
        return pd.DataFrame(columns=cols)
    if "seed" not in one_step:
        one_step = one_step.assign(seed=np.nan)
    for (method, sparsity, seed), g in one_step.dropna(subset=["eta", "loss_sp", "loss_ip"]).groupby(
            ["method", "sparsity", "seed"], dropna=False):
        g = g.sort_values("eta")
        holds = (g["loss_ip"] <= g["loss_sp"]).to_numpy()
        etas = g["eta"].to_numpy()
        prefix = int(np.argmin(holds)) if not holds.all() else len(holds)
        rows.append({"method": method, "sparsity": sparsity, "seed": seed, "n_eta": len(etas), "eta_min": etas.min(),
                     "eta_max": etas.max(), "n_holds": int(holds.sum()),
                     "holds_min": etas[holds].min() if holds.any() else np.nan,
                     "holds_max": etas[holds].max() if holds.any() else np.nan,
                     "holds_up_to": etas[prefix - 1] if prefix > 0 else np.nan})
    return pd.DataFrame(rows, columns=cols)


def _gf_masks_info(t: T.Tables) -> str:
    gf = t.gf_masks.dropna(subset=["gf_sp", "gf_ip"])
    if gf.empty:
        return ""
    ratio = gf["gf_ip"] / gf["gf_sp"]
    return (f" Gradient flow per mask: GF_IP ≥ GF_SP on {int((gf['gf_ip'] >= gf['gf_sp']).sum())}/{len(gf)} masks, "
            f"GF_IP/GF_SP from {fmt(ratio.min(), 3)} to {fmt(ratio.max(), 3)}.")


def claim_c9(t: T.Tables) -> ClaimResult:
    checks = t.checks.dropna(subset=["check"])
    parts = []
    for name, g in checks.groupby("check", sort=True):
        passed = g["passed"]
        n_true = int((passed == True).sum())  # noqa: E712  (object column: True/False/None)
        n_false = int((passed == False).sum())  # noqa: E712
        n_unknown = len(g) - n_true - n_false
        v = NOT_SUPPORTED if n_false else (INCONCLUSIVE if n_unknown else SUPPORTED)
        note = f"{name}: {n_true}/{len(g)} passed" + (f", {n_unknown} without a pass/fail" if n_unknown else "")
        if n_false:
            failed = g[g["passed"] == False]  # noqa: E712
            where = ", ".join(f"{r.method} s={fmt_sparsity(r.sparsity)}" for r in failed.head(3).itertuples())
            note += f" (failed: {where}{'…' if n_false > 3 else ''})"
        parts.append(Part(name, v, {"n": len(g), "passed": n_true, "failed": n_false}, None, note))
    ranges = one_step_ranges(t.one_step)
    range_txt = []
    for r in ranges.itertuples():
        where = (f"L_IP ≤ L_SP for {r.n_holds}/{r.n_eta} η; for all η ≤ {r.holds_up_to:g}" if not _isnan(r.holds_up_to)
                 else f"L_IP ≤ L_SP for {r.n_holds}/{r.n_eta} η, not at the smallest")
        range_txt.append(f"{r.method} s={fmt_sparsity(r.sparsity)}: {where} (tested η {r.eta_min:g}–{r.eta_max:g})")
    verdict = combine(p.verdict for p in parts)
    summary = ("Theorem 1 as formalised in docs/theorem1.md (the paper's statement was not available). "
               + (f"Checks: {sum(p.numbers['passed'] for p in parts)}/{sum(p.numbers['n'] for p in parts)} passed."
                  if parts else f"Checks: missing ({t.path_of('checks')}).")
               + _gf_masks_info(t)
               + " One gradient step (information; the statement holds up to O(η²)): "
               + ("; ".join(range_txt) if range_txt else f"missing ({t.path_of('one_step')})") + ".")
    expl = summary + (" Per check: " + "; ".join(p.note for p in parts) + "." if parts else "")
    numbers = {f"{p.label}.{k}": v for p in parts for k, v in p.numbers.items()}
    for r in ranges.itertuples():
        numbers[f"one_step.{r.method}.{fmt_sparsity(r.sparsity)}.holds_up_to"] = r.holds_up_to
    n_total = sum(p.numbers["n"] for p in parts)
    n_pass = sum(p.numbers["passed"] for p in parts)
    key = (f"{n_pass}/{n_total} checks passed" if parts else "missing") + (
        f"; one step: L_IP ≤ L_SP for " + ", ".join(
            f"{r.method}@{fmt_sparsity(r.sparsity)} η ≤ {r.holds_up_to:g}" if not _isnan(r.holds_up_to)
            else f"{r.method}@{fmt_sparsity(r.sparsity)} none from the smallest η" for r in ranges.itertuples())
        if len(ranges) else "")
    return ClaimResult("C9", CLAIMS["C9"], verdict, numbers, CLAIM_FIGURES["C9"], expl, parts, key, summary)


CLAIM_FUNCTIONS = {"C1": claim_c1, "C2": claim_c2, "C3": claim_c3, "C4": claim_c4, "C5": claim_c5,
                   "C6": claim_c6, "C7": claim_c7, "C8": claim_c8, "C9": claim_c9}


def all_verdicts(t: T.Tables) -> list[ClaimResult]:
    return [fn(t) for fn in CLAIM_FUNCTIONS.values()]


def verdict_frame(results: Sequence[ClaimResult]) -> pd.DataFrame:
    return pd.DataFrame([{"claim_id": r.claim_id, "claim": r.claim, "verdict": r.verdict, "figure": r.figure,
                          "key_numbers": r.key_numbers, "explanation": r.explanation} for r in results])


def ablation_comparisons(t: T.Tables, metric: str = "test_acc") -> pd.DataFrame:
    """Each IP ablation variant against the SP runs of the same (method, seed, sparsity), by the same rule."""
    ab = t.ablation
    cols = ["method", "variant", "repr", "n", "mean", "sd", "sp_n", "sp_mean", "sp_sd", "diff_mean", "diff_sd",
            "n_pairs", "p_value", "verdict"]
    if ab.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (method, variant), g in ab[ab["repr"] == "ip"].groupby(["method", "variant"], sort=False, dropna=False):
        runs = pd.concat([g, sp_baseline(ab, method, variant)])
        c = compare_runs(runs, metric, keys=["method", "seed", "sparsity"])
        rows.append({"method": method, "variant": variant, "repr": "ip", "n": c.a.n, "mean": c.a.mean, "sd": c.a.sd,
                     "sp_n": c.b.n, "sp_mean": c.b.mean, "sp_sd": c.b.sd, "diff_mean": c.diff.mean,
                     "diff_sd": c.diff.sd, "n_pairs": c.diff.n, "p_value": c.p_value, "verdict": c.verdict})
    return pd.DataFrame(rows, columns=cols)


def sp_baseline(ablation: pd.DataFrame, method: str, variant=None) -> pd.DataFrame:
    """The SP runs an ablation variant is compared with: SP runs of the same variant if the table has
    them, else those labelled ``sp``, else every SP run of the method; one per (seed, sparsity)."""
    sp = ablation[(ablation["repr"] == "sp") & (ablation["method"] == method)]
    for choice in (sp[sp["variant"] == variant], sp[sp["variant"] == "sp"], sp):
        if len(choice):
            return choice.drop_duplicates(subset=["seed", "sparsity"])
    return sp
