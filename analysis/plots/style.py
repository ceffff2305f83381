"""The look shared by every figure, and the drawing helpers more than one figure uses.

One colour, marker and label per representation (SP, IP) in every figure; :func:`save`
writes PNG and PDF; :func:`no_data` marks a panel whose data is missing, so that a
missing run is never drawn as zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from .. import tables as T  # noqa: E402

# one colour pair for SP and IP in every figure (Okabe-Ito blue / vermillion, colour-blind safe)
COLORS = {"sp": "#0072B2", "ip": "#D55E00", T.EQUAL_STORAGE: "#009E73"}
MARKERS = {"sp": "o", "ip": "s", T.EQUAL_STORAGE: "D"}
LABELS = {"sp": "SP (standard pruning)", "ip": "IP (interspace pruning; paper's accounting: FBs as overhead)",
          T.EQUAL_STORAGE: "IP_eq (IP under equal storage: λ + FB entries = SP's weights)"}
OFFSETS = {"sp": -0.18, "ip": 0.18}
#: with IP_eq as a third column per method
OFFSETS_3 = {"sp": -0.26, "ip": 0.0, T.EQUAL_STORAGE: 0.26}
#: how a disconnected run (no path from input to output) is drawn: hollow, and named in the legend
DISCONNECTED_LABEL = "disconnected run (hollow; left out of IP-vs-SP comparisons)"
MISSING_COLOR = "#777777"
DPI = 150
RC = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8,
      "ytick.labelsize": 8, "figure.titlesize": 12, "axes.spines.top": False, "axes.spines.right": False}


@dataclass
class Drawn:
    """Files written for one figure, and the (closed) matplotlib figure for inspection."""
    paths: list
    figure: object


# --------------------------------------------------------------------------- helpers

def fit_width(fig, margin: float = 0.25) -> None:
    """Widen ``fig`` until its title and legends fit inside it (a figure of few panels is narrower than its
    title): the widest of them plus ``margin`` inches on each side; never narrower than it was."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [fig._suptitle] if fig._suptitle is not None else []
    widest = max([t.get_window_extent(renderer).width for t in texts if t.get_text()]
                 + [lg.get_window_extent(renderer).width for lg in fig.legends], default=0.0) / fig.dpi
    if widest + 2 * margin > fig.get_figwidth():
        fig.set_figwidth(widest + 2 * margin)


def save(fig, out_stem) -> Drawn:
    """Write ``<out_stem>.png`` and ``<out_stem>.pdf`` (widened to fit its title and legends, :func:`fit_width`)
    and close the figure.  The PDF carries no creation date, so the same tables draw the same bytes and an
    unchanged figure stays unchanged."""
    fit_width(fig)
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = out_stem.parent / f"{out_stem.name}.{ext}"
        fig.savefig(path, dpi=DPI if ext == "png" else None,
                    metadata={"CreationDate": None} if ext == "pdf" else None)
        paths.append(path)
    plt.close(fig)
    return Drawn(paths, fig)


def no_data(ax, why: str = "") -> None:
    """Mark a panel whose data is missing (never draw a missing run as zero)."""
    ax.text(0.5, 0.5, "no data" + (f"\n{why}" if why else ""), ha="center", va="center", transform=ax.transAxes,
            color=MISSING_COLOR, fontsize=10, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#cccccc")


def no_data_figure(out_stem, why: str, title: str) -> Drawn:
    """A figure with one "no data" panel (:func:`no_data`) titled ``title``, saved to ``out_stem``."""
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    no_data(ax, why)
    ax.set_title(title)
    return save(fig, out_stem)


def repr_legend(reprs=T.REPRS, extra: Sequence = ()) -> list:
    handles = [Line2D([], [], color=COLORS[r], marker=MARKERS[r], linestyle="-", label=LABELS[r]) for r in reprs]
    return handles + list(extra)


def disconnected_handle() -> Line2D:
    return Line2D([], [], color="k", marker="o", markerfacecolor="none", linestyle="", label=DISCONNECTED_LABEL)


def scatter_runs(ax, x, rows: pd.DataFrame, metric: str, rep: str, factor: float, size: float = 14,
                 alpha: float = 0.55, along_x: bool = False) -> bool:
    """Per-seed points of ``rows`` at ``x`` (scalar or per row), connected runs filled, disconnected ones hollow;
    ``along_x``: the values along the x axis and ``x`` their heights (a horizontal layout).

    Returns whether a disconnected run was drawn (the caller then adds :func:`disconnected_handle`).
    """
    values = rows[metric].to_numpy(dtype=float) * factor
    xs = np.broadcast_to(np.asarray(x, dtype=float), values.shape)
    hollow = T.is_disconnected(rows).to_numpy()

    def points(mask):
        return (values[mask], xs[mask]) if along_x else (xs[mask], values[mask])

    if (~hollow).any():
        ax.scatter(*points(~hollow), s=size, color=COLORS[rep], alpha=alpha, marker=MARKERS[rep], linewidths=0,
                   zorder=3)
    if hollow.any():
        ax.scatter(*points(hollow), s=size * 1.6, facecolors="none", edgecolors=COLORS[rep], marker=MARKERS[rep],
                   linewidths=1.0, zorder=3)
    return bool(hollow.any())


def panel_grid(n: int, ncols: int, panel=(3.4, 2.8), **kwargs):
    """A figure with ``n`` panels on rows of ``ncols``; the unused cells are hidden."""
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows + 0.8), squeeze=False,
                             layout="constrained", **kwargs)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def has_values(df: pd.DataFrame, *cols: str) -> bool:
    """True if ``df`` has rows and every column in ``cols`` has at least one value."""
    return len(df) > 0 and all(c in df.columns and df[c].notna().any() for c in cols)


