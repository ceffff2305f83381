"""The study's figures, each drawn from tidy tables by one function.

Every ``fig_*`` function takes DataFrames with the columns of :mod:`analysis.tables`
and an output path stem, writes ``<stem>.png`` and ``<stem>.pdf`` and returns
:class:`Drawn`.  It can be called on any other tables of the same shape.  A panel
whose data is missing says "no data" (and why); a missing run is never drawn as zero.

Command line (the pipeline's ``figures`` stage)::

    python -m analysis.figures --results results --out paper_figures
"""
from __future__ import annotations

import argparse
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
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from . import tables as T  # noqa: E402
from .verdicts import FIGURES, PAPER_FB_OVERHEAD_PERCENT  # noqa: E402

# one colour pair for SP and IP in every figure (Okabe-Ito blue / vermillion, colour-blind safe)
COLORS = {"sp": "#0072B2", "ip": "#D55E00"}
MARKERS = {"sp": "o", "ip": "s"}
LABELS = {"sp": "SP (standard pruning)", "ip": "IP (interspace pruning)"}
OFFSETS = {"sp": -0.18, "ip": 0.18}
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

def _save(fig, out_stem) -> Drawn:
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = out_stem.parent / f"{out_stem.name}.{ext}"
        fig.savefig(path, dpi=DPI if ext == "png" else None)
        paths.append(path)
    plt.close(fig)
    return Drawn(paths, fig)


def _no_data(ax, why: str = "") -> None:
    ax.text(0.5, 0.5, "no data" + (f"\n{why}" if why else ""), ha="center", va="center", transform=ax.transAxes,
            color=MISSING_COLOR, fontsize=10, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#cccccc")


def _repr_legend(reprs=T.REPRS, extra: Sequence = ()) -> list:
    handles = [Line2D([], [], color=COLORS[r], marker=MARKERS[r], linestyle="-", label=LABELS[r]) for r in reprs]
    return handles + list(extra)


def _grid(n: int, ncols: int, panel=(3.4, 2.8), **kwargs):
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows + 0.8), squeeze=False,
                             layout="constrained", **kwargs)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _has(df: pd.DataFrame, *cols: str) -> bool:
    return len(df) > 0 and all(c in df.columns and df[c].notna().any() for c in cols)


def _sparsity_label(s) -> str:
    return "n/a" if s is None or (isinstance(s, float) and math.isnan(s)) else f"{float(s):g}"


def _positive(values) -> bool:
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    return arr.size > 0 and bool((arr > 0).all())


def _draw_method_points(ax, runs: pd.DataFrame, metric: str, factor: float = 1.0, diff_label: str = "",
                        categories: Sequence | None = None) -> None:
    """Per category (method): SP and IP seeds as points and mean ± 1 sd; a missing side is labelled 'missing'.

    ``categories``: list of (label, rows) to use instead of grouping ``runs`` by method.
    """
    if categories is None:
        categories = [(m, runs[runs["method"] == m]) for m in T.ordered_methods(runs["method"].dropna().unique())]
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    ticks = []
    for i, (label, rows) in enumerate(categories):
        means = {}
        for rep in T.REPRS:
            vals = rows.loc[rows["repr"] == rep, metric].dropna().to_numpy(dtype=float) * factor
            x = i + OFFSETS[rep]
            if vals.size == 0:
                ax.text(x, 0.03, f"{rep.upper()} missing", rotation=90, ha="center", va="bottom", fontsize=7,
                        color=MISSING_COLOR, transform=trans)
                continue
            jitter = np.linspace(-0.05, 0.05, vals.size) if vals.size > 1 else np.zeros(1)
            ax.scatter(x + jitter, vals, s=14, color=COLORS[rep], alpha=0.55, marker=MARKERS[rep], linewidths=0,
                       zorder=3)
            sd = vals.std(ddof=1) if vals.size > 1 else 0.0
            ax.errorbar(x + 0.11 * (1 if rep == "ip" else -1), vals.mean(), yerr=sd, color=COLORS[rep],
                        marker="_", markersize=12, capsize=3, elinewidth=1.4, zorder=4)
            means[rep] = vals.mean()
        tick = str(label)
        if diff_label and len(means) == 2:
            pairs = T.paired(rows, metric, keys=[k for k in ("method", "seed", "sparsity")
                                                 if k in rows and rows[k].notna().any()])
            if len(pairs):
                tick += f"\n{diff_label}{pairs['diff'].mean() * factor:+.2f}"
        ticks.append(tick)
    ax.set_xticks(range(len(categories)))
    rotate = len(categories) > 6
    ax.set_xticklabels(ticks, rotation=30 if rotate else 0, ha="right" if rotate else "center",
                       fontsize=7 if diff_label else 8)
    ax.set_xlim(-0.6, len(categories) - 0.4)


def _mean_sd_by(df: pd.DataFrame, x: str, metric: str) -> pd.DataFrame:
    g = df.dropna(subset=[metric]).groupby(x)[metric]
    return pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1), "n": g.count(), "min": g.min(),
                         "max": g.max()}).reset_index()


