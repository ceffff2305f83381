"""Accuracy figures: SP against IP in test accuracy and generalisation gap.

- :func:`fig_accuracy`       (fig. 1) per method at the headline sparsity: the paired IP−SP difference
  (forest plot, one row per accounting) beside the absolute accuracies
- :func:`fig_sweep`          (fig. 2) the IP−SP advantage against sparsity, over the runs of C2's slope
- :func:`fig_generalisation` (fig. 6) generalisation gaps against sparsity
- :func:`fig_ablation`       (fig. 8) each IP ablation arm once, paired with SP and with the main setting
  of its accounting
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from .. import tables as T
from ..ablations import FAIR_BUDGET, main_arms, reference_of, sp_baseline
from ..formatting import fmt_sparsity, side_label
from ..stats import CONFIDENCE, Pairs, t_interval
from .style import (
    COLORS,
    MARKERS,
    MISSING_COLOR,
    RC,
    Drawn,
    disconnected_handle,
    draw_vs_sparsity,
    has_values,
    no_data,
    no_data_figure,
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


#: how each representation is named in fig. 1's legend, and what it stores
STORED_AS = {"sp": ("SP (standard pruning)", "kept weights"),
             "ip": ("IP (paper's accounting)", "kept coefficients + FB entries"),
             T.EQUAL_STORAGE: ("IP_eq (equal storage)", "kept coefficients + FB entries")}


def _count_text(values: pd.Series) -> str:
    """'5,412', or '5,398–5,412' where the runs store different counts; '?' when none is known."""
    v = values.dropna().astype(float)
    if v.empty:
        return "?"
    low, high = int(round(v.min())), int(round(v.max()))
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


def stored_label(runs: pd.DataFrame, rep: str) -> str:
    """What ``rep`` stores in ``runs`` (one sparsity, dense runs kept apart), from ``kept_params``,
    ``fb_overhead_params`` and ``stored_params``: e.g. 'IP_eq (equal storage): kept coefficients + FB entries
    = 3,873 + 1,539 = 5,412 = SP's'."""
    name, what = STORED_AS.get(rep, (side_label(rep), "kept entries + FB entries"))
    mine = runs[runs["repr"] == rep]
    sparse, dense = mine[mine["method"] != "dense"], mine[mine["method"] == "dense"]
    if sparse.empty and dense.empty:
        return name
    rows = sparse if len(sparse) else dense
    stored = stored_of(rows)
    fb = rows["fb_overhead_params"] if "fb_overhead_params" in rows else pd.Series(dtype=float)
    if fb.fillna(0).eq(0).all():
        text = f"{name}: {what.split(' + ')[0]} = {_count_text(stored)}"
    else:
        text = f"{name}: {what} = {_count_text(rows['kept_params'])} + {_count_text(fb)} = {_count_text(stored)}"
    sp = runs[(runs["repr"] == "sp") & (runs["method"] != "dense")]
    if rep != "sp" and len(sparse) and len(sp):
        both = sparse.assign(_s=stored_of(sparse)).merge(sp.assign(_s=stored_of(sp)), on=["method", "seed"])
        if len(both) and (both["_s_x"] == both["_s_y"]).all():
            text += " = SP's"
        elif len(both) and (both["_s_x"] <= both["_s_y"]).all():
            text += " ≤ SP's"
    if len(sparse) and len(dense):
        text += f" (dense: {_count_text(stored_of(dense))})"
    return text


def stored_of(runs: pd.DataFrame) -> pd.Series:
    """Numbers each run stores: ``stored_params``, else kept entries + FB entries (NaN where neither is known)."""
    stored = runs["stored_params"].astype(float) if "stored_params" in runs else pd.Series(np.nan, index=runs.index)
    if {"kept_params", "fb_overhead_params"} <= set(runs.columns):
        stored = stored.fillna(runs["kept_params"].astype(float) + runs["fb_overhead_params"].fillna(0).astype(float))
    return stored


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
        handles = [Line2D([], [], color=COLORS[r], marker=MARKERS[r], linestyle="", label=stored_label(runs, r))
                   for r in reprs]
        handles += [Line2D([], [], color=COLORS[a], marker=MARKERS[a], linewidth=2.2,
                           label=f"{side_label(a)} − SP: mean, {100 * CONFIDENCE:.0f} % CI, "
                                 "seeds (right)") for a in against]
        if hollow:
            handles.append(disconnected_handle())
        fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False,
                   title="numbers stored" + (f" at sparsity {fmt_sparsity(sparsity)}" if sparsity is not None else "")
                   + " (left column)", title_fontsize=8)
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


def seed_list(seeds) -> str:
    """'seed 0', 'seeds 0–2' (consecutive) or 'seeds 0, 2, 5'."""
    values = sorted(seeds)
    names = [str(int(v)) if float(v).is_integer() else str(v) for v in values]
    if len(values) == 1:
        return f"seed {names[0]}"
    whole = all(float(v).is_integer() for v in values)
    if whole and len(values) > 2 and [int(v) for v in values] == list(range(int(values[0]), int(values[-1]) + 1)):
        return f"seeds {names[0]}–{names[-1]}"
    return "seeds " + ", ".join(names)


def drawn_seeds(sweep: pd.DataFrame, drawn: pd.DataFrame, untested=()) -> list[str]:
    """Which seeds a figure of C2's runs draws (``drawn``, of :func:`c2_runs`) at each sparsity, e.g. ['seeds 0–2
    at every sparsity, as C2's slope', 'seeds 3–4 left out, as from the slope (runs at 0.98 only)']; the first
    line names the seeds drawn, a second (where any) those of ``sweep`` left out, and the methods without a slope
    (``untested``: (method, accounting)) whose runs are drawn as recorded."""
    sparse = drawn[(drawn["sparsity"].astype(float) > 0) & drawn["seed"].notna()] if len(drawn) else drawn
    if sparse.empty:
        return ["no seed drawn"]
    by_level = {float(s): frozenset(g["seed"]) for s, g in sparse.groupby("sparsity")}
    groups: dict[frozenset, list[str]] = {}
    for s, seeds in by_level.items():
        groups.setdefault(seeds, []).append(f"{s:g}")
    if len(groups) == 1:
        text = f"{seed_list(next(iter(groups)))} at every sparsity"
    else:
        text = "; ".join(f"{seed_list(seeds)} at {', '.join(levels)}" for seeds, levels in groups.items())
    if untested:
        names = ", ".join(dict.fromkeys(m if a == "ip" else f"{m} ({side_label(a)})" for m, a in untested))
        text += f", as C2's slope where it has one ({names}: no slope, every run drawn)"
    else:
        text += ", as C2's slope"
    lines = [text]
    methods = T.sparse_methods(sweep)
    rest = sweep[sweep["method"].isin(methods) & ~sweep.index.isin(drawn.index) & sweep["seed"].notna()
                 & (sweep["sparsity"].astype(float) > 0)]
    if len(rest):
        gone = sorted(set(rest["seed"]) - set(sparse["seed"]))
        levels = ", ".join(f"{float(s):g}" for s in sorted(rest["sparsity"].astype(float).unique()))
        if gone:
            lines.append(f"{seed_list(gone)} left out, as from the slope (runs at {levels} only)")
        else:
            lines.append(f"runs at {levels} of seeds without a slope under that accounting left out, as from it")
    return lines


def c2_runs(sweep: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The runs of the sweep table that C2's slopes read (:func:`analysis.claims.accuracy.slope_runs`: at every
    sparsity, the headline's included, the seeds with a slope), which figs. 2 and 13 draw, and the lines naming
    their seeds (:func:`drawn_seeds`)."""
    # imported here: analysis.claims imports analysis.figures, which imports this module
    from ..claims.accuracy import slope_runs
    if sweep.empty or not {"method", "repr", "seed", "sparsity"} <= set(sweep.columns):
        return sweep, ["no seed drawn"]
    drawn, untested = slope_runs(sweep)
    return drawn, drawn_seeds(sweep, drawn, untested)


