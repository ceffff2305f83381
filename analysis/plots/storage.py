"""The storage view (results/sweep.csv and the dense runs of results/summary.csv):

- :func:`fig_storage` (fig. 13) per sweep method, test accuracy against the numbers stored (kept
  weights or coefficients plus FB entries; log scale) for SP, IP and IP_eq over every sweep point,
  the headline's included: mean and 95 % t interval over connected seeds, one line per
  representation, and a band from dense SP's accuracy down to 1 pp below it; at every sparsity the
  runs of C2's slope (:func:`analysis.plots.accuracy.c2_runs`: the same seeds)
- :func:`storage_view_sentence` the figure read in one sentence: per sweep method, at which numbers
  stored each representation is the most accurate, and the highest sparsity each reaches within
  1 pp of dense accuracy; where a comparison reads a representation between two of its measured
  points, the sentence says so; read from the figure's runs

Two representations are compared at equal storage where both have a measured point or where one
has a point inside the other's measured range (its line between two points is interpolated in the
logarithm of the count, as drawn).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

from .. import tables as T
from ..formatting import fmt_sparsity, side_label
from ..stats import CONFIDENCE, t_interval
from .accuracy import c2_runs, stored_of
from .style import (
    COLORS,
    MARKERS,
    MISSING_COLOR,
    RC,
    Drawn,
    has_values,
    no_data_figure,
    panel_grid,
    plt,
    save,
    scatter_runs,
)

#: how far below dense accuracy a sparse network still counts as "at dense accuracy" (percentage points)
DENSE_MARGIN_PP = 1.0
#: what each representation stores (the legend of fig. 13)
STORES = {"sp": "SP: kept weights", "ip": "IP (paper's accounting): kept coefficients + FB entries",
          T.EQUAL_STORAGE: "IP_eq (equal storage): kept coefficients + FB entries = SP's count"}
TITLE = "Test accuracy against numbers stored: which representation is better at equal storage?"


# --------------------------------------------------------------------------- the numbers behind the figure

def storage_points(sweep: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, repr, sparsity) of the sweep's sparse runs with a test accuracy: the numbers
    stored (median over its runs), and the mean, 95 % t interval and count of the connected runs' test
    accuracy (a point whose runs are all disconnected keeps n = 0 and NaN)."""
    cols = ["method", "repr", "sparsity", "stored", "n", "mean", "low", "high"]
    if not has_values(sweep, "test_acc", "sparsity"):
        return pd.DataFrame(columns=cols)
    runs = sweep[(sweep["method"] != "dense") & sweep["test_acc"].notna() & sweep["sparsity"].notna()].copy()
    runs["_stored"] = stored_of(runs)
    runs["sparsity"] = runs["sparsity"].astype(float).round(T.SPARSITY_DECIMALS)
    runs["_connected"] = ~T.is_disconnected(runs)
    rows = []
    for (method, rep, s), g in runs.groupby(["method", "repr", "sparsity"]):
        stored = g["_stored"].median()
        if not np.isfinite(stored) or stored <= 0:
            continue
        acc = g.loc[g["_connected"], "test_acc"].to_numpy(dtype=float)
        low, high = t_interval(acc) if acc.size > 1 else (np.nan, np.nan)
        rows.append({"method": method, "repr": rep, "sparsity": float(s), "stored": float(stored), "n": int(acc.size),
                     "mean": float(acc.mean()) if acc.size else np.nan, "low": low, "high": high})
    return pd.DataFrame(rows, columns=cols).sort_values(["method", "repr", "stored"], ignore_index=True)


def dense_reference(summary: pd.DataFrame) -> tuple[float, int] | None:
    """Mean test accuracy of the connected dense SP runs and their count (None without any)."""
    if summary is None or not has_values(summary, "test_acc"):
        return None
    dense = summary[(summary["method"] == "dense") & (summary["repr"] == "sp") & summary["test_acc"].notna()]
    dense = dense[~T.is_disconnected(dense)]
    if dense.empty:
        return None
    return float(dense["test_acc"].mean()), int(len(dense))


def dense_text(summary: pd.DataFrame, dense: tuple[float, int], factor: float) -> str:
    """'87.43 %, 5 runs, 270,608 stored': dense SP's mean test accuracy, its runs and what it stores."""
    runs = summary[(summary["method"] == "dense") & (summary["repr"] == "sp")]
    stored = stored_of(runs).median() if len(runs) else np.nan
    text = f"{dense[0] * factor:.2f}{' %' if factor == 100 else ''}, {dense[1]} run{'s' if dense[1] != 1 else ''}"
    return text + (f", {_count(stored)} stored" if np.isfinite(stored) else "")