def _sparsity_axis(ax, sparsities) -> None:
    values = sorted(set(float(s) for s in sparsities if np.isfinite(s)))
    if values and all(0 < v < 1 for v in values):
        ax.set_xscale("logit")
        ax.minorticks_off()
    ax.set_xticks(values)
    ax.set_xticklabels([f"{v:g}" for v in values], rotation=45 if len(values) > 3 else 0)
    ax.set_xlabel("sparsity")


def _vs_sparsity(ax, runs: pd.DataFrame, metric: str, factor: float = 1.0) -> None:
    """SP and IP lines of mean ± 1 sd over seeds against sparsity; seeds as faint points."""
    for rep in T.REPRS:
        rows = runs[runs["repr"] == rep].dropna(subset=[metric, "sparsity"])
        if rows.empty:
            continue
        st = _mean_sd_by(rows, "sparsity", metric).sort_values("sparsity")
        ax.scatter(rows["sparsity"], rows[metric] * factor, s=8, color=COLORS[rep], alpha=0.35, linewidths=0)
        ax.errorbar(st["sparsity"], st["mean"] * factor, yerr=st["sd"].fillna(0) * factor, color=COLORS[rep],
                    marker=MARKERS[rep], markersize=4, capsize=3, linewidth=1.4)
    _sparsity_axis(ax, runs["sparsity"].dropna().unique())


# --------------------------------------------------------------------------- (1) accuracy at the headline sparsity

def fig_accuracy(summary: pd.DataFrame, out_stem, sparsity: float | None = None) -> Drawn:
    runs = T.at_sparsity(summary, sparsity)
    methods = T.ordered_methods(runs["method"].dropna().unique())
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(max(6.0, 0.95 * len(methods) + 2.5), 4.4), layout="constrained")
        title = f"Test accuracy at sparsity {_sparsity_label(sparsity)}: SP vs IP"
        if not _has(runs, "test_acc"):
            _no_data(ax, "summary table has no test accuracy")
        else:
            factor = T.percent_scale(runs["test_acc"])
            _draw_method_points(ax, runs, "test_acc", factor, diff_label="IP−SP ")
            ax.set_ylabel("test accuracy (%)" if factor == 100 else "test accuracy")
            ax.set_xlabel("pruning method (dense: no pruning); under each: mean paired IP−SP difference"
                          + (" (pp)" if factor == 100 else ""))
            ax.grid(axis="y", alpha=0.3)
            fig.legend(handles=_repr_legend(), loc="outside lower center", ncol=2, frameon=False)
            n_seeds = runs["seed"].nunique()
            title += f"\npoints: {n_seeds} seed(s); bars: mean ± 1 sd over seeds"
        ax.set_title(title)
        return _save(fig, out_stem)


# --------------------------------------------------------------------------- (2) accuracy vs sparsity

def fig_sweep(sweep: pd.DataFrame, out_stem, summary: pd.DataFrame | None = None) -> Drawn:
    methods = T.sparse_methods(sweep) if len(sweep) else []
    with plt.rc_context(RC):
        if not methods or not _has(sweep, "test_acc", "sparsity"):
            fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
            _no_data(ax, "sweep table is empty")
            ax.set_title("Test accuracy vs sparsity (sweep): SP vs IP")
            return _save(fig, out_stem)
        factor = T.percent_scale(sweep["test_acc"])
        fig, axes = _grid(len(methods), 3, sharey=True)
        dense = summary[summary["method"] == "dense"] if summary is not None and len(summary) else pd.DataFrame()
        extra = []
        for ax, method in zip(axes, methods):
            _vs_sparsity(ax, sweep[sweep["method"] == method], "test_acc", factor)
            for rep in T.REPRS:
                vals = dense.loc[dense["repr"] == rep, "test_acc"].dropna() if len(dense) else []
                if len(vals):
                    ax.axhline(vals.mean() * factor, color=COLORS[rep], linestyle=":", linewidth=1)
            ax.set_title(method)
            ax.grid(alpha=0.3)
            ax.set_ylabel("test accuracy (%)" if factor == 100 else "test accuracy")
        if len(dense):
            extra = [Line2D([], [], color="k", linestyle=":", label="dense network (same colour: SP / IP)")]
        fig.legend(handles=_repr_legend(extra=extra), loc="outside lower center", ncol=3, frameon=False)
        fig.suptitle("Test accuracy vs sparsity (sweep): SP vs IP\nmean ± 1 sd over seeds, points = seeds; "
                     "dotted: dense network")
        return _save(fig, out_stem)


# --------------------------------------------------------------------------- (3) filters (Fig. 1 analogue)