def fig_sweep(sweep: pd.DataFrame, out_stem, summary: pd.DataFrame | None = None) -> Drawn:
    """Fig. 2: the IP−SP test-accuracy advantage against sparsity, per sweep method and accounting (IP; IP_eq
    where run), paired per seed with 95 % t intervals; the sparsity axis is log-scaled in the kept fraction.
    At every sparsity, the headline's included, it draws the runs C2's slope reads (:func:`c2_runs`: the same
    seeds), so that each mean drawn is the one the slope is fitted to; the title names the seeds."""
    sweep, seeds = c2_runs(sweep)
    methods = T.sparse_methods(sweep) if len(sweep) else []
    with plt.rc_context(RC):
        if not methods or not has_values(sweep, "test_acc", "sparsity"):
            return no_data_figure(out_stem, "sweep table is empty", "IP − SP test accuracy vs sparsity (sweep)")
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
                     + "\n".join(seeds))
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
            return no_data_figure(out_stem, "sweep table is empty", "Generalisation gap vs sparsity: SP vs IP")
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

ACCOUNTING_TITLES = {"ip": "paper's accounting (FB entries as overhead)",
                     T.EQUAL_STORAGE: "equal storage (FB entries charged to the budget)"}
PAIR_KEYS = ["method", "seed", "sparsity"]
#: a note written over the axis' lines stays readable
NOTE_BOX = {"facecolor": "white", "edgecolor": "none", "pad": 1.0}


