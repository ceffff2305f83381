"""C4 :func:`claim_c4`: IP costs the same as SP in runtime and parameters.

Three sets of parts, each with its own verdict so that none hides which part fails:

- **runtime**: the training-step time of IP (and of IP_eq, when run) against SP in this
  study, equal if the median ratio over connected seed pairs is at most
  :data:`STEP_TIME_RATIO_MAX` (our threshold);
- **parameters, paper's accounting**: the filter-basis overhead of each paper-scale
  network and FB-sharing mode (:func:`paper_network_overheads`) against the paper's 0.01 %;
- **parameters, equal storage**: every IP_eq run stores no more numbers than its SP twin
  (kept λ plus FB entries ≤ SP's kept weights), or "not run".

The FB share of this study's (small) network and, per method at the headline sparsity, the
inference MACs of SP and of IP's factorised path (:func:`inference_macs`) are reported for
information.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from .. import tables as T
from ..evidence import Evidence, Runs
from ..figures import CLAIM_FIGURES
from ..formatting import fmt, fmt_sparsity, side_label
from ..paper import CLAIMS, PAPER_FB_OVERHEAD_PERCENT
from ..stats import NOT_SUPPORTED, NOT_TESTED, SUPPORTED, Pairs, combine, is_missing
from .accuracy import EQUAL_STORAGE_NOT_RUN
from .parts import ClaimResult, Part, numbers_of, verdicts_by_group

#: a choice of this study: "equal runtime" means the median IP/SP training-step time ratio is at most this
STEP_TIME_RATIO_MAX = 1.10

RUNTIME = "runtime"
PAPER_NETS = f"parameters, paper's accounting: FB overhead of the paper's networks ≤ {PAPER_FB_OVERHEAD_PERCENT} %"
EQUAL_STORAGE = "parameters, equal storage: IP_eq stores ≤ SP"


def runtime_pairs(summary: pd.DataFrame, against: Sequence[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """The sparse (method, seed) pairs whose SP run and run of every representation in ``against`` are connected
    and have a training-step time, one row each with ``step_seconds_<repr>`` per representation (so that every
    ratio to SP is over the same pairs; the dense runs are left out); and per representation how many of its
    pairs were left out as disconnected, and (key ``"untimed"``) how many connected pairs were left out because a
    run has no step time (a run resumed from a checkpoint written after its last step trains no step)."""
    sparse = summary[summary["method"] != "dense"]
    keys = ["method", "seed"]
    pairs = {a: Pairs.of(sparse, "step_seconds", keys=keys, against=a) for a in against}
    common = None
    for a, found in pairs.items():
        frame = found.connected[keys + [f"step_seconds_{a}", "step_seconds_sp"]]
        common = frame if common is None else common.merge(frame.drop(columns="step_seconds_sp"), on=keys)
    common = common if common is not None else pd.DataFrame(columns=keys + ["step_seconds_sp"])
    excluded = {a: found.excluded_disconnected for a, found in pairs.items()}
    reprs = ["sp", *against]
    runs = sparse[sparse["repr"].isin(reprs)]
    whole = runs.groupby(keys).filter(lambda g: set(g["repr"]) >= set(reprs) and not T.is_disconnected(g).any())
    excluded["untimed"] = int(whole.groupby(keys)["step_seconds"].apply(lambda v: v.isna().any()).sum()) \
        if len(whole) else 0
    return common, excluded


def _runtime_part(steps: pd.DataFrame, against: str, excluded: int = 0, untimed: int = 0) -> Part:
    """Median over the sparse pairs of :func:`runtime_pairs` of the ``against``/SP training-step time."""
    name = against.upper().replace("IP_EQ", "IP_eq")
    label = f"runtime {name}/SP"
    if not len(steps):
        return Part(label, NOT_TESTED, {}, None, f"training step time {name}/SP: missing (no connected sparse pairs "
                                                 "with step_seconds in summary)", RUNTIME)
    ratios = steps[f"step_seconds_{against}"] / steps["step_seconds_sp"]
    median = float(ratios.median())
    v = SUPPORTED if median <= STEP_TIME_RATIO_MAX else NOT_SUPPORTED
    dropped = (f"; {excluded} pairs excluded: disconnected" if excluded else "") + \
        (f"; {untimed} pairs left out: a run without a step time (resumed from a checkpoint written after its "
         "last step, it trained no step itself)" if untimed else "")
    return Part(label, v, {"step_ratio_median": median, "step_ratio_min": float(ratios.min()),
                           "step_ratio_max": float(ratios.max()), "n_pairs": int(len(ratios)),
                           "excluded_disconnected": excluded, "excluded_untimed": untimed}, None,
                f"training step time {name}/SP: median {fmt(median, 3)} over the {len(ratios)} sparse pairs "
                f"(range {fmt(ratios.min(), 3)}–{fmt(ratios.max(), 3)}{dropped}); equal runtime means "
                f"median ≤ {STEP_TIME_RATIO_MAX:.2f} (our threshold)", RUNTIME)


def paper_network_overheads(t: T.Tables) -> pd.DataFrame:
    """The paper-scale networks' FB overhead per FB-sharing mode, and whether it meets the paper's 0.01 %."""
    ref = T.with_share(t.costs_reference).dropna(subset=["fb_overhead_percent"])
    return ref.assign(meets_paper=ref["fb_overhead_percent"] <= PAPER_FB_OVERHEAD_PERCENT)


def _paper_net_parts(t: T.Tables) -> list[Part]:
    """One part per paper-scale network and FB-sharing mode: its FB overhead against the paper's 0.01 %."""
    ref = paper_network_overheads(t)
    if not len(ref):
        return [Part("paper nets", NOT_TESTED, {}, None,
                     f"FB overhead of the paper's nets: missing ({t.path_of('costs_reference')})", PAPER_NETS)]
    parts = []
    for _, row in ref.iterrows():
        label = f"{row['model']}" + ("" if is_missing(row.get("width")) else f" (width {int(row['width'])})")
        label += f", share={row['share']}"
        pct = float(row["fb_overhead_percent"])
        v = SUPPORTED if row["meets_paper"] else NOT_SUPPORTED
        parts.append(Part(label, v, {"fb_overhead_percent": pct, "fb_overhead_params": row["fb_overhead_params"],
                                     "dense_params": row["dense_params"]}, None,
                          f"{label}: FB overhead {fmt(row['fb_overhead_params'], 0)} of "
                          f"{fmt(row['dense_params'], 0)} dense parameters = {pct:.4g} % "
                          f"({'≤' if v == SUPPORTED else '>'} the paper's {PAPER_FB_OVERHEAD_PERCENT} %)",
                          PAPER_NETS))
    return parts