def _pick_filters(filters: pd.DataFrame, method: str | None, seed, layer, max_filters: int):
    df = filters.dropna(subset=["value", "row", "col"])
    if method is None:
        both = [m for m in T.sparse_methods(df) if set(df.loc[df["method"] == m, "repr"]) >= set(T.REPRS)]
        method = both[0] if both else (T.ordered_methods(df["method"].dropna().unique()) or [None])[0]
    df = df[df["method"] == method]
    if seed is None and len(df):
        seed = df["seed"].min()
    df = df[df["seed"] == seed]
    if layer is None and len(df):
        layer = df["layer"].iloc[0]
    df = df[df["layer"] == layer]
    keys = None
    for rep in T.REPRS:
        k = set(map(tuple, df.loc[df["repr"] == rep, ["out_channel", "in_channel"]].drop_duplicates().to_numpy()))
        keys = k if keys is None else (keys & k if k else keys)
    chosen = sorted(keys or set())[:max_filters]
    return df, method, seed, layer, chosen


def fig_filters(filters: pd.DataFrame, filter_density: pd.DataFrame, out_stem,
                summary: pd.DataFrame | None = None, method: str | None = None, seed=None, layer=None,
                sparsity: float | None = None, max_filters: int = 6) -> Drawn:
    df, method, seed, layer, chosen = _pick_filters(filters, method, seed, layer, max_filters)
    n = max(1, len(chosen))
    with plt.rc_context(RC):
        fig = plt.figure(figsize=(max(9.0, 1.55 * n + 2.0), 8.2), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[1.05, 1])
        heat_axes = top.subplots(2, n, squeeze=False)
        if not chosen:
            for ax in heat_axes.ravel():
                ax.set_visible(False)
            ax = top.add_subplot(1, 1, 1)
            _no_data(ax, "filters table is empty")
            top.suptitle("Trained K×K filters, SP vs IP")
        else:
            for r, rep in enumerate(T.REPRS):
                mats = []
                for (o, i) in chosen:
                    f = df[(df["repr"] == rep) & (df["out_channel"] == o) & (df["in_channel"] == i)]
                    if f.empty:
                        mats.append(None)
                        continue
                    k_r, k_c = int(f["row"].max()) + 1, int(f["col"].max()) + 1
                    mat = np.full((k_r, k_c), np.nan)
                    mat[f["row"].astype(int), f["col"].astype(int)] = f["value"]
                    mats.append(mat)
                finite = [np.nanmax(np.abs(m)) for m in mats if m is not None and np.isfinite(m).any()]
                vmax = max(finite) if finite and max(finite) > 0 else 1.0
                im = None
                for c, mat in enumerate(mats):
                    ax = heat_axes[r, c]
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if mat is None:
                        _no_data(ax, f"{rep.upper()} filter missing")
                        continue
                    im = ax.imshow(mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
                    for (y, x), v in np.ndenumerate(mat):
                        if v == 0:
                            ax.text(x, y, "0", ha="center", va="center", fontsize=8, color="#444444")
                    nz = int(np.count_nonzero(np.nan_to_num(mat)))
                    ax.set_title(f"out {chosen[c][0]}, in {chosen[c][1]}\n{nz}/{mat.size} non-zero", fontsize=8)
                    for spine in ax.spines.values():
                        spine.set_visible(True)
                        spine.set_color(COLORS[rep])
                        spine.set_linewidth(2)
                heat_axes[r, 0].set_ylabel(LABELS[rep], color=COLORS[rep], fontsize=9)
                if im is not None:
                    top.colorbar(im, ax=list(heat_axes[r, :]), shrink=0.8, label="weight")
            top.suptitle(f"Trained K×K filters of layer {layer} ({method}, seed {seed}); '0' marks exact zeros")
        ax_layer, ax_method = bottom.subplots(1, 2, width_ratios=[1.6, 1])
        _draw_layer_density(ax_layer, filter_density, method)
        runs = _filter_density_runs(summary, filter_density, sparsity)
        if _has(runs, "filter_density"):
            _draw_method_points(ax_method, runs, "filter_density", 100.0)
            ax_method.set_ylabel("spatially non-zero filter entries (%)")
            ax_method.set_ylim(-3, 105)
            ax_method.grid(axis="y", alpha=0.3)
        else:
            _no_data(ax_method, "no filter densities")
        ax_method.set_title("Mean spatial filter density per method\n(points: seeds; bars: mean ± 1 sd)")
        bottom.legend(handles=_repr_legend(), loc="outside lower center", ncol=2, frameon=False)
        return _save(fig, out_stem)


def _filter_density_runs(summary, filter_density, sparsity):
    if summary is not None and _has(summary, "filter_density"):
        return T.at_sparsity(summary, sparsity)
    if _has(filter_density, "density"):
        per_run = filter_density.groupby(["method", "repr", "seed"])["density"].mean().reset_index()
        return per_run.rename(columns={"density": "filter_density"})
    return pd.DataFrame(columns=["method", "repr", "seed", "filter_density"])


def _draw_layer_density(ax, filter_density: pd.DataFrame, method: str | None) -> None:
    fd = filter_density[filter_density["method"] == method] if method is not None else filter_density.iloc[0:0]
    if not _has(fd, "density"):
        if _has(filter_density, "density"):
            method = T.ordered_methods(filter_density["method"].dropna().unique())[0]
            fd = filter_density[filter_density["method"] == method]
        else:
            _no_data(ax, "filter_density table is empty")
            ax.set_title("Spatial filter density per layer")
            return
    layers = list(dict.fromkeys(fd["layer"].dropna()))
    pos = {name: i for i, name in enumerate(layers)}
    for rep in T.REPRS:
        st = _mean_sd_by(fd[fd["repr"] == rep], "layer", "density")
        if st.empty:
            continue
        st["x"] = st["layer"].map(pos)
        st = st.sort_values("x")
        ax.errorbar(st["x"], st["mean"] * 100, yerr=st["sd"].fillna(0) * 100, color=COLORS[rep],
                    marker=MARKERS[rep], markersize=4, capsize=2, linewidth=1.2)
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels(layers, rotation=90, fontsize=6 if len(layers) > 12 else 8)
    ax.set_ylim(-3, 105)
    ax.set_ylabel("spatially non-zero entries (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"Spatial filter density per layer ({method}; mean ± 1 sd over seeds)")


# --------------------------------------------------------------------------- (4) gradient flow

def _method_panels(subfig, methods, rows, ncols, df, draw, no_data_message: str) -> None:
    """One panel per method on a rows x ncols grid of ``subfig``, drawn by ``draw(ax, rows_of_method)``."""
    if not methods:
        _no_data(subfig.add_subplot(1, 1, 1), no_data_message)
        return
    axes = subfig.subplots(rows, ncols, squeeze=False).ravel()
    for ax in axes[len(methods):]:
        ax.set_visible(False)
    for ax, method in zip(axes, methods):
        draw(ax, df[df["method"] == method])
        ax.set_title(method)


def fig_gradient_flow(history: pd.DataFrame, gf_layers: pd.DataFrame, out_stem) -> Drawn:
    # history.sparsity is the sparsity measured at each epoch (it ramps up under GMP): not a selector
    hist = history
    methods_h = T.ordered_methods(hist["method"].dropna().unique()) if _has(hist, "gf") else []
    init = gf_layers[gf_layers["when"] == "init"] if len(gf_layers) else gf_layers
    methods_l = T.ordered_methods(init["method"].dropna().unique()) if _has(init, "gf") else []
    ncols = 4
    rows_h = max(1, math.ceil(len(methods_h) / ncols))
    rows_l = max(1, math.ceil(len(methods_l) / ncols))
    with plt.rc_context(RC):
        fig = plt.figure(figsize=(3.4 * ncols, 2.7 * (rows_h + rows_l) + 1.6), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[rows_h + 0.35, rows_l + 0.6])
        _method_panels(top, methods_h, rows_h, ncols, hist, _draw_gf_curves, "history table has no gradient flow")
        top.suptitle("Gradient flow ‖g‖² during training (log scale): line = mean over seeds, band = min–max; "
                     "dashed: IP on the coordinates it shares with SP (λ only, no FB)")
        _method_panels(bottom, methods_l, rows_l, ncols, init, _draw_gf_layers, "gf_layers table has no 'init' rows")
        bottom.suptitle("Gradient flow per layer at initialisation (mean over seeds, log scale)")
        extra = [Line2D([], [], color=COLORS["ip"], linestyle="--", label="IP, shared coordinates (λ) only")]
        bottom.legend(handles=_repr_legend(extra=extra), loc="outside lower center", ncol=3, frameon=False)
        return _save(fig, out_stem)


def _draw_gf_curves(ax, hist: pd.DataFrame) -> None:
    drawn = []
    for rep in T.REPRS:
        rows = hist[hist["repr"] == rep]
        for metric, style in (("gf", "-"), ("gf_shared", "--")):
            if metric == "gf_shared" and rep == "sp":
                continue
            st = _mean_sd_by(rows, "epoch", metric).sort_values("epoch") if _has(rows, metric) else pd.DataFrame()
            st = st[st["mean"] > 0] if len(st) else st
            if st.empty:
                continue
            ax.plot(st["epoch"], st["mean"], color=COLORS[rep], linestyle=style, marker=MARKERS[rep], markersize=3)
            if style == "-":
                ax.fill_between(st["epoch"], st["min"].clip(lower=st["mean"].min() * 1e-3), st["max"],
                                color=COLORS[rep], alpha=0.15, linewidth=0)
            drawn.append(st["mean"])
    if not drawn:
        _no_data(ax)
        return
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("gradient flow ‖g‖²")
    ax.grid(alpha=0.3, which="major")


def _draw_gf_layers(ax, rows: pd.DataFrame) -> None:
    layers = list(dict.fromkeys(rows["layer"].dropna()))
    pos = {name: i for i, name in enumerate(layers)}
    for rep in T.REPRS:
        st = _mean_sd_by(rows[rows["repr"] == rep], "layer", "gf")
        st = st[st["mean"] > 0]
        if st.empty:
            continue
        st["x"] = st["layer"].map(pos)
        st = st.sort_values("x")
        ax.plot(st["x"], st["mean"], color=COLORS[rep], marker=MARKERS[rep], markersize=3, linewidth=1.2)
    ax.set_yscale("log")
    if len(layers) <= 24:
        ax.set_xticks(range(len(layers)))
        ax.set_xticklabels(layers, rotation=90, fontsize=5.5)
    else:
        ax.set_xlabel("layer index (input → output)")
    ax.set_ylabel("‖g_layer‖²")
    ax.grid(alpha=0.3)


# --------------------------------------------------------------------------- (5) Hessian

def fig_hessian(hessian: pd.DataFrame, density: pd.DataFrame, out_stem) -> Drawn:
    methods = T.ordered_methods(set(hessian["method"].dropna()) | set(density["method"].dropna()))
    with plt.rc_context(RC):
        if not methods:
            fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
            _no_data(ax, "hessian and density tables are empty")
            ax.set_title("Hessian spectra, SP vs IP")
            return _save(fig, out_stem)
        fig, axes = plt.subplots(len(methods), 4, figsize=(15, 2.9 * len(methods) + 1.0), squeeze=False,
                                 layout="constrained")
        for row, method in zip(axes, methods):
            h = hessian[hessian["method"] == method]
            _draw_eigenvalues(row[0], h[h["kind"] == "eigenvalue"])
            row[0].set_title(f"{method}: top Hessian eigenvalues")
            _draw_trace(row[1], h[h["kind"] == "trace"])
            row[1].set_title(f"{method}: Hessian trace (Hutchinson)")
            for ax, when in zip(row[2:], ("init", "final")):
                d = density[(density["method"] == method) & (density["when"] == when)]
                _draw_density(ax, d)
                ax.set_title(f"{method}: spectral density, {'at init' if when == 'init' else 'after training'}")
        extra = [Line2D([], [], color="k", marker="o", markerfacecolor="none", linestyle="", label="at init"),
                 Line2D([], [], color="k", marker="o", linestyle="", label="after training")]
        fig.legend(handles=_repr_legend(extra=extra), loc="outside lower center", ncol=4, frameon=False)
        fig.suptitle("Hessian of the training loss over the trainable unpruned coordinates, SP vs IP "
                     "(mean ± 1 sd over seeds; densities by stochastic Lanczos quadrature)")
        return _save(fig, out_stem)


def _draw_eigenvalues(ax, eig: pd.DataFrame) -> None:
    if not _has(eig, "value", "rank"):
        _no_data(ax)
        return
    for rep in T.REPRS:
        for when, face in (("init", "none"), ("final", COLORS[rep])):
            rows = eig[(eig["repr"] == rep) & (eig["when"] == when)]
            if rows.empty:
                continue
            st = _mean_sd_by(rows, "rank", "value").sort_values("rank")
            shift = OFFSETS[rep] * 0.8 + (0.06 if when == "final" else -0.06)
            ax.errorbar(st["rank"] + shift, st["mean"], yerr=st["sd"].fillna(0), color=COLORS[rep], linestyle="",
                        marker=MARKERS[rep], markerfacecolor=face, markersize=5, capsize=2)
    if _positive(eig["value"]):
        ax.set_yscale("log")
    ranks = sorted(eig["rank"].dropna().unique())
    ax.set_xticks(ranks)
    ax.set_xticklabels([f"{int(r)}" for r in ranks])
    ax.set_xlabel("eigenvalue rank")
    ax.set_ylabel("eigenvalue")
    ax.grid(alpha=0.3)


def _draw_trace(ax, trace: pd.DataFrame) -> None:
    if not _has(trace, "value"):
        _no_data(ax)
        return
    cats = [w for w in ("init", "final") if (trace["when"] == w).any()]
    for i, when in enumerate(cats):
        for rep in T.REPRS:
            vals = trace.loc[(trace["when"] == when) & (trace["repr"] == rep), "value"].dropna()
            if vals.empty:
                continue
            sd = vals.std(ddof=1) if len(vals) > 1 else 0
            ax.scatter(i + OFFSETS[rep] + np.linspace(-0.04, 0.04, len(vals)), vals, s=12, color=COLORS[rep],
                       marker=MARKERS[rep], alpha=0.5, linewidths=0)
            ax.errorbar(i + OFFSETS[rep] + 0.1, vals.mean(), yerr=sd, color=COLORS[rep], marker="_",
                        markersize=12, capsize=3)
    ax.set_xticks(range(len(cats)))
    ax.set_xlim(-0.6, len(cats) - 0.4)
    ax.set_xticklabels(["at init" if c == "init" else "after training" for c in cats])
    if _positive(trace["value"]):
        ax.set_yscale("log")
    ax.set_ylabel("trace")
    ax.grid(axis="y", alpha=0.3)


def _draw_density(ax, d: pd.DataFrame) -> None:
    if not _has(d, "density", "grid"):
        _no_data(ax)
        return
    for rep in T.REPRS:
        rows = d[d["repr"] == rep]
        if rows.empty:
            continue
        st = _mean_sd_by(rows, "grid", "density").sort_values("grid")
        st = st[st["mean"] > 0]
        ax.plot(st["grid"], st["mean"], color=COLORS[rep], linewidth=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    ax.grid(alpha=0.3)


# --------------------------------------------------------------------------- (6) generalisation gaps

def fig_generalisation(sweep: pd.DataFrame, out_stem) -> Drawn:
    methods = T.sparse_methods(sweep) if len(sweep) else []
    with plt.rc_context(RC):
        if not methods or not _has(sweep, "sparsity"):
            fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
            _no_data(ax, "sweep table is empty")
            ax.set_title("Generalisation gap vs sparsity: SP vs IP")
            return _save(fig, out_stem)
        factor = T.percent_scale(sweep["train_acc"], sweep["test_acc"])
        fig, axes = plt.subplots(2, len(methods), figsize=(3.3 * len(methods) + 0.5, 6.4), squeeze=False,
                                 layout="constrained", sharey="row")
        for c, method in enumerate(methods):
            runs = sweep[sweep["method"] == method]
            for r, (metric, label, f) in enumerate((("gap_acc", "train − test accuracy (pp)", factor),
                                                     ("gap_loss", "test − train loss", 1.0))):
                ax = axes[r, c]
                if _has(runs, metric):
                    _vs_sparsity(ax, runs, metric, f)
                    ax.axhline(0, color="#999999", linewidth=0.8)
                    ax.grid(alpha=0.3)
                else:
                    _no_data(ax, f"no {metric}")
                if c == 0:
                    ax.set_ylabel(label if f == 100 or metric == "gap_loss" else "train − test accuracy")
                ax.set_title(method if r == 0 else "")
        fig.legend(handles=_repr_legend(), loc="outside lower center", ncol=2, frameon=False)
        fig.suptitle("Generalisation gap vs sparsity at the end of training (smaller = generalises better)\n"
                     "mean ± 1 sd over seeds, points = seeds")
        return _save(fig, out_stem)


# --------------------------------------------------------------------------- (7) Theorem 1

#: check names whose rows carry value = GF_IP and reference = GF_SP (used when gf_masks.csv is absent)
GF_CHECKS = ("b_gf", "gradient_flow")


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
        return _save(fig, out_stem)


GF_RTOL = 1e-9   # the relative round-off tolerance of ip.theory.gradient_flow_comparison


def _gf_points(checks: pd.DataFrame, gf_masks: pd.DataFrame | None) -> pd.DataFrame:
    """(method, sparsity, value = GF_IP, reference = GF_SP, passed) per mask."""
    if gf_masks is not None and _has(gf_masks, "gf_sp", "gf_ip"):
        pts = gf_masks.dropna(subset=["gf_sp", "gf_ip"]).rename(columns={"gf_ip": "value", "gf_sp": "reference"})
        keys = [k for k in ("method", "sparsity", "seed") if k in pts.columns]
        verdicts = (checks[checks["check"] == "gradient_flow"] if len(checks) and "check" in checks.columns
                    else pd.DataFrame())
        if keys and not verdicts.empty and {"passed", *keys} <= set(verdicts.columns):
            # the stage's own verdict: GF_IP >= GF_SP up to float round-off (a disconnected net has GF_IP = GF_SP)
            return pts.merge(verdicts[[*keys, "passed"]].drop_duplicates(keys), on=keys, how="left")
        return pts.assign(passed=pts["value"] >= pts["reference"] * (1 - GF_RTOL))
    if not len(checks):
        return checks
    return checks[checks["check"].isin(GF_CHECKS)].dropna(subset=["value", "reference"])


def _draw_gf_scatter(ax, checks: pd.DataFrame, gf_masks: pd.DataFrame | None = None) -> None:
    gf = _gf_points(checks, gf_masks)
    ax.set_title("(b) gradient flow per mask: GF_IP vs GF_SP\n(above the diagonal: IP has more gradient flow)")
    if gf.empty:
        _no_data(ax, "no gradient flow per mask (gf_masks table)")
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
    if _positive(both):
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
    rows = checks.dropna(subset=["check"]) if len(checks) else checks
    if rows.empty:
        _no_data(ax, "checks table is empty")
        return
    names = sorted(rows["check"].unique())
    passed = [int((rows.loc[rows["check"] == n, "passed"] == True).sum()) for n in names]  # noqa: E712
    failed = [int((rows.loc[rows["check"] == n, "passed"] == False).sum()) for n in names]  # noqa: E712
    unknown = [int((rows["check"] == n).sum()) - p - f for n, p, f in zip(names, passed, failed)]
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
        _no_data(ax, "one_step table is empty")
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
    ax.set_title(f"(c) loss after one gradient step ({method}, sparsity {_sparsity_label(sparsity)})")
    ax.legend(frameon=False, fontsize=7)
    ax.grid(alpha=0.3)


def _draw_one_step_differences(ax, one_step: pd.DataFrame) -> None:
    combos = _one_step_combos(one_step)
    ax.set_title("(c) L_SP(η) − L_IP(η) for every mask (> 0: IP lower after the step)")
    if not combos:
        _no_data(ax, "one_step table is empty")
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


# --------------------------------------------------------------------------- (8) ablations

ABLATION_GROUPS = (("FB initialisation", "fb_init="), ("FB sharing", "share="),
                   ("fair parameter budget (FB charged to the budget)", "fair_budget"))


def fig_ablation(ablation: pd.DataFrame, summary: pd.DataFrame, out_stem) -> Drawn:
    from .verdicts import sp_baseline

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
    factor = T.percent_scale(ab["test_acc"] if len(ab) else pd.Series(dtype=float),
                             summary["test_acc"] if len(summary) else pd.Series(dtype=float))
    with plt.rc_context(RC):
        fig, axes = _grid(len(panels) + 1, 4, panel=(3.6, 3.6), sharey=False)
        for ax, (title, members) in zip(axes, panels):
            ax.set_title(title)
            if not members:
                _no_data(ax, "no ablation runs")
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
        dense = summary[summary["method"] == "dense"] if len(summary) else summary
        if not _has(dense, "test_acc") and len(ab):
            dense = ab[ab["method"] == "dense"]
        ax = axes[-1]
        ax.set_title("dense training (no pruning)")
        if _has(dense, "test_acc"):
            _draw_method_points(ax, dense, "test_acc", factor, diff_label="IP−SP ")
            ax.set_ylabel("test accuracy (%)" if factor == 100 else "test accuracy")
            ax.grid(axis="y", alpha=0.3)
        else:
            _no_data(ax, "no dense runs in summary")
        method = ", ".join(m for m in T.ordered_methods(ab["method"].dropna().unique()) if m != "dense") or "n/a"
        fig.legend(handles=_repr_legend(), loc="outside lower center", ncol=2, frameon=False)
        fig.suptitle(f"Ablations (pruning method: {method}): test accuracy, points = seeds, bars = mean ± 1 sd")
        return _save(fig, out_stem)


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
    ax.set_xticklabels([c[0] for c in cats], rotation=30, ha="right")
    ax.set_xlim(-0.6, len(cats) - 0.4)
    ax.set_ylabel("test accuracy (%)" if factor == 100 else "test accuracy")
    ax.grid(axis="y", alpha=0.3)


# --------------------------------------------------------------------------- (9) costs

def _log_bars_with_reference(ax, sparse, methods, bars, reference: pd.Series, reference_label: str,
                             ylabel: str) -> None:
    """Grouped bars on a log axis with the dense network's value (median of ``reference``) as a dotted line."""
    _grouped_bars(ax, sparse, methods, bars)
    reference = reference.dropna()
    if len(reference):
        ax.axhline(reference.median(), color="k", linestyle=":", linewidth=1, label=reference_label)
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, fontsize=7)


def fig_costs(summary: pd.DataFrame, costs_reference: pd.DataFrame, out_stem, sparsity: float | None = None
              ) -> Drawn:
    runs = T.at_sparsity(summary, sparsity)
    sparse = runs[runs["method"] != "dense"]
    methods = T.sparse_methods(runs) if len(runs) else []
    with plt.rc_context(RC):
        fig, axes = plt.subplots(2, 2, figsize=(13, 9), layout="constrained")
        ax_params, ax_flops, ax_time, ax_ref = axes.ravel()
        # (a) stored numbers: SP kept weights, IP kept coefficients, IP FB entries
        ax_params.set_title(f"Stored parameters at sparsity {_sparsity_label(sparsity)} (mean over seeds)")
        if methods and _has(sparse, "kept_params"):
            bars = [("SP: kept weights", "sp", "kept_params", None),
                    ("IP: kept coefficients λ", "ip", "kept_params", None),
                    ("IP: filter-basis entries", "ip", "fb_overhead_params", "//")]
            _log_bars_with_reference(ax_params, sparse, methods, bars,
                                     runs.loc[runs["repr"] == "sp", "total_params"],
                                     "all parameters of the dense net", "number of stored values (log)")
        else:
            _no_data(ax_params, "no parameter counts")
        # (b) sparse inference MACs
        ax_flops.set_title("Inference multiply-accumulates (IP: factorised path)")
        if methods and _has(sparse, "flops_sparse"):
            _log_bars_with_reference(ax_flops, sparse, methods,
                                     [("SP: sparse", "sp", "flops_sparse", None),
                                      ("IP: sparse (basis conv + 1×1)", "ip", "flops_sparse", None)],
                                     runs["flops_dense"], "dense network", "MACs per image (log)")
        else:
            _no_data(ax_flops, "no FLOP counts")
        # (c) training step time
        ax_time.set_title("Training step time (points: seeds; bars: mean ± 1 sd)")
        if _has(runs, "step_seconds"):
            _draw_method_points(ax_time, runs, "step_seconds", 1000.0)
            ax_time.set_ylabel("seconds per step × 1000 (ms)")
            ax_time.grid(axis="y", alpha=0.3)
            ax_time.legend(handles=_repr_legend(), frameon=False, fontsize=7)
        else:
            _no_data(ax_time, "no step times")
        # (d) paper-scale nets
        ax_ref.set_title("FB overhead of paper-scale networks vs the paper's statement")
        ref = costs_reference.dropna(subset=["fb_overhead_percent"]) if len(costs_reference) else costs_reference
        if len(ref):
            labels = [f"{r.model}" + ("" if pd.isna(r.width) else f"\nwidth {int(r.width)}")
                      + (f"\n{r.share}" if "share" in ref.columns and isinstance(getattr(r, "share", None), str)
                         else "") for r in ref.itertuples()]
            x = np.arange(len(ref))
            ax_ref.bar(x, ref["fb_overhead_percent"], color=COLORS["ip"], alpha=0.85)
            for xi, v in zip(x, ref["fb_overhead_percent"]):
                ax_ref.text(xi, v, f"{v:.3g} %", ha="center", va="bottom", fontsize=7)
            ax_ref.axhline(PAPER_FB_OVERHEAD_PERCENT, color="k", linestyle="--", linewidth=1,
                           label=f"paper: ≤ {PAPER_FB_OVERHEAD_PERCENT:g} % of dense parameters")
            ax_ref.set_xticks(x)
            ax_ref.set_xticklabels(labels, fontsize=7)
            if _positive(ref["fb_overhead_percent"]):
                ax_ref.set_yscale("log")
            ax_ref.set_ylabel("FB entries / dense parameters (%)")
            ax_ref.legend(frameon=False, fontsize=7)
        else:
            _no_data(ax_ref, "costs_reference table is empty")
        fig.suptitle("Costs of SP and IP: parameters, inference MACs, training time")
        return _save(fig, out_stem)


def _grouped_bars(ax, runs: pd.DataFrame, methods: Sequence[str], bars: Sequence[tuple]) -> None:
    width = 0.8 / len(bars)
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    for j, (label, rep, metric, hatch) in enumerate(bars):
        xs, ys = [], []
        for i, m in enumerate(methods):
            vals = runs.loc[(runs["method"] == m) & (runs["repr"] == rep), metric].dropna()
            x = i - 0.4 + width * (j + 0.5)
            if vals.empty:
                ax.text(x, 0.02, "missing", rotation=90, fontsize=6, color=MISSING_COLOR, ha="center",
                        va="bottom", transform=trans)
                continue
            xs.append(x)
            ys.append(vals.mean())
        ax.bar(xs, ys, width=width, color=COLORS[rep], alpha=0.9 if hatch is None else 0.45, hatch=hatch,
               edgecolor="white" if hatch is None else COLORS[rep], label=label)
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods, rotation=30 if len(methods) > 5 else 0)
    ax.set_xlim(-0.6, len(methods) - 0.4)


# --------------------------------------------------------------------------- all figures

def draw_all(tables: T.Tables, out_dir) -> dict[str, Drawn]:
    """Every figure of the study from ``tables`` into ``out_dir`` (file stems from verdicts.FIGURES)."""
    out = Path(out_dir)
    s = T.headline_sparsity(tables)
    t = tables
    jobs = {
        "accuracy": lambda p: fig_accuracy(t.summary, p, s),
        "sweep": lambda p: fig_sweep(t.sweep, p, t.summary),
        "filters": lambda p: fig_filters(t.filters, t.filter_density, p, t.summary, sparsity=s),
        "gradient_flow": lambda p: fig_gradient_flow(t.history, t.gf_layers, p),
        "hessian": lambda p: fig_hessian(t.hessian, t.density, p),
        "generalisation": lambda p: fig_generalisation(t.sweep, p),
        "theorem1": lambda p: fig_theorem1(t.checks, t.one_step, p, gf_masks=t.gf_masks),
        "ablation": lambda p: fig_ablation(t.ablation, t.summary, p),
        "costs": lambda p: fig_costs(t.summary, t.costs_reference, p, s),
    }
    return {name: job(out / FIGURES[name]) for name, job in jobs.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Draw the study's figures from the tidy tables in --results.")
    parser.add_argument("--results", default="results", help="folder with summary.csv etc. (default: results)")
    parser.add_argument("--out", default="paper_figures", help="output folder (default: paper_figures)")
    args = parser.parse_args(argv)
    drawn = draw_all(T.load_tables(args.results), args.out)
    for name, d in drawn.items():
        print(f"{name}: " + ", ".join(str(p) for p in d.paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