@dataclass
class Arm:
    """One ablation arm: its runs once, under every variant name they are written as, its accounting
    (``ip``: FB entries as overhead; ``ip_eq``: charged to the budget) and whether it is a main setting (the
    reference the other arms are compared to: :func:`analysis.ablations.reference_of`)."""
    method: str
    names: tuple
    accounting: str
    reference: bool
    runs: pd.DataFrame

    @property
    def label(self) -> str:
        names = ", ".join(self.names)
        if self.reference:
            return f"main {side_label(self.accounting)} ({names})"
        return names


def _runs_key(rows: pd.DataFrame) -> tuple:
    return tuple(sorted((int(r.seed), round(float(r.sparsity), T.SPARSITY_DECIMALS), float(r.test_acc))
                        for r in rows[["seed", "sparsity", "test_acc"]].itertuples()))


def ablation_arms(ablation: pd.DataFrame, summary: pd.DataFrame | None = None) -> list[Arm]:
    """The IP arms of the ablation table, each once: variant names that hold the same runs are one arm (the
    aggregate stage writes the main IP runs as ``fb_init=<main>`` and as ``share=<main>``).  An arm that is main
    runs of ``summary`` (:func:`analysis.ablations.main_arms`, as in the report's ablation table) is a reference,
    in the accounting of the representation it is; any other arm is in the equal-storage accounting when its
    name has ``fair_budget``, else in the paper's.  Without the main runs to match, the references are read from
    the names the aggregate stage gives them: the arm under both an ``fb_init=`` and a ``share=`` name, and
    ``fair_budget``."""
    if ablation.empty:
        return []
    ab = ablation[ablation["test_acc"].notna()]
    ip = ab[ab["repr"].isin(["ip", T.EQUAL_STORAGE]) & (ab["variant"] != "sp") & (ab["method"] != "dense")
            & ~ab["variant"].astype(str).str.startswith("dense")]
    mains = main_arms(ablation, summary)
    methods = T.ordered_methods(ip["method"].dropna().unique())
    arms: list[Arm] = []
    for method in methods:
        seen: dict[tuple, int] = {}
        groups: list[tuple[list, pd.DataFrame]] = []
        mine = ip[ip["method"] == method]
        for variant in dict.fromkeys(mine["variant"].dropna()):
            rows = mine[mine["variant"] == variant]
            key = _runs_key(rows)
            if key in seen:
                groups[seen[key]][0].append(str(variant))
            else:
                seen[key] = len(groups)
                groups.append(([str(variant)], rows))
        for names, rows in groups:
            main = next((mains[(method, n)] for n in names if (method, n) in mains), None)
            fair = any(FAIR_BUDGET in n for n in names) or (rows["repr"] == T.EQUAL_STORAGE).any()
            if main is not None:
                accounting, reference = main, True
            else:
                accounting = T.EQUAL_STORAGE if fair else "ip"
                by_name = FAIR_BUDGET in names if fair else {n.split("=", 1)[0] for n in names} >= {"fb_init",
                                                                                                  "share"}
                reference = not mains and by_name
            arms.append(Arm(method, tuple(names), accounting, reference, rows.assign(repr="arm")))
    order = {"ip": 0, T.EQUAL_STORAGE: 1}
    return sorted(arms, key=lambda a: (methods.index(a.method), order[a.accounting], not a.reference))