def all_positive(values) -> bool:
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    return arr.size > 0 and bool((arr > 0).all())


def draw_method_points(ax, runs: pd.DataFrame, metric: str, factor: float = 1.0, diff_label: str = "") -> bool:
    """Per method: SP, IP (and IP_eq when run) seeds as points and mean ± 1 sd; a missing side is labelled
    'missing', a disconnected run is hollow.  Returns whether a disconnected run was drawn.

    With ``diff_label``, each tick also shows the mean paired IP − SP difference over connected pairs
    (and IP_eq − SP when run).
    """
    reprs = T.reprs_present(runs)
    offsets = OFFSETS_3 if len(reprs) > 2 else OFFSETS
    categories = [(m, runs[runs["method"] == m]) for m in T.ordered_methods(runs["method"].dropna().unique())]
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    ticks, any_hollow = [], False
    for i, (label, rows) in enumerate(categories):
        for rep in reprs:
            side = rows[(rows["repr"] == rep) & rows[metric].notna()]
            x = i + offsets[rep]
            if side.empty:
                if not (label == "dense" and rep == T.EQUAL_STORAGE):   # a dense run has no equal-storage twin
                    ax.text(x, 0.03, f"{rep.upper()} missing", rotation=90, ha="center", va="bottom", fontsize=7,
                            color=MISSING_COLOR, transform=trans)
                continue
            jitter = np.linspace(-0.05, 0.05, len(side)) if len(side) > 1 else np.zeros(1)
            any_hollow |= scatter_runs(ax, x + jitter, side, metric, rep, factor)
            vals = side[metric].to_numpy(dtype=float) * factor
            sd = vals.std(ddof=1) if vals.size > 1 else 0.0
            ax.errorbar(x + 0.08 * np.sign(offsets[rep] or 1), vals.mean(), yerr=sd, color=COLORS[rep],
                        marker="_", markersize=12, capsize=3, elinewidth=1.4, zorder=4)
        tick = str(label)
        if diff_label:
            keys = [k for k in ("method", "seed", "sparsity") if k in rows and rows[k].notna().any()]
            for against in reprs[1:]:
                pairs = T.paired(rows, metric, keys=keys, against=against)
                pairs = pairs[~pairs["disconnected"].astype(bool)]
                if len(pairs):
                    name = diff_label if against == "ip" else diff_label.replace("IP", "IP_eq")
                    tick += f"\n{name}{pairs['diff'].mean() * factor:+.2f}"
        ticks.append(tick)
    ax.set_xticks(range(len(categories)))
    rotate = len(categories) > 6
    ax.set_xticklabels(ticks, rotation=30 if rotate else 0, ha="right" if rotate else "center",
                       fontsize=7 if diff_label else 8)
    ax.set_xlim(-0.6, len(categories) - 0.4)
    return any_hollow


def mean_sd_by(df: pd.DataFrame, x: str, metric: str) -> pd.DataFrame:
    g = df.dropna(subset=[metric]).groupby(x)[metric]
    return pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1), "n": g.count(), "min": g.min(),
                         "max": g.max()}).reset_index()


def sparsity_axis(ax, sparsities) -> None:
    values = sorted(set(float(s) for s in sparsities if np.isfinite(s)))
    logit = bool(values) and all(0 < v < 1 for v in values)
    if logit:
        ax.set_xscale("logit")
        ax.minorticks_off()
    ax.set_xticks(values)
    ax.set_xticklabels([f"{v:g}" for v in values], rotation=45 if len(values) > 3 else 0)
    ax.set_xlabel("sparsity (logit scale)" if logit else "sparsity")


def draw_vs_sparsity(ax, runs: pd.DataFrame, metric: str, factor: float = 1.0) -> bool:
    """SP, IP (and IP_eq) lines of mean ± 1 sd over connected seeds against sparsity; every seed as a faint
    point, a disconnected run hollow.  Returns whether a disconnected run was drawn."""
    any_hollow = False
    for rep in T.reprs_present(runs):
        rows = runs[runs["repr"] == rep].dropna(subset=[metric, "sparsity"])
        if rows.empty:
            continue
        any_hollow |= scatter_runs(ax, rows["sparsity"], rows, metric, rep, factor, size=8, alpha=0.35)
        st = mean_sd_by(rows[~T.is_disconnected(rows)], "sparsity", metric).sort_values("sparsity")
        ax.errorbar(st["sparsity"], st["mean"] * factor, yerr=st["sd"].fillna(0) * factor, color=COLORS[rep],
                    marker=MARKERS[rep], markersize=4, capsize=3, linewidth=1.4)
    sparsity_axis(ax, runs["sparsity"].dropna().unique())
    return any_hollow
