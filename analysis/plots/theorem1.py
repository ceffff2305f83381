"""Theorem 1 figure (fig. 7): the pass/fail count of every numerical check, and how large IP's edge is
per mask, in gradient flow and in the loss after one gradient step (our formalisation,
docs/theorem1.md).  Both edges are drawn relative to SP's own value, on linear axes with a line at 0,
so that a few-percent effect and its sign stay visible.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from .. import tables as T
from ..formatting import fmt_sparsity
from .style import RC, Drawn, has_values, no_data, save

# --------------------------------------------------------------------------- (7) Theorem 1

#: the theorem1 stage's check of GF_IP >= GF_SP per mask; its rows give the pass/fail of each mask, and
#: when gf_masks.csv is absent they may carry value = GF_IP and reference = GF_SP (docs/results.md)
GF_CHECK = "gradient_flow"
GF_RTOL = 1e-9   # the relative round-off tolerance of ip.theory.gradient_flow_comparison
#: the y quantity of panels (b)–(d), in % of SP's own value
EDGE_LABEL = "IP's edge, % of SP's"
LINESTYLES = ("-", "--", ":", "-.")


def fig_theorem1(checks: pd.DataFrame, one_step: pd.DataFrame, out_stem, gf_masks: pd.DataFrame | None = None,
                 sparsity: float | None = None) -> Drawn:
    """Fig. 7: (a) the checks passed/failed; (b) per mask GF_IP / GF_SP − 1; (c) at ``sparsity`` (default: the
    sparsity with masks of the most methods) and (d) at every other sparsity, the loss after one gradient step
    of size η as (L_SP − L_IP) / (η·GF_SP): IP's extra decrease in % of SP's first-order decrease, which
    tends to (b) as η → 0.  Panels (b)–(d) share one linear y-axis with a line at 0 (above: IP ahead)."""
    with plt.rc_context(RC):
        fig, axes = plt.subplots(2, 2, figsize=(12.5, 9.5), layout="constrained")
        ax_pass, ax_gf, ax_head, ax_rest = axes.ravel()
        _draw_check_counts(ax_pass, checks)
        steps = one_step_edges(one_step, gf_masks)
        head = headline_sparsity(steps if len(steps) else _gf_points(checks, gf_masks), sparsity)
        colors = _method_colors(steps, _gf_points(checks, gf_masks))
        shared = [ax for ax, drawn in ((ax_gf, _draw_gf_edges(ax_gf, checks, gf_masks, colors, head)),
                                       (ax_head, _draw_one_step_headline(ax_head, steps, head, colors)),
                                       (ax_rest, _draw_one_step_sweep(ax_rest, steps, head))) if drawn]
        if shared:
            low = min(ax.get_ylim()[0] for ax in shared)
            high = max(ax.get_ylim()[1] for ax in shared)
            for ax in shared:
                ax.set_ylim(low, high)
        fig.suptitle("Theorem 1 (our formalisation, docs/theorem1.md): masked SP network vs its IP twin "
                     "(F = I, λ = w)\n(b)–(d): IP's edge relative to SP on one linear scale; above 0: IP ahead")
        return save(fig, out_stem)


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


def headline_sparsity(rows: pd.DataFrame, sparsity: float | None = None) -> float | None:
    """``sparsity`` when given, else the sparsity with masks of the most methods (ties: the highest)."""
    if sparsity is not None:
        return float(sparsity)
    if not has_values(rows, "sparsity", "method"):
        return None
    counts = rows.dropna(subset=["sparsity"]).groupby("sparsity")["method"].nunique()
    return float(max(counts.index, key=lambda s: (counts[s], s)))


def _method_colors(*frames: pd.DataFrame) -> dict:
    names = set()
    for f in frames:
        if len(f) and "method" in f:
            names |= set(f["method"].dropna())
    cmap = plt.get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(T.ordered_methods(names))}


def _at(rows: pd.DataFrame, sparsity: float | None) -> pd.Series:
    if sparsity is None:
        return pd.Series(False, index=rows.index)
    return pd.Series(np.isclose(rows["sparsity"].astype(float), sparsity), index=rows.index)


def _draw_gf_edges(ax, checks: pd.DataFrame, gf_masks: pd.DataFrame | None, colors: dict,
                   head: float | None) -> bool:
    """(b) per mask GF_IP / GF_SP − 1 in %: methods along x; a method's masks from its lowest to its highest
    sparsity left to right (the tick says which), joined by a thin line, the headline mask filled; a failed
    check as a red cross."""
    ax.set_title("(b) gradient flow per mask at initialisation: GF_IP / GF_SP − 1\n"
                 "(Theorem 1 (b): ≥ 0 on every mask)")
    gf = _gf_points(checks, gf_masks)
    if len(gf):
        gf = gf[gf["reference"].astype(float) > 0]
    if gf.empty:
        no_data(ax, "no gradient flow per mask (gf_masks table)")
        return False
    gf = gf.assign(edge=100 * (gf["value"].astype(float) / gf["reference"].astype(float) - 1))
    methods = T.ordered_methods(gf["method"].dropna().unique())
    ticks = []
    for i, method in enumerate(methods):
        rows = gf[gf["method"] == method].sort_values(["sparsity", "seed"] if "seed" in gf else ["sparsity"])
        xs = i + (np.linspace(-0.32, 0.32, len(rows)) if len(rows) > 1 else np.zeros(1))
        at_head = _at(rows, head).to_numpy()
        if len(rows) > 1:
            ax.plot(xs, rows["edge"], color=colors[method], linewidth=0.8, alpha=0.6, zorder=2)
        ax.scatter(xs[at_head], rows.loc[at_head, "edge"], s=40, color=colors[method], zorder=3)
        ax.scatter(xs[~at_head], rows.loc[~at_head, "edge"], s=26, facecolors="white", edgecolors=colors[method],
                   zorder=3)
        failed = (rows["passed"] == False).to_numpy()  # noqa: E712
        if failed.any():
            ax.scatter(xs[failed], rows.loc[failed, "edge"], s=70, marker="x", color="red", zorder=4)
        found = rows["sparsity"].dropna().unique()
        ticks.append(f"{method}\n{fmt_sparsity(found.min())} → {fmt_sparsity(found.max())}" if len(found) > 1
                     else method)
    ax.axhline(0, color="#555555", linewidth=0.8)
    ax.set_xticks(range(len(methods)))
    rotate = len(methods) > 12
    ax.set_xticklabels(ticks, rotation=30 if rotate else 0, ha="right" if rotate else "center", fontsize=7.5)
    ax.set_xlim(-0.6, len(methods) - 0.4)
    ax.set_ylabel("GF_IP / GF_SP − 1 (%)")
    handles = [Line2D([], [], marker="o", color="0.3", linestyle="",
                      label=f"mask at sparsity {fmt_sparsity(head)}" if head is not None else "mask"),
               Line2D([], [], marker="o", color="0.3", markerfacecolor="white", linestyle="-", linewidth=0.8,
                      label="its masks at other sparsities, from low (left) to high (right)")]
    if (gf["passed"] == False).any():  # noqa: E712
        handles.append(Line2D([], [], marker="x", color="red", linestyle="", label="check failed"))
    ax.legend(handles=handles, frameon=False, fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.17))
    ax.grid(alpha=0.3, axis="y")
    return True


def _draw_check_counts(ax, checks: pd.DataFrame) -> None:
    ax.set_title("(a) all numerical checks: passed / failed per check")
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


def one_step_edges(one_step: pd.DataFrame, gf_masks: pd.DataFrame | None = None) -> pd.DataFrame:
    """The one-step table with ``edge`` = 100 (L_SP − L_IP) / (η·GF_SP) per row: IP's extra loss decrease after
    one gradient step, in % of SP's first-order decrease.  GF_SP is the slope of the stored first-order
    prediction L − η·GF_SP over the mask's step sizes (or gf_masks' value when it has one step size); a mask
    without it, or with GF_SP = 0, is left out."""
    cols = ["method", "sparsity", "seed", "eta", "loss_sp", "loss_ip"]
    if not has_values(one_step, "eta", "loss_sp", "loss_ip"):
        return pd.DataFrame(columns=cols + ["gf_sp", "edge"])
    rows = one_step.dropna(subset=["eta", "loss_sp", "loss_ip"])
    frames = []
    for key, g in rows.groupby(["method", "sparsity", "seed"], dropna=False):
        g = g.sort_values("eta")
        gf_sp = np.nan
        fit = g.dropna(subset=["pred_sp"]) if "pred_sp" in g else g.iloc[:0]
        if fit["eta"].nunique() >= 2:
            gf_sp = -float(np.polyfit(fit["eta"].astype(float), fit["pred_sp"].astype(float), 1)[0])
        elif gf_masks is not None and has_values(gf_masks, "gf_sp"):
            match = gf_masks[(gf_masks["method"] == key[0])
                             & np.isclose(gf_masks["sparsity"].astype(float), float(key[1]), equal_nan=True)]
            if len(match):
                gf_sp = float(match["gf_sp"].iloc[0])
        frames.append(g.assign(gf_sp=gf_sp))
    out = pd.concat(frames, ignore_index=True)
    out = out[out["gf_sp"] > 0]
    edge = 100 * (out["loss_sp"] - out["loss_ip"]) / (out["eta"] * out["gf_sp"])
    return out.assign(edge=edge)[np.isfinite(edge)]


#: how a step size at which SP's loss is the lower one is marked in panels (c) and (d)
BELOW = dict(marker="v", s=30, facecolors="white", linewidths=1.1, zorder=4)
BELOW_LABEL = "below 0: SP's loss lower after the step"


def _mark_below(ax, g: pd.DataFrame, color) -> bool:
    """Mark the step sizes of one mask at which IP's edge is below 0; returns whether there was one."""
    below = g[g["edge"] < 0]
    if len(below):
        ax.scatter(below["eta"], below["edge"], edgecolors=[color], **BELOW)
    return bool(len(below))


