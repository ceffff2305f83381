"""Theorem 1 figure (fig. 7): gradient flow per mask, the pass/fail count of every numerical
check, and the loss after one gradient step (our formalisation, docs/theorem1.md).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from .. import tables as T
from ..formatting import fmt_sparsity
from .style import COLORS, MARKERS, RC, Drawn, all_positive, has_values, no_data, save


# --------------------------------------------------------------------------- (7) Theorem 1

#: the theorem1 stage's check of GF_IP >= GF_SP per mask; its rows give the pass/fail of each mask, and
#: when gf_masks.csv is absent they may carry value = GF_IP and reference = GF_SP (docs/results.md)
GF_CHECK = "gradient_flow"


def fig_theorem1(checks: pd.DataFrame, one_step: pd.DataFrame, out_stem, example: tuple | None = None,
                 gf_masks: pd.DataFrame | None = None) -> Drawn:
    with plt.rc_context(RC):
        fig, axes = plt.subplots(2, 2, figsize=(12, 9), layout="constrained")
        ax_gf, ax_pass, ax_step, ax_diff = axes.ravel()
        _draw_gf_scatter(ax_gf, checks, gf_masks)
        _draw_check_counts(ax_pass, checks)
        _draw_one_step_example(ax_step, one_step, example)
        _draw_one_step_differences(ax_diff, one_step)
        fig.suptitle("Theorem 1 (our formalisation, docs/theorem1.md): masked SP network vs its IP twin "
                     "(F = I, λ = w)")
        return save(fig, out_stem)


GF_RTOL = 1e-9   # the relative round-off tolerance of ip.theory.gradient_flow_comparison


def _gf_points(checks: pd.DataFrame, gf_masks: pd.DataFrame | None) -> pd.DataFrame:
    """(method, sparsity, value = GF_IP, reference = GF_SP, passed) per mask."""
    if gf_masks is not None and has_values(gf_masks, "gf_sp", "gf_ip"):
        pts = gf_masks.dropna(subset=["gf_sp", "gf_ip"]).rename(columns={"gf_ip": "value", "gf_sp": "reference"})
        keys = [k for k in ("method", "sparsity", "seed") if k in pts.columns]
        verdicts = (checks[checks["check"] == GF_CHECK] if len(checks) and "check" in checks.columns
                    else pd.DataFrame())
        if keys and not verdicts.empty and {"passed", *keys} <= set(verdicts.columns):
            # the stage's own verdict: GF_IP >= GF_SP up to float round-off (a disconnected net has GF_IP = GF_SP)
            return pts.merge(verdicts[[*keys, "passed"]].drop_duplicates(keys), on=keys, how="left")
        return pts.assign(passed=pts["value"] >= pts["reference"] * (1 - GF_RTOL))
    if not len(checks):
        return checks
    return checks[checks["check"] == GF_CHECK].dropna(subset=["value", "reference"])


def _draw_gf_scatter(ax, checks: pd.DataFrame, gf_masks: pd.DataFrame | None = None) -> None:
    gf = _gf_points(checks, gf_masks)
    ax.set_title("(b) gradient flow per mask: GF_IP vs GF_SP\n(above the diagonal: IP has more gradient flow)")
    if gf.empty:
        no_data(ax, "no gradient flow per mask (gf_masks table)")
        return
    methods = T.ordered_methods(gf["method"].dropna().unique())
    cmap = plt.get_cmap("tab10")
    for i, method in enumerate(methods):
        rows = gf[gf["method"] == method]
        ok = rows["passed"] != False  # noqa: E712
        ax.scatter(rows.loc[ok, "reference"], rows.loc[ok, "value"], s=22, color=cmap(i % 10), label=method,
                   alpha=0.8)
        if (~ok).any():
            ax.scatter(rows.loc[~ok, "reference"], rows.loc[~ok, "value"], s=60, marker="x", color="red")
    both = pd.concat([gf["value"], gf["reference"]]).astype(float)
    both = both[np.isfinite(both)]
    lo, hi = both.min(), both.max()
    if all_positive(both):
        ax.set_xscale("log")
        ax.set_yscale("log")
        lo, hi = lo / 1.5, hi * 1.5
    ax.plot([lo, hi], [lo, hi], color="#555555", linestyle="--", linewidth=1, label="GF_IP = GF_SP")
    if (gf["passed"] == False).any():  # noqa: E712
        ax.scatter([], [], s=60, marker="x", color="red", label="check failed")
    ax.set_xlabel("GF_SP = ‖m ⊙ ∇_w L‖²")
    ax.set_ylabel("GF_IP = ‖m ⊙ ∇_λ L‖² + Σ‖∇_F L‖²")
    ax.legend(fontsize=7, frameon=False, ncol=2)
    ax.grid(alpha=0.3)


def _draw_check_counts(ax, checks: pd.DataFrame) -> None:
    ax.set_title("All numerical checks: passed / failed per check")
    counts = T.check_counts(checks)
    if counts.empty:
        no_data(ax, "checks table is empty")
        return
    names = counts["check"].tolist()
    passed, failed, unknown = (counts[c].astype(int).tolist() for c in ("passed", "failed", "unknown"))
    y = np.arange(len(names))
    ax.barh(y, passed, color="#009E73", label="passed")
    ax.barh(y, failed, left=passed, color="#CC0000", label="failed")
    ax.barh(y, unknown, left=np.add(passed, failed), color="#BBBBBB", label="no pass/fail recorded")
    for yi, p, f, u in zip(y, passed, failed, unknown):
        ax.text(p + f + u, yi, f" {p}/{p + f + u}", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xlabel("number of checks (masks × sparsities × seeds)")
    ax.set_xlim(0, max(np.add(np.add(passed, failed), unknown)) * 1.12)
    ax.legend(frameon=False, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)


def _one_step_combos(one_step: pd.DataFrame) -> list[tuple]:
    rows = one_step.dropna(subset=["eta"]) if len(one_step) else one_step
    if rows.empty:
        return []
    combos = rows.groupby(["method", "sparsity", "seed"], dropna=False).size().reset_index()
    order = {m: i for i, m in enumerate(T.ordered_methods(combos["method"].dropna().unique()))}
    combos["_o"] = combos["method"].map(order)
    return [(r.method, r.sparsity, r.seed) for r in combos.sort_values(["_o", "sparsity", "seed"]).itertuples()]


def _one_step_rows(one_step: pd.DataFrame, combo: tuple) -> pd.DataFrame:
    method, sparsity, *rest = combo
    same = (one_step["method"] == method) & np.isclose(one_step["sparsity"].astype(float), float(sparsity),
                                                        equal_nan=True)
    if rest:
        same &= np.isclose(one_step["seed"].astype(float), float(rest[0]), equal_nan=True)
    return one_step[same].sort_values("eta")


def _draw_one_step_example(ax, one_step: pd.DataFrame, example: tuple | None) -> None:
    combos = _one_step_combos(one_step)
    if not combos:
        ax.set_title("(c) loss after one gradient step")
        no_data(ax, "one_step table is empty")
        return
    combo = tuple(example) if example is not None else combos[0]
    method, sparsity = combo[0], combo[1]
    rows = _one_step_rows(one_step, combo)
    for rep in T.REPRS:
        ax.plot(rows["eta"], rows[f"loss_{rep}"], color=COLORS[rep], marker=MARKERS[rep], markersize=4,
                label=f"{rep.upper()}: measured L(η)")
        ax.plot(rows["eta"], rows[f"pred_{rep}"], color=COLORS[rep], linestyle="--",
                label=f"{rep.upper()}: first order L − η·GF")
    ax.set_xscale("log")
    ax.set_xlabel("step size η")
    ax.set_ylabel("training loss after one step")
    ax.set_title(f"(c) loss after one gradient step ({method}, sparsity {fmt_sparsity(sparsity)})")
    ax.legend(frameon=False, fontsize=7)
    ax.grid(alpha=0.3)


def _draw_one_step_differences(ax, one_step: pd.DataFrame) -> None:
    combos = _one_step_combos(one_step)
    ax.set_title("(c) L_SP(η) − L_IP(η) for every mask (> 0: IP lower after the step)")
    if not combos:
        no_data(ax, "one_step table is empty")
        return
    methods = T.ordered_methods({c[0] for c in combos})
    cmap = plt.get_cmap("tab10")
    diffs = []
    for combo in combos:
        method = combo[0]
        rows = _one_step_rows(one_step, combo)
        d = rows["loss_sp"] - rows["loss_ip"]
        diffs.append(d)
        ax.plot(rows["eta"], d, color=cmap(methods.index(method) % 10), marker=".", linewidth=1, alpha=0.8)
    allv = pd.concat(diffs).abs()
    allv = allv[allv > 0]
    ax.set_yscale("symlog", linthresh=float(allv.min()) if len(allv) else 1e-8, linscale=3)
    ax.axhline(0, color="#555555", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("step size η")
    ax.set_ylabel("L_SP − L_IP (symmetric log scale)")
    ax.legend(handles=[Line2D([], [], color=cmap(i % 10), label=m) for i, m in enumerate(methods)],
              frameon=False, fontsize=7, ncol=2, title="mask (all sparsities)")
    ax.grid(alpha=0.3)