def reference_arm(arm: Arm, arms: list[Arm]) -> Arm | None:
    """The main-setting arm ``arm`` is read against (:func:`analysis.ablations.reference_of`): the main IP_eq
    runs for an arm charged to the budget where the ablation has them, else the main IP runs."""
    references = {a.accounting: a for a in arms if a.reference and a.method == arm.method}
    name = reference_of(arm.names[0], {acc: a.names[0] for acc, a in references.items()})
    return next((a for a in references.values() if name in a.names), None)


def arm_pairs(arm: Arm, base: pd.DataFrame) -> Pairs:
    """The seed pairs arm − ``base`` (SP, or the arm's reference) of test accuracy, disconnected ones left out."""
    return Pairs.of(pd.concat([arm.runs, base.assign(repr="base")], ignore_index=True), "test_acc",
                    keys=PAIR_KEYS, against="arm", base="base")


def _forest_row(ax, y: float, pairs: Pairs, factor: float, color: str, marker: str, reference: bool) -> bool:
    d = pairs.diffs.to_numpy(dtype=float) * factor
    if not d.size:
        return False
    ax.scatter(d, np.full(d.size, y), s=12, color=color, alpha=0.45, linewidths=0, zorder=3)
    if d.size > 1:
        low, high = t_interval(d)
        ax.plot([low, high], [y, y], color=color, linewidth=2.2, solid_capstyle="butt", zorder=4)
    size = 11 if marker == "*" else 8 if reference else 6
    ax.plot([d.mean()], [y], marker=marker, color=color, markersize=size, zorder=5,
            markeredgecolor="black" if reference else "white", markeredgewidth=1.0 if reference else 0.5)
    return True