def infeasible_points(sweep: pd.DataFrame, method: str) -> dict[str, list[float]]:
    """Per representation, the sparsities of ``method`` the sweep records as infeasible."""
    if "infeasible" not in sweep:
        return {}
    bad = sweep[(sweep["method"] == method) & sweep["infeasible"].notna() & (sweep["infeasible"].astype(str) != "")]
    return {rep: sorted(float(s) for s in g["sparsity"].dropna().unique()) for rep, g in bad.groupby("repr")}


@dataclass(frozen=True)
class Winner:
    """The most accurate representation at one measured number stored, among those measured there."""
    stored: float
    repr: str
    compared: tuple[str, ...]
    read_off: tuple[str, ...] = ()    # of ``compared``, those without a point there: read off their line


def best_at_storage(points: pd.DataFrame) -> list[Winner]:
    """At every number stored where a representation of ``points`` (one method) has a point: which of the
    representations measured there (at a point of their own, or between two of their points, interpolated in
    log count) has the highest mean test accuracy."""
    curves = {}
    for rep, g in points.dropna(subset=["mean"]).groupby("repr"):
        g = g.sort_values("stored")
        curves[rep] = (np.log10(g["stored"].to_numpy(dtype=float)), g["mean"].to_numpy(dtype=float))
    grid = sorted({float(x) for x in points.dropna(subset=["mean"])["stored"]})
    out = []
    for stored in grid:
        x, values, read_off = np.log10(stored), {}, []
        for rep in _ordered_reprs(curves):
            xs, ys = curves[rep]
            if xs[0] - 1e-12 <= x <= xs[-1] + 1e-12:
                values[rep] = float(np.interp(x, xs, ys))
                if not np.isclose(xs, x, rtol=0, atol=1e-12).any():
                    read_off.append(rep)
        best = max(values, key=lambda r: values[r])   # a tie goes to the first in order (SP)
        out.append(Winner(stored, best, tuple(values), tuple(read_off)))
    return out


def highest_within(points: pd.DataFrame, dense_acc: float, margin: float) -> dict[str, float | None]:
    """Per representation of ``points`` (one method): the highest sparsity whose mean test accuracy is at least
    ``dense_acc`` − ``margin`` (None where no point is)."""
    out = {}
    for rep, g in points.dropna(subset=["mean"]).groupby("repr"):
        ok = g[g["mean"] >= dense_acc - margin - 1e-12]
        out[rep] = float(ok["sparsity"].max()) if len(ok) else None
    return out


def _count(x: float) -> str:
    return f"{int(round(x)):,}"


def _ranges(stored: list[float], grid: list[float]) -> str:
    """'2,706', '1,353–2,892', or several joined ('4,245, 6,951 and 27,061'): entries of ``stored`` that are
    consecutive in ``grid`` as one range."""
    index = {x: i for i, x in enumerate(grid)}
    runs: list[list[float]] = []
    for x in stored:
        if runs and index[x] == index[runs[-1][-1]] + 1:
            runs[-1].append(x)
        else:
            runs.append([x])
    parts = [_count(r[0]) if len(r) == 1 else f"{_count(r[0])}–{_count(r[-1])}" for r in runs]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _ordered_reprs(reprs) -> list[str]:
    """SP, IP, IP_eq first (as in every figure), anything else after them by name."""
    present = set(reprs)
    known = [r for r in (*T.REPRS, T.EQUAL_STORAGE) if r in present]
    return known + sorted(present - set(known))


def _method_sentence(method: str, points: pd.DataFrame, dense: tuple[float, int] | None, factor: float) -> str:
    """One method's part of :func:`storage_view_sentence`."""
    winners = best_at_storage(points)
    grid = [w.stored for w in winners]
    compared = [w for w in winners if len(w.compared) > 1]
    best = [f"{side_label(rep)} at {_ranges([w.stored for w in compared if w.repr == rep], grid)}"
            for rep in _ordered_reprs(w.repr for w in compared)]
    text = f"for {method}, the most accurate is " + (", ".join(best) + " numbers stored" if best else
                                                     "not compared (no number stored two representations share)")
    alone: dict[str, list[float]] = {}
    for w in winners:
        if len(w.compared) == 1:
            alone.setdefault(w.repr, []).append(w.stored)
    if alone:
        text += " (" + "; ".join(f"only {side_label(r)} measured at {_ranges(xs, grid)}"
                                 for r, xs in alone.items()) + ")"
    if dense is not None:
        reach = highest_within(points, dense[0], DENSE_MARGIN_PP / factor)
        reached = []
        for rep in _ordered_reprs(reach):
            s = reach[rep]
            if s is not None:
                at = points[(points["repr"] == rep) & np.isclose(points["sparsity"], s)]
                reached.append(f"{side_label(rep)} up to sparsity {fmt_sparsity(s)} ({_count(at['stored'].iloc[0])} "
                               "stored)")
        missed = [side_label(r) for r in _ordered_reprs(reach) if reach[r] is None]
        if missed:
            names = missed[0] if len(missed) == 1 else ", ".join(missed[:-1]) + " and " + missed[-1]
            reached.append(f"{names} at no sweep sparsity")
        text += f", and within {DENSE_MARGIN_PP:g} pp of dense: " + ", ".join(reached)
    return text