def _equal_storage_part(main: Runs) -> list[Part]:
    """IP_eq's stored numbers (kept λ + FB entries) against SP's kept weights, every connected pair."""
    if T.EQUAL_STORAGE not in main.reprs:
        return []
    summary = main.frame
    stored = Pairs.of(summary[summary["method"] != "dense"], "stored_params", keys=["method", "seed"],
                      against=T.EQUAL_STORAGE)
    pairs, excluded = stored.connected, stored.excluded_disconnected
    if not len(pairs):
        return [Part("equal storage", NOT_TESTED, {}, None, "IP_eq stored parameters: no connected pairs",
                     EQUAL_STORAGE)]
    over = pairs[f"stored_params_{T.EQUAL_STORAGE}"] > pairs["stored_params_sp"]
    v = NOT_SUPPORTED if over.any() else SUPPORTED
    ratio = pairs[f"stored_params_{T.EQUAL_STORAGE}"] / pairs["stored_params_sp"]
    return [Part("equal storage", v, {"n_pairs": int(len(pairs)), "n_over_budget": int(over.sum()),
                                      "stored_ratio_max": float(ratio.max()), "excluded_disconnected": excluded},
                 None, f"IP_eq stored/SP stored: max {fmt(ratio.max(), 3)} over {len(pairs)} pairs, "
                       f"{int(over.sum())} over SP's budget (IP_eq is built to store what SP stores: this part "
                       "checks the runs' records of that accounting, not a property of IP)", EQUAL_STORAGE)]