def _below_handle() -> Line2D:
    return Line2D([], [], marker="v", color="0.3", markerfacecolor="white", linestyle="", label=BELOW_LABEL)


def _one_step_axes(ax) -> None:
    ax.axhline(0, color="#555555", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("step size η (log scale)")
    ax.set_ylabel("(L_SP − L_IP) / (η·GF_SP) (%)")
    ax.grid(alpha=0.3)


def _draw_one_step_headline(ax, steps: pd.DataFrame, head: float | None, colors: dict) -> bool:
    """(c) one line per method at the headline sparsity (every seed of it)."""
    where = f"sparsity {fmt_sparsity(head)}" if head is not None else "one mask per method"
    ax.set_title(f"(c) loss after one gradient step, {where}: L_SP − L_IP\n"
                 "in % of SP's first-order decrease η·GF_SP (→ (b) as η → 0)")
    rows = steps[_at(steps, head)] if len(steps) else steps
    if rows.empty:
        no_data(ax, "one_step table has no mask at this sparsity")
        return False
    methods = T.ordered_methods(rows["method"].dropna().unique())
    below = False
    for method in methods:
        for _, g in rows[rows["method"] == method].groupby("seed", dropna=False):
            ax.plot(g["eta"], g["edge"], color=colors[method], marker=".", linewidth=1.2, alpha=0.9)
            below |= _mark_below(ax, g, colors[method])
    _one_step_axes(ax)
    handles = [Line2D([], [], color=colors[m], label=m) for m in methods] + ([_below_handle()] if below else [])
    ax.legend(handles=handles, frameon=False, fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    return True


def _draw_one_step_sweep(ax, steps: pd.DataFrame, head: float | None) -> bool:
    """(d) the masks at the other sparsities: colour by sparsity, line style by method."""
    ax.set_title("(d) the same at the other sparsities (the sweep's masks)")
    rows = steps[~_at(steps, head)] if len(steps) else steps
    if rows.empty:
        no_data(ax, "no one-step rows at another sparsity")
        return False
    sparsities = sorted(float(s) for s in rows["sparsity"].dropna().unique())
    cmap = plt.get_cmap("viridis")
    shade = {s: cmap(0.9 * i / max(1, len(sparsities) - 1)) for i, s in enumerate(sparsities)}
    methods = T.ordered_methods(rows["method"].dropna().unique())
    style = {m: LINESTYLES[i % len(LINESTYLES)] for i, m in enumerate(methods)}
    below = False
    for (method, sparsity, _), g in rows.groupby(["method", "sparsity", "seed"], dropna=False):
        color = shade.get(float(sparsity), "0.5")
        ax.plot(g["eta"], g["edge"], color=color, linestyle=style[method], marker=".", linewidth=1.2, alpha=0.9)
        below |= _mark_below(ax, g, color)
    _one_step_axes(ax)
    handles = [Line2D([], [], color=shade[s], label=f"sparsity {fmt_sparsity(s)}") for s in sparsities]
    handles += [Line2D([], [], color="0.3", linestyle=style[m], label=m) for m in methods]
    handles += [_below_handle()] if below else []
    ax.legend(handles=handles, frameon=False, fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    return True