def storage_view_sentence(sweep: pd.DataFrame, summary: pd.DataFrame) -> str:
    """The storage view (fig. 13) in one sentence, computed from the tables: per sweep method, at which numbers
    stored (kept entries plus FB entries) each representation has the highest mean test accuracy among those
    measured there, and the highest sparsity at which each stays within 1 pp of dense SP's mean test accuracy
    (with what it stores there), or that none does.  It reads the runs the figure draws (:func:`c2_runs`: those
    of C2's slope at every sparsity) and names their seeds."""
    drawn, seeds = c2_runs(sweep)
    points = storage_points(drawn)
    if points.empty:
        return "Storage view: no sweep run has a test accuracy and a stored count."
    factor = T.percent_scale(sweep["test_acc"], summary["test_acc"] if summary is not None and len(summary)
                             else pd.Series(dtype=float))
    dense = dense_reference(summary)
    over = ("mean test accuracy at equal numbers stored, over the runs of fig. 13: " + seeds[0]
            + "".join(f" ({line})" for line in seeds[1:]))
    if dense is None:
        head = f"Storage view ({over}; no dense SP run, so no dense reference): "
    else:
        head = f"Storage view ({over}; dense SP {dense[0] * factor:.2f}{' %' if factor == 100 else ''}): "
    methods = T.ordered_methods(points["method"].unique())
    parts = [_method_sentence(m, points[points["method"] == m], dense, factor) for m in methods]
    read_off = any(w.read_off for m in methods for w in best_at_storage(points[points["method"] == m])
                   if len(w.compared) > 1)
    if read_off:
        head = head.removesuffix("): ") + ("; at a number stored between two measured points of a representation, "
                                           "its accuracy is read off the straight line between them, in log "
                                           "storage as drawn): ")
    return head + "; ".join(parts) + "."


# --------------------------------------------------------------------------- the figure