def fig_ablation(ablation: pd.DataFrame, summary: pd.DataFrame, out_stem) -> Drawn:
    """Fig. 8: the ablation as paired differences.  Left: each arm once (:func:`ablation_arms`), its test
    accuracy − SP's of the same seed, mean and 95 % t interval over connected pairs, seeds as points, coloured by
    accounting (paper's: IP's colour; equal storage: IP_eq's), the main setting of each accounting ringed and
    marked by a dotted line; dense IP − SP (the main dense runs of ``summary``, else the ablation's) as its own
    row.  Right: each other arm − its accounting's reference of the same seed."""
    arms = ablation_arms(ablation, summary)
    factor = T.percent_scale(ablation["test_acc"] if len(ablation) else pd.Series(dtype=float),
                             summary["test_acc"] if len(summary) else pd.Series(dtype=float))
    unit = " (pp)" if factor == 100 else ""
    dense = summary[summary["method"] == "dense"] if len(summary) else summary
    dense_source = "main runs"
    if not (len(dense) and {"sp", "ip"} <= set(dense["repr"])) and len(ablation):
        dense, dense_source = ablation[ablation["method"] == "dense"], "ablation's runs"
    dense_pairs = Pairs.of(dense, "test_acc", keys=["method", "seed"]) if len(dense) else None
    with plt.rc_context(RC):
        if not arms and (dense_pairs is None or not len(dense_pairs.diffs)):
            return no_data_figure(out_stem, "no ablation runs", "Ablations: arm − SP test accuracy")
        # rows, top to bottom: per (method, accounting) a header, its reference, its other arms; then dense
        rows: list[tuple[str, object]] = []
        several = len({a.method for a in arms}) > 1
        for arm in arms:
            group = (arm.method, arm.accounting)
            if not rows or rows[-1][0] != "arm" or (rows[-1][1].method, rows[-1][1].accounting) != group:
                title = ACCOUNTING_TITLES[arm.accounting] + (f", {arm.method}" if several else "")
                rows.append(("header", title))
            rows.append(("arm", arm))
        if dense_pairs is not None and len(dense_pairs.diffs):
            rows.append(("header", "dense training (no pruning)"))
            rows.append(("dense", dense_pairs))
        height = 1.9 + 0.32 * len(rows)
        fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, height), sharey=True, layout="constrained",
                                          gridspec_kw={"width_ratios": [1.3, 1]})
        ys = {i: -i for i in range(len(rows))}
        labels, n_seeds = [], set()
        ref_lines: dict[tuple, list] = {}
        for i, (kind, item) in enumerate(rows):
            y = ys[i]
            if kind == "header":
                labels.append(item)
                continue
            if kind == "dense":
                labels.append(f"dense IP − SP ({item.connected['seed'].nunique()} seeds, {dense_source})")
                _forest_row(left, y, item, factor, COLORS["ip"], "*", reference=False)
                right.text(0.02, y, "(no reference: no ablation of dense training)", fontsize=7,
                           color=MISSING_COLOR, va="center", bbox=NOTE_BOX,
                           transform=blended_transform_factory(right.transAxes, right.transData))
                continue
            arm, color = item, COLORS[item.accounting]
            marker = MARKERS[item.accounting]
            labels.append(arm.label)
            base = sp_baseline(ablation, arm.method, arm.names[0])
            to_sp = arm_pairs(arm, base)
            n_seeds.add(len(to_sp.diffs))
            if _forest_row(left, y, to_sp, factor, color, marker, arm.reference) and arm.reference:
                ref_lines.setdefault((arm.method, arm.accounting), []).append(to_sp.diffs.mean() * factor)
            ref = None if arm.reference else reference_arm(arm, arms)
            trans = blended_transform_factory(right.transAxes, right.transData)
            if arm.reference:
                right.text(0.02, y, "the reference: a main setting", fontsize=7, color=MISSING_COLOR, va="center",
                           transform=trans, bbox=NOTE_BOX)
            elif ref is None:
                right.text(0.02, y, "no main setting in the table", fontsize=7, color=MISSING_COLOR, va="center",
                           transform=trans, bbox=NOTE_BOX)
            elif not _forest_row(right, y, arm_pairs(arm, ref.runs.assign(repr="ref")), factor, color, marker,
                                 False):
                right.text(0.02, y, "no pairs with the reference", fontsize=7, color=MISSING_COLOR, va="center",
                           transform=trans, bbox=NOTE_BOX)
        # the reference's mean as a dotted line through its accounting's rows
        for i, (kind, item) in enumerate(rows):
            if kind == "arm" and item.reference and (item.method, item.accounting) in ref_lines:
                group = [ys[j] for j, (k, it) in enumerate(rows) if k == "arm" and (it.method, it.accounting)
                         == (item.method, item.accounting)]
                left.plot([ref_lines[(item.method, item.accounting)][0]] * 2, [min(group) - 0.4, max(group) + 0.4],
                          color=COLORS[item.accounting], linestyle=":", linewidth=1.0, zorder=2)
        for ax in (left, right):
            ax.axvline(0, color="k", linewidth=0.8)
            ax.grid(axis="x", alpha=0.3)
            ax.set_ylim(-len(rows) + 0.4, 0.6)
        left.set_yticks(list(ys.values()), labels)
        for tick, (kind, _) in zip(left.get_yticklabels(), rows):
            if kind == "header":
                tick.set_fontweight("bold")
                tick.set_fontsize(8)
        left.tick_params(axis="y", length=0)
        right.tick_params(axis="y", length=0)
        level = f"{100 * CONFIDENCE:.0f} %"
        left.set_xlabel(f"test accuracy − SP's, same seed{unit}")
        right.set_xlabel(f"test accuracy − the reference's, same seed{unit}")
        left.set_title("each arm − SP")
        right.set_title("each arm − its reference (main setting)")
        handles = [Line2D([], [], color=COLORS[a], marker=MARKERS[a], linewidth=2.2,
                          label=f"{ACCOUNTING_TITLES[a]}: mean, {level} CI, seeds")
                   for a in ("ip", T.EQUAL_STORAGE) if any(x.accounting == a for x in arms)]
        handles.append(Line2D([], [], color="grey", marker="o", markeredgecolor="black", linestyle=":",
                              label="main setting of an accounting (reference; dotted: its mean)"))
        if dense_pairs is not None and len(dense_pairs.diffs):
            handles.append(Line2D([], [], color=COLORS["ip"], marker="*", linestyle="", markersize=9,
                                  label="dense IP − SP (FB entries as overhead): mean, CI, seeds"))
        fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
        methods = ", ".join(sorted({a.method for a in arms})) or "n/a"
        sparsities = sorted({float(s) for a in arms for s in a.runs["sparsity"].dropna().unique()})
        seeds = (f"{n_seeds.pop()} paired seeds" if len(n_seeds) == 1 else
                 f"{min(n_seeds)}–{max(n_seeds)} paired seeds" if n_seeds else "no pairs")
        fig.suptitle(f"Ablations of IP ({methods}"
                     + (f", sparsity {', '.join(f'{x:g}' for x in sparsities)}" if sparsities else "")
                     + f", {seeds}): paired test-accuracy differences, each arm once")
        return save(fig, out_stem)
