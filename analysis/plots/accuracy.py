"""Accuracy figures: SP against IP in test accuracy and generalisation gap.

- :func:`fig_accuracy`       (fig. 1) per method at the headline sparsity: the paired IP−SP difference
  (forest plot, one row per accounting) beside the absolute accuracies
- :func:`fig_sweep`          (fig. 2) test accuracy against sparsity
- :func:`fig_generalisation` (fig. 6) generalisation gaps against sparsity
- :func:`fig_ablation`       (fig. 8) IP ablation variants against their SP baseline
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from .. import tables as T
from ..ablations import sp_baseline
from ..formatting import fmt_sparsity, side_label
from ..stats import CONFIDENCE, t_interval
from .style import (
    COLORS,
    LABELS,
    MARKERS,
    MISSING_COLOR,
    RC,
    Drawn,
    disconnected_handle,
    draw_method_points,
    draw_vs_sparsity,
    has_values,
    no_data,
    panel_grid,
    repr_legend,
    save,
    scatter_runs,
)

# --------------------------------------------------------------------------- (1) accuracy at the headline sparsity

def _legend(fig, reprs, hollow: bool, extra=(), ncol: int | None = None) -> None:
    handles = repr_legend(reprs, extra=list(extra) + ([disconnected_handle()] if hollow else []))
    fig.legend(handles=handles, loc="outside lower center",
               ncol=ncol or (2 if len(handles) > 3 else len(handles)), frameon=False)


def fig_accuracy(summary: pd.DataFrame, out_stem, sparsity: float | None = None, chance: float | None = None) -> Drawn:
    """Fig. 1, the answer at a glance: per method, the paired IP−SP test-accuracy difference with its 95 %
    t interval, one row per accounting (IP; IP_eq when run), seeds as points (a forest plot), beside the
    absolute accuracies (mean ± 1 sd, seeds as points) with chance level marked."""
    runs = T.at_sparsity(summary, sparsity)
    methods = T.ordered_methods(runs["method"].dropna().unique())
    reprs = T.reprs_present(runs)
    against = reprs[1:]
    with plt.rc_context(RC):
        height = 1.6 + 0.5 * max(3, len(methods)) * (1.3 if len(against) > 1 else 1.0)
        fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, height), sharey=True, layout="constrained",
                                          gridspec_kw={"width_ratios": [1, 1.25]})
        n_seeds = runs["seed"].nunique()
        fig.suptitle(f"Test accuracy at sparsity {fmt_sparsity(sparsity)}: does IP beat SP? "
                     f"({n_seeds} paired seed{'s' if n_seeds != 1 else ''}; points: seeds)")
        if not has_values(runs, "test_acc"):
            no_data(left, "summary table has no test accuracy")
            no_data(right, "no pairs")
            return save(fig, out_stem)
        factor = T.percent_scale(runs["test_acc"])
        unit = " (%)" if factor == 100 else ""
        rows_y = {m: -i for i, m in enumerate(methods)}
        spread = {r: d for r, d in zip(reprs, np.linspace(0.25, -0.25, len(reprs)))}   # SP on top
        hollow, extent = False, []
        for m in methods:
            for rep in reprs:
                side = runs[(runs["method"] == m) & (runs["repr"] == rep) & runs["test_acc"].notna()]
                y = rows_y[m] + spread[rep]
                if side.empty:
                    if not (m == "dense" and rep == T.EQUAL_STORAGE):   # dense runs have no IP_eq twin
                        left.text(0.01, y, f"{side_label(rep)} missing", fontsize=7,
                                  color=MISSING_COLOR, va="center", transform=blended_transform_factory(
                                      left.transAxes, left.transData))
                    continue
                vals = side["test_acc"].to_numpy(dtype=float) * factor
                ys = y + (np.linspace(-0.06, 0.06, vals.size) if vals.size > 1 else np.zeros(1))
                hollow |= scatter_runs(left, ys, side, "test_acc", rep, factor, along_x=True)
                sd = vals.std(ddof=1) if vals.size > 1 else 0.0
                left.errorbar(vals.mean(), y, xerr=sd, color=COLORS[rep], marker="|", markersize=10, capsize=2,
                              elinewidth=1.2, zorder=4)
                extent += [vals.min(), vals.max(), vals.mean() - sd, vals.mean() + sd]
        values = np.asarray(extent, dtype=float)   # every point and every mean ± sd bar stays inside the axis
        pad = max(1.0 * factor / 100, 0.08 * (values.max() - values.min()))
        low = values.min() - pad
        if chance is not None and chance * factor >= low - 4 * pad:   # close enough: the axis reaches it
            low = min(low, chance * factor - pad)
            left.axvline(chance * factor, color="k", linestyle="--", linewidth=0.8)
            left.text(chance * factor, 1.0, " chance", transform=blended_transform_factory(left.transData,
                      left.transAxes), ha="left", va="top", fontsize=7)
        elif chance is not None:   # far below every run: named at the axis' edge instead of squashing the runs
            left.text(0.0, 1.01, f"← chance: {chance * factor:g}{' %' if factor == 100 else ''}",
                      transform=left.transAxes, ha="left", va="bottom", fontsize=7)
        left.set_xlim(low, values.max() + pad)
        left.set_xlabel(f"test accuracy{unit}; bars: mean ± 1 sd over seeds")
        left.set_yticks([rows_y[m] for m in methods])
        left.set_yticklabels(methods)
        left.grid(axis="x", alpha=0.3)
        acc_offsets = {a: d for a, d in zip(against, np.linspace(0.15, -0.15, len(against)) if len(against) > 1
                                             else [0.0])}
        for m in methods:
            sub = runs[runs["method"] == m]
            for a in against:
                if m == "dense" and a == T.EQUAL_STORAGE:
                    continue
                pairs = T.paired(sub, "test_acc", keys=["method", "seed"], against=a)
                pairs = pairs[~pairs["disconnected"].astype(bool)] if len(pairs) else pairs
                y = rows_y[m] + acc_offsets[a]
                if not len(pairs):
                    right.text(0.01, y, f"{side_label(a)} − SP: no connected pairs", fontsize=7,
                               color=MISSING_COLOR, va="center",
                               transform=blended_transform_factory(right.transAxes, right.transData))
                    continue
                d = pairs["diff"].to_numpy(dtype=float) * factor
                right.scatter(d, np.full(d.size, y), s=12, color=COLORS[a], alpha=0.45, zorder=3, linewidths=0)
                mean = d.mean()
                if d.size > 1:
                    low, high = t_interval(d)
                    right.plot([low, high], [y, y], color=COLORS[a], linewidth=2.2, solid_capstyle="butt", zorder=4)
                right.plot([mean], [y], marker=MARKERS[a], color=COLORS[a], markersize=6, zorder=5,
                           markeredgecolor="white", markeredgewidth=0.5)
        right.axvline(0, color="k", linewidth=0.8)
        names = " and ".join(f"{side_label(a)} − SP" for a in against)
        right.set_xlabel(f"paired difference per seed, {names}" + (" (pp)" if factor == 100 else "")
                         + f"; bar: {100 * CONFIDENCE:.0f} % t interval")
        right.grid(axis="x", alpha=0.3)
        right.tick_params(axis="y", length=0)
        handles = [Line2D([], [], color=COLORS[r], marker=MARKERS[r], linestyle="", label=LABELS[r]) for r in reprs]
        handles += [Line2D([], [], color=COLORS[a], marker=MARKERS[a], linewidth=2.2,
                           label=f"{side_label(a)} − SP: mean, {100 * CONFIDENCE:.0f} % CI, "
                                 "seeds (right)") for a in against]
        if hollow:
            handles.append(disconnected_handle())
        fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
        return save(fig, out_stem)


# --------------------------------------------------------------------------- (2) accuracy vs sparsity

def _draw_advantage(ax, runs: pd.DataFrame, against: str, factor: float, shift: float) -> tuple[bool, list]:
    """The paired ``against`` − SP test-accuracy differences of one method against sparsity: seeds as points
    (a pair with a disconnected run hollow, and left out of the mean and interval), mean and 95 % t interval
    over the connected pairs.  Returns (whether a hollow point was drawn, the sparsities where ``against``
    was infeasible)."""
    pairs = T.paired(runs, "test_acc", keys=["method", "seed", "sparsity"], against=against)
    infeasible = []
    if "infeasible" in runs:
        bad = runs[(runs["repr"] == against) & runs["infeasible"].notna() & (runs["infeasible"] != "")]
        infeasible = sorted(float(s) for s in bad["sparsity"].dropna().unique())
    if not len(pairs):
        return False, infeasible
    x = -np.log10(1 - pairs["sparsity"].astype(float).to_numpy()) + shift
    d = pairs["diff"].to_numpy(dtype=float) * factor
    hollow = T.is_disconnected(pairs).to_numpy()
    scatter_runs(ax, x, pairs, "diff", against, factor, size=12, alpha=0.45)
    connected = pairs[~hollow].assign(_d=d[~hollow])
    means, lows, highs, xs = [], [], [], []
    for s, g in connected.groupby("sparsity"):
        vals = g["_d"].to_numpy(dtype=float)
        xs.append(-np.log10(1 - float(s)) + shift)
        means.append(vals.mean())
        low, high = t_interval(vals) if vals.size > 1 else (vals.mean(), vals.mean())
        lows.append(low)
        highs.append(high)
    if xs:
        means, lows, highs = map(np.asarray, (means, lows, highs))
        ax.errorbar(xs, means, yerr=[means - lows, highs - means], color=COLORS[against], marker=MARKERS[against],
                    markersize=5, capsize=3, linewidth=1.4, zorder=4)
    return bool(hollow.any()), infeasible


def fig_sweep(sweep: pd.DataFrame, out_stem, summary: pd.DataFrame | None = None) -> Drawn:
    """Fig. 2: the IP−SP test-accuracy advantage against sparsity, per sweep method and accounting (IP; IP_eq
    where run), paired per seed with 95 % t intervals; the sparsity axis is log-scaled in the kept fraction."""
    methods = T.sparse_methods(sweep) if len(sweep) else []
    with plt.rc_context(RC):
        if not methods or not has_values(sweep, "test_acc", "sparsity"):
            fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
            no_data(ax, "sweep table is empty")
            ax.set_title("IP − SP test accuracy vs sparsity (sweep)")
            return save(fig, out_stem)
        factor = T.percent_scale(sweep["test_acc"])
        reprs = T.reprs_present(sweep)
        against = reprs[1:]
        fig, axes = panel_grid(len(methods), 3, panel=(4.0, 3.2), sharey=True)
        hollow = False
        sparsities = sorted(float(s) for s in sweep["sparsity"].dropna().unique() if 0 < float(s) < 1)
        shifts = {a: d for a, d in zip(against, np.linspace(-0.03, 0.03, len(against)) if len(against) > 1
                                       else [0.0])}
        for ax, method in zip(axes, methods):
            rows = sweep[sweep["method"] == method]
            notes = []
            for a in against:
                drew_hollow, infeasible = _draw_advantage(ax, rows, a, factor, shifts[a])
                hollow |= drew_hollow
                if infeasible:
                    notes.append(f"{side_label(a)} infeasible at "
                                 + ", ".join(f"{s:g}" for s in infeasible) + " (FB entries exceed the budget)")
            ax.axhline(0, color="k", linewidth=0.8)
            ax.set_xticks([-np.log10(1 - s) for s in sparsities])
            ax.set_xticklabels([f"{s:g}" for s in sparsities], rotation=45 if len(sparsities) > 4 else 0)
            ax.set_xlabel("sparsity s (log scale in the kept fraction 1 − s)")
            ax.set_title(method)
            ax.grid(alpha=0.3)
            if notes:
                ax.text(0.02, 0.02, "\n".join(notes), transform=ax.transAxes, fontsize=6.5, color=MISSING_COLOR,
                        va="bottom")
        for ax in axes[::3]:
            ax.set_ylabel("test accuracy − SP's" + (" (pp)" if factor == 100 else ""))
        handles = [Line2D([], [], color=COLORS[a], marker=MARKERS[a], linewidth=1.4,
                          label=f"{side_label(a)} − SP: mean and {100 * CONFIDENCE:.0f} % "
                                f"CI over connected pairs; points: seeds") for a in against]
        if hollow:
            handles.append(Line2D([], [], color="k", marker="o", markerfacecolor="none", linestyle="",
                                  label="pair with a disconnected run (hollow; left out of the mean and CI)"))
        fig.legend(handles=handles, loc="outside lower center", ncol=1, frameon=False)
        fig.suptitle("IP's test-accuracy advantage over SP against sparsity (sweep; above 0: IP better)\n"
                     + seeds_per_sparsity(sweep))
        return save(fig, out_stem)


def seeds_per_sparsity(runs: pd.DataFrame) -> str:
    """'3 seeds at every sparsity', or 'seeds: 3 at 0.9, 0.95, 0.99; 5 at 0.98' when they differ (the
    headline sparsity has the main runs' seeds)."""
    sparse = runs[runs["sparsity"].astype(float) > 0]
    counts = sparse.groupby("sparsity")["seed"].nunique()
    if counts.nunique() == 1:
        return f"{int(counts.iloc[0])} seeds at every sparsity"
    by_n = {}
    for s, n in counts.items():
        by_n.setdefault(int(n), []).append(f"{float(s):g}")
    return "seeds: " + "; ".join(f"{n} at {', '.join(levels)}" for n, levels in sorted(by_n.items()))


# --------------------------------------------------------------------------- (6) generalisation gaps

def fig_generalisation(sweep: pd.DataFrame, out_stem) -> Drawn:
    methods = T.sparse_methods(sweep) if len(sweep) else []
    with plt.rc_context(RC):
        if not methods or not has_values(sweep, "sparsity"):
            fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
            no_data(ax, "sweep table is empty")
            ax.set_title("Generalisation gap vs sparsity: SP vs IP")
            return save(fig, out_stem)
        factor = T.percent_scale(sweep["train_acc"], sweep["test_acc"])
        fig, axes = plt.subplots(2, len(methods), figsize=(3.3 * len(methods) + 0.5, 6.4), squeeze=False,
                                 layout="constrained", sharey="row")
        hollow = False
        for c, method in enumerate(methods):
            runs = sweep[sweep["method"] == method]
            for r, (metric, label, f) in enumerate((("gap_acc", "train − test accuracy (pp)", factor),
                                                     ("gap_loss", "test − train loss", 1.0))):
                ax = axes[r, c]
                if has_values(runs, metric):
                    hollow |= draw_vs_sparsity(ax, runs, metric, f)
                    ax.axhline(0, color="#999999", linewidth=0.8)
                    ax.grid(alpha=0.3)
                else:
                    no_data(ax, f"no {metric}")
                if c == 0:
                    ax.set_ylabel(label if f == 100 or metric == "gap_loss" else "train − test accuracy")
                ax.set_title(method if r == 0 else "")
        _legend(fig, T.reprs_present(sweep), hollow, ncol=1 if len(methods) < 3 else None)
        fig.suptitle("Generalisation gap vs sparsity at the end of training (smaller = generalises better)\n"
                     "mean ± 1 sd over seeds, points = seeds (C7: paired gaps at the lowest sparsity)\n"
                     + seeds_per_sparsity(sweep))
        return save(fig, out_stem)


# --------------------------------------------------------------------------- (8) ablations

ABLATION_GROUPS = (("FB initialisation", "fb_init="), ("FB sharing", "share="),
                   ("fair parameter budget (FB charged to the budget)", "fair_budget"))


def fig_ablation(ablation: pd.DataFrame, summary: pd.DataFrame, out_stem) -> Drawn:
    panels = []
    ab = ablation.dropna(subset=["test_acc"]) if len(ablation) else ablation
    variants = [v for v in dict.fromkeys(ab["variant"].dropna())] if len(ab) else []
    used = set()
    for title, prefix in ABLATION_GROUPS:
        members = [v for v in variants if str(v).startswith(prefix)]
        used |= set(members)
        panels.append((title, members))
    # dense runs (variants 'dense-…' or method dense) have their own panel, drawn from the summary
    dense_variant = lambda v: str(v).startswith("dense") or (ab.loc[ab["variant"] == v, "method"] == "dense").all()  # noqa: E731
    others = [v for v in variants if v not in used and v != "sp" and not dense_variant(v)
              and (ab.loc[ab["variant"] == v, "repr"] == "ip").any()]
    if others:
        panels.append(("other variants", others))
    # a group without runs gets no panel (one "no data" panel if no group has any)
    panels = [(title, members) for title, members in panels if members] or [("ablation variants", [])]
    factor = T.percent_scale(ab["test_acc"] if len(ab) else pd.Series(dtype=float),
                             summary["test_acc"] if len(summary) else pd.Series(dtype=float))
    with plt.rc_context(RC):
        fig, axes = panel_grid(len(panels) + 1, 4, panel=(3.6, 3.6), sharey=False)
        for ax, (title, members) in zip(axes, panels):
            ax.set_title(title)
            if not members:
                no_data(ax, "no ablation runs")
                continue
            cats = []
            in_panel = ab[ab["variant"].isin(members)]
            for method in T.ordered_methods(in_panel["method"].dropna().unique()):
                base = sp_baseline(ab, method)
                if len(base):
                    cats.append((f"SP ({method})" if in_panel["method"].nunique() > 1 else "SP", base))
                for v in members:
                    rows = ab[(ab["method"] == method) & (ab["variant"] == v)]
                    if len(rows):
                        cats.append((str(v).split("=", 1)[-1] if "=" in str(v) else str(v), rows))
            _draw_categories(ax, cats, factor)
        compared = [ax for ax, (_, members) in zip(axes, panels) if members]
        if len(compared) > 1:   # the variant panels are compared with each other: one y-scale
            low = min(ax.get_ylim()[0] for ax in compared)
            high = max(ax.get_ylim()[1] for ax in compared)
            for ax in compared:
                ax.set_ylim(low, high)
        dense = summary[summary["method"] == "dense"] if len(summary) else summary
        if not has_values(dense, "test_acc") and len(ab):
            dense = ab[ab["method"] == "dense"]
        ax = axes[-1]
        ax.set_title("dense training (no pruning)")
        if has_values(dense, "test_acc"):
            draw_method_points(ax, dense, "test_acc", factor, diff_label="IP−SP ")
            ax.set_ylabel("test accuracy (%)" if factor == 100 else "test accuracy")
            ax.grid(axis="y", alpha=0.3)
        else:
            no_data(ax, "no dense runs in summary")
        method = ", ".join(m for m in T.ordered_methods(ab["method"].dropna().unique()) if m != "dense") or "n/a"
        fig.legend(handles=repr_legend(), loc="outside lower center", ncol=2, frameon=False)
        fig.suptitle(f"Ablations (pruning method: {method}): test accuracy, points = seeds, bars = mean ± 1 sd")
        return save(fig, out_stem)


def _draw_categories(ax, cats: list, factor: float) -> None:
    """One column per (label, rows): points coloured by repr, mean ± 1 sd."""
    for i, (label, rows) in enumerate(cats):
        for rep in T.REPRS:
            vals = rows.loc[rows["repr"] == rep, "test_acc"].dropna().to_numpy(dtype=float) * factor
            if vals.size == 0:
                continue
            jitter = np.linspace(-0.08, 0.08, vals.size) if vals.size > 1 else np.zeros(1)
            ax.scatter(i + jitter, vals, s=14, color=COLORS[rep], marker=MARKERS[rep], alpha=0.55, linewidths=0)
            sd = vals.std(ddof=1) if vals.size > 1 else 0.0
            ax.errorbar(i + 0.2, vals.mean(), yerr=sd, color=COLORS[rep], marker="_", markersize=12, capsize=3)
    ax.set_xticks(range(len(cats)))
    # long names wrapped at '_' and ',' (random_orthogonal, share=network,fair_budget): no label over another
    ax.set_xticklabels([str(c[0]).replace("_", "_\n").replace(",", ",\n") for c in cats], fontsize=7)
    ax.set_xlim(-0.6, len(cats) - 0.4)
    ax.set_ylabel("test accuracy (%)" if factor == 100 else "test accuracy")
    ax.grid(axis="y", alpha=0.3)