def _count_axis(ax) -> None:
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _count(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("numbers stored (kept entries + FB entries; log scale)")


def _sparsity_ticks(points: pd.DataFrame, rep: str) -> dict[float, float]:
    """Sparsity -> numbers stored of ``rep``'s points."""
    mine = points[points["repr"] == rep]
    return {float(s): float(x) for s, x in zip(mine["sparsity"], mine["stored"])}


def _sparsity_axis(ax, points: pd.DataFrame) -> list[str]:
    """A top axis naming the sparsity at the first representation's (SP's) points; returns the representations
    it names, those whose every point stores what SP stores at the same sparsity (IP_eq)."""
    reprs = _ordered_reprs(points["repr"].unique())
    ticks = _sparsity_ticks(points, reprs[0])
    named = [rep for rep in reprs if all(ticks.get(s) == x for s, x in _sparsity_ticks(points, rep).items())]
    top = ax.secondary_xaxis("top")
    top.set_xticks(list(ticks.values()), [fmt_sparsity(s) for s in ticks])
    top.xaxis.set_minor_locator(NullLocator())
    top.tick_params(labelsize=7, colors="#444444")
    top.set_xlabel(f"sparsity of {' and '.join(side_label(r) for r in named)}", fontsize=7.5, color="#444444")
    return named


def fig_storage(sweep: pd.DataFrame, summary: pd.DataFrame, path_stem) -> Drawn:
    """Fig. 13: per sweep method, test accuracy against the numbers stored for SP, IP and IP_eq at every sweep
    sparsity (the headline's included): seeds as faint points (a disconnected run hollow), mean and 95 % t
    interval over connected seeds, one line per representation; the top axis names the sparsity of SP's points
    (and of IP_eq's, which store as much), the other points are labelled with theirs; a band from dense SP's mean
    test accuracy down to 1 pp below it.  Panels share the y-axis.  At every sparsity, the headline's included,
    it draws the runs C2's slope reads (:func:`c2_runs`: the same seeds); the title names them."""
    sweep, drawn_seeds = c2_runs(sweep)
    points = storage_points(sweep)
    methods = T.ordered_methods(points["method"].unique()) if len(points) else []
    with plt.rc_context(RC):
        if not methods:
            return no_data_figure(path_stem, "sweep table has no sparse runs with a test accuracy and a stored count", "Test accuracy vs numbers stored")
        factor = T.percent_scale(sweep["test_acc"], summary["test_acc"] if summary is not None and len(summary)
                                 else pd.Series(dtype=float))
        unit = " (%)" if factor == 100 else ""
        dense = dense_reference(summary)
        fig, axes = panel_grid(len(methods), 2, panel=(5.2, 4.0), sharey=True)
        reprs = _ordered_reprs(points["repr"].unique())
        hollow = False
        runs = sweep[(sweep["method"] != "dense") & sweep["test_acc"].notna()].copy()
        runs["_stored"] = stored_of(runs)
        for ax, method in zip(axes, methods):
            mine = points[points["method"] == method]
            if dense is not None:
                top = dense[0] * factor
                bottom = top - DENSE_MARGIN_PP      # in % (or the table's own unit): 1 pp below
                ax.axhspan(bottom, top, color="#dddddd", alpha=0.6, linewidth=0, zorder=0)
                ax.axhline(top, color="#555555", linewidth=0.9, zorder=1)
                ax.axhline(bottom, color="#555555", linewidth=0.9, linestyle="--", zorder=1)
            for rep in reprs:
                line = mine[(mine["repr"] == rep) & mine["mean"].notna()].sort_values("stored")
                seeds = runs[(runs["method"] == method) & (runs["repr"] == rep) & runs["_stored"].notna()]
                if len(seeds):
                    hollow |= scatter_runs(ax, seeds["_stored"], seeds, "test_acc", rep, factor, size=9, alpha=0.3)
                if line.empty:
                    continue
                mean = line["mean"].to_numpy(dtype=float) * factor
                low = np.where(line["low"].notna(), line["low"] * factor, mean)
                high = np.where(line["high"].notna(), line["high"] * factor, mean)
                ax.errorbar(line["stored"], mean, yerr=[mean - low, high - mean], color=COLORS.get(rep, "k"),
                            marker=MARKERS.get(rep, "o"), markersize=4.5, capsize=2.5, linewidth=1.4, zorder=4)
            _count_axis(ax)
            named = _sparsity_axis(ax, mine)
            for rep in reprs:      # a representation off the top axis names its sparsities at its points
                line = mine[(mine["repr"] == rep) & mine["mean"].notna()]
                if rep in named or line.empty:
                    continue
                above = np.where(line["high"].notna(), line["high"], line["mean"]) * factor
                for x, y, s in zip(line["stored"], above, line["sparsity"]):
                    ax.annotate(fmt_sparsity(s), (x, y), xytext=(0, 3), textcoords="offset points", ha="center",
                                va="bottom", fontsize=6.5, color=COLORS.get(rep, "k"), zorder=5,
                                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.3})
            ax.set_title(method)
            ax.grid(alpha=0.3, which="major")
            notes = [f"{side_label(r)} infeasible at {', '.join(f'{s:g}' for s in ss)} (FB entries exceed the budget)"
                     for r, ss in infeasible_points(sweep, method).items()]
            if notes:
                ax.text(0.98, 0.02, "\n".join(notes), transform=ax.transAxes, fontsize=6.5, color=MISSING_COLOR,
                        ha="right", va="bottom")
        low, high = axes[0].get_ylim()      # shared: room above the highest label
        axes[0].set_ylim(low, high + 0.05 * (high - low))
        axes[0].set_ylabel(f"test accuracy{unit}")
        for ax in axes[2::2]:
            ax.set_ylabel(f"test accuracy{unit}")
        handles = [Line2D([], [], color=COLORS.get(r, "k"), marker=MARKERS.get(r, "o"), linewidth=1.4,
                          label=STORES.get(r, f"{side_label(r)}: kept entries + FB entries")) for r in reprs]
        if dense is not None:
            handles.append(Patch(facecolor="#dddddd", edgecolor="#555555",
                                 label=f"dense SP ({dense_text(summary, dense, factor)}): mean test accuracy "
                                       f"down to {DENSE_MARGIN_PP:g} pp below it"))
        if hollow:
            handles.append(Line2D([], [], color="k", marker="o", markerfacecolor="none", linestyle="",
                                  label="disconnected run (hollow; left out of the mean and CI)"))
        fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
        fig.suptitle(f"{TITLE}\nmean and {100 * CONFIDENCE:.0f} % CI over connected seeds, points: seeds; "
                     + "\n".join(drawn_seeds))
        return save(fig, path_stem)
