"""C4 :func:`claim_c4`: IP costs the same as SP in runtime and parameters.

Two kinds of part: the training-step time of IP against SP in this study (equal if the
median IP/SP ratio is at most :data:`STEP_TIME_RATIO_MAX`, our threshold), and the
filter-basis overhead of the paper's networks against the paper's 0.01 %.  The FB share
and inference MACs of this study's (small) network are reported for information only.
"""
from __future__ import annotations

import pandas as pd

from .. import tables as T
from ..figures import CLAIM_FIGURES
from ..formatting import fmt, fmt_sparsity
from ..paper import CLAIMS, PAPER_FB_OVERHEAD_PERCENT
from ..stats import NOT_SUPPORTED, NOT_TESTED, SUPPORTED, combine, is_missing
from .evidence import ClaimResult, Part, numbers_of

#: a choice of this study: "equal runtime" means the median IP/SP training-step time ratio is at most this
STEP_TIME_RATIO_MAX = 1.10


def _runtime_part(summary: pd.DataFrame) -> Part:
    """Median over (method, seed) pairs of the IP/SP training-step time."""
    steps = T.paired(summary, "step_seconds", keys=["method", "seed"]) if len(summary) else pd.DataFrame()
    if not len(steps):
        return Part("runtime", NOT_TESTED, {}, None, "training step time: missing (no SP/IP pairs with "
                                                     "step_seconds in summary)")
    ratios = steps["step_seconds_ip"] / steps["step_seconds_sp"]
    median = float(ratios.median())
    v = SUPPORTED if median <= STEP_TIME_RATIO_MAX else NOT_SUPPORTED
    return Part("runtime", v, {"step_ratio_median": median, "step_ratio_min": float(ratios.min()),
                               "step_ratio_max": float(ratios.max()), "n_pairs": int(len(ratios))},
                None, f"training step time IP/SP: median {fmt(median, 3)} over {len(ratios)} pairs "
                      f"(range {fmt(ratios.min(), 3)}–{fmt(ratios.max(), 3)}); equal runtime means "
                      f"median ≤ {STEP_TIME_RATIO_MAX:.2f} (our threshold)")


def _paper_net_parts(t: T.Tables) -> list[Part]:
    """One part per paper-scale network: its FB overhead against the paper's 0.01 %."""
    ref = t.costs_reference.dropna(subset=["fb_overhead_percent"])
    if not len(ref):
        return [Part("paper nets", NOT_TESTED, {}, None,
                     f"FB overhead of the paper's nets: missing ({t.path_of('costs_reference')})")]
    parts = []
    for _, row in ref.iterrows():
        label = f"{row['model']}" + ("" if is_missing(row.get("width")) else f" (width {int(row['width'])})")
        if "share" in ref.columns and isinstance(row.get("share"), str):
            label += f", share={row['share']}"
        pct = float(row["fb_overhead_percent"])
        v = SUPPORTED if pct <= PAPER_FB_OVERHEAD_PERCENT else NOT_SUPPORTED
        parts.append(Part(label, v, {"fb_overhead_percent": pct, "fb_overhead_params": row["fb_overhead_params"],
                                     "dense_params": row["dense_params"]}, None,
                          f"{label}: FB overhead {fmt(row['fb_overhead_params'], 0)} of "
                          f"{fmt(row['dense_params'], 0)} dense parameters = {pct:.4g} % "
                          f"({'≤' if v == SUPPORTED else '>'} the paper's {PAPER_FB_OVERHEAD_PERCENT} %)"))
    return parts


def _own_network_info(t: T.Tables, numbers: dict) -> list[str]:
    """Costs in this study's own network, for information (the claim is about the paper's nets).

    Adds the numbers it reports to ``numbers``.
    """
    summary = t.summary
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
    return info


def claim_c4(t: T.Tables) -> ClaimResult:
    """C4: equal runtime (this study's step times) and the paper's FB overhead ≤ 0.01 % (paper-scale nets)."""
    parts = [_runtime_part(t.summary), *_paper_net_parts(t)]
    verdict = combine(p.verdict for p in parts)
    numbers = numbers_of(parts)
    info = _own_network_info(t, numbers)
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