def _own_network_info(ev: Evidence, numbers: dict) -> list[str]:
    """Costs in this study's own network at the headline sparsity, for information (the claim is about the
    paper's nets).

    Adds the numbers it reports to ``numbers``.
    """
    info = []
    s, runs = ev.sparsity, ev.headline.frame
    ip_runs = runs[(runs["repr"] == "ip") & (runs["method"] != "dense")]
    ip_runs = ip_runs.dropna(subset=["fb_overhead_params", "stored_params"])
    if len(ip_runs):
        share_stored = float((ip_runs["fb_overhead_params"] / ip_runs["stored_params"]).median())
        dense_params = ip_runs["total_params"] - ip_runs["fb_overhead_params"]
        share_dense = float((ip_runs["fb_overhead_params"] / dense_params).median())
        numbers.update({"ours.fb_share_of_stored": share_stored, "ours.fb_share_of_dense": share_dense})
        info.append(f"In this study's network at sparsity {fmt_sparsity(s)}, the FB entries are "
                    f"{fmt(100 * share_stored)} % of the parameters an IP network stores (median over IP runs) and "
                    f"{fmt(100 * share_dense, 3)} % of the dense parameters; see the fair-budget ablation")
    macs = inference_macs(runs)
    if len(macs):
        numbers.update({f"macs.{r['method']}.{k}": v for r in macs.to_dict("records") for k, v in r.items()
                        if k != "method"})
        info.append(macs_text(macs, s))
    return info


def inference_macs(runs: pd.DataFrame) -> pd.DataFrame:
    """Per sparse method: the mean sparse-inference MACs per image (``flops_sparse``) of its SP, IP and IP_eq
    runs, and IP/SP, IP_eq/SP (ratios of the means).

    ``flops_sparse`` is :func:`ip.masks.cost_report`'s count: one MAC per kept weight per output pixel for SP;
    for an interspace conv, the factorised path (:class:`ip.factorised.FactorisedConv2d`: K² MACs per output
    pixel for each (input channel, basis filter) pair some kept coefficient uses, plus one per kept
    coefficient), so an IP run's number is the MACs of its factorised inference."""
    sparse = runs[(runs["method"] != "dense") & runs["flops_sparse"].notna()]
    if sparse.empty:
        return pd.DataFrame()
    means = sparse.groupby(["method", "repr"])["flops_sparse"].mean().unstack("repr")
    rows = []
    for method in T.ordered_methods(means.index):
        row = {"method": method}
        for rep in T.reprs_present(sparse):
            row[rep] = float(means.loc[method].get(rep, float("nan")))
        for rep in T.reprs_present(sparse)[1:]:
            row[f"{rep}_over_sp"] = row[rep] / row["sp"] if row["sp"] else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _millions(value) -> str:
    return "missing" if is_missing(value) else f"{fmt(float(value) / 1e6, 3)} M"


def macs_text(macs: pd.DataFrame, sparsity) -> str:
    """One line: per method, the mean MACs of SP, IP (IP_eq) and the ratios to SP."""
    reps = [c for c in macs.columns if c in T.REPRS + (T.EQUAL_STORAGE,)]
    per_method = []
    for r in macs.to_dict("records"):
        bits = [f"SP {_millions(r['sp'])}"]
        bits += [f"{side_label(rep)} {_millions(r[rep])} (×{fmt(r[f'{rep}_over_sp'], 3)})" for rep in reps[1:]
                 if not is_missing(r[rep])]
        per_method.append(f"{r['method']} " + ", ".join(bits))
    return (f"Inference MACs per image at sparsity {fmt_sparsity(sparsity)}, mean over runs (for information, not a "
            f"part of the verdict; IP and IP_eq counted along the factorised path, depthwise basis responses plus "
            f"the kept coefficients; × their ratio to SP): " + "; ".join(per_method))


def claim_c4(ev: Evidence) -> ClaimResult:
    """C4: runtime (median IP/SP training-step time ratio of every main run, per accounting run), parameters
    (the FB overhead of the paper's nets, both sharing modes; equal storage: IP_eq stores ≤ SP), each part apart;
    this study's own FB share and inference MACs for information."""
    main = ev.main
    steps, excluded = runtime_pairs(main.frame, main.reprs[1:])
    parts = [_runtime_part(steps, against, excluded[against], excluded["untimed"]) for against in main.reprs[1:]]
    parts += _paper_net_parts(ev.tables) + _equal_storage_part(main)
    verdict = combine(p.verdict for p in parts)
    by_set = verdicts_by_group(parts, (RUNTIME, PAPER_NETS, EQUAL_STORAGE))
    if not any(p.group == EQUAL_STORAGE for p in parts):
        by_set[EQUAL_STORAGE] = EQUAL_STORAGE_NOT_RUN
    numbers = numbers_of(parts)
    info = _own_network_info(ev, numbers)
    summary_text = ("; ".join(f"{name}: {v}" for name, v in by_set.items()) + ". "
                    f"Runtime: median training-step time ratio ≤ {STEP_TIME_RATIO_MAX:.2f} counts as equal (our "
                    f"threshold), over the sparse (method, seed) pairs in which every representation ran connected "
                    f"and recorded a step time (the dense runs left out). " + (". ".join(info) + "." if info else ""))
    expl = summary_text + " Parts: " + "; ".join(p.note for p in parts) + "."
    key_bits = []
    for p in parts:
        if not p.numbers:
            key_bits.append(f"{p.label}: missing")
        elif p.group == RUNTIME:
            key_bits.append(f"{p.label} median {fmt(p.numbers['step_ratio_median'], 3)} ({p.verdict})")
        elif p.group == PAPER_NETS:
            key_bits.append(f"{p.label} FB {p.numbers['fb_overhead_percent']:.4g} % ({p.verdict})")
        else:
            key_bits.append(f"{p.label}: {p.numbers['n_over_budget']}/{p.numbers['n_pairs']} over ({p.verdict})")
    result = ClaimResult("C4", CLAIMS["C4"], verdict, numbers, CLAIM_FIGURES["C4"], expl, parts,
                         "; ".join(key_bits), summary_text, by_set)
    result.brief = _brief(parts)
    return result


def _brief(parts) -> str:
    """C4 in one line: the runtime medians, how many paper nets meet the paper's overhead, equal storage."""
    runtime = [p for p in parts if p.group == RUNTIME and p.numbers]
    bits = [", ".join(f"{p.label} median {fmt(p.numbers['step_ratio_median'], 3)}" for p in runtime)
            + f" over the {runtime[0].numbers['n_pairs']} sparse pairs with step times"] if runtime else []
    nets = [p for p in parts if p.group == PAPER_NETS and p.numbers]
    if nets:
        bits.append(f"FB overhead ≤ {PAPER_FB_OVERHEAD_PERCENT} % for {sum(p.verdict == SUPPORTED for p in nets)} of "
                    f"{len(nets)} paper networks × FB-sharing modes")
    bits += [f"IP_eq stores more than SP in {p.numbers['n_over_budget']} of {p.numbers['n_pairs']} pairs"
             for p in parts if p.group == EQUAL_STORAGE and p.numbers]
    return "; ".join(bits) or "missing"
