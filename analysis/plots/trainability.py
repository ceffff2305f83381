"""Trainability figures: how much gradient signal IP and SP get, and the curvature they see.

- :func:`fig_gradient_flow` (fig. 4) gradient flow during training and per layer at init
- :func:`fig_hessian`       (fig. 5) top Hessian eigenvalues, trace and spectral density
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .. import tables as T
from .style import COLORS, MARKERS, OFFSETS, RC, Drawn, all_positive, has_values, mean_sd_by, no_data, repr_legend, save

# --------------------------------------------------------------------------- (4) gradient flow

def _method_panels(subfig, methods, rows, ncols, df, draw, no_data_message: str, rewound=frozenset()) -> None:
    """One panel per method on a rows x ncols grid of ``subfig``, drawn by ``draw(ax, rows_of_method)``;
    a method in ``rewound`` is titled as measured first at its rewind point (gf_rewind)."""
    if not methods:
        no_data(subfig.add_subplot(1, 1, 1), no_data_message)
        return
    axes = subfig.subplots(rows, ncols, squeeze=False).ravel()
    for ax in axes[len(methods):]:
        ax.set_visible(False)
    for ax, method in zip(axes, methods):
        draw(ax, df[df["method"] == method])
        ax.set_title(f"{method} (first point: gf_rewind)" if method in rewound else method)


def fig_gradient_flow(history: pd.DataFrame, gf_layers: pd.DataFrame, out_stem,
                      summary: pd.DataFrame | None = None) -> Drawn:
    # history.sparsity is the sparsity measured at each epoch (it ramps up under GMP): not a selector
    hist = history
    methods_h = T.ordered_methods(hist["method"].dropna().unique()) if has_values(hist, "gf") else []
    # a method that starts training at a rewind point (LT) is measured there, not at initialisation
    rewound = set(summary.loc[T.starts_at_rewind(summary), "method"]) if summary is not None and len(summary) \
        else set()
    init = gf_layers[gf_layers["when"].isin(("init", "rewind"))] if len(gf_layers) else gf_layers
    methods_l = T.ordered_methods(init["method"].dropna().unique()) if has_values(init, "gf") else []
    ncols = 4
    rows_h = max(1, math.ceil(len(methods_h) / ncols))
    rows_l = max(1, math.ceil(len(methods_l) / ncols))
    with plt.rc_context(RC):
        fig = plt.figure(figsize=(3.4 * ncols, 2.7 * (rows_h + rows_l) + 1.6), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[rows_h + 0.35, rows_l + 0.6])
        _method_panels(top, methods_h, rows_h, ncols, hist, _draw_gf_curves, "history table has no gradient flow",
                       rewound)
        top.suptitle("Gradient flow ‖g‖² during training (log scale): line = mean over seeds, band = min–max; "
                     "dashed: IP on the coordinates it shares with SP (λ only, no FB)")
        _method_panels(bottom, methods_l, rows_l, ncols, init, _draw_gf_layers, "gf_layers table has no 'init' rows",
                       rewound | set(init.loc[init["when"] == "rewind", "method"]) if len(init) else rewound)
        bottom.suptitle("Gradient flow per layer at initialisation (mean over seeds, log scale); methods marked "
                        "gf_rewind: at the rewind point instead")
        extra = [Line2D([], [], color=COLORS["ip"], linestyle="--", label="IP, shared coordinates (λ) only")]
        bottom.legend(handles=repr_legend(extra=extra), loc="outside lower center", ncol=3, frameon=False)
        return save(fig, out_stem)


def _draw_gf_curves(ax, hist: pd.DataFrame) -> None:
    drawn = []
    for rep in T.REPRS:
        rows = hist[hist["repr"] == rep]
        for metric, style in (("gf", "-"), ("gf_shared", "--")):
            if metric == "gf_shared" and rep == "sp":
                continue
            st = mean_sd_by(rows, "epoch", metric).sort_values("epoch") if has_values(rows, metric) else pd.DataFrame()
            st = st[st["mean"] > 0] if len(st) else st
            if st.empty:
                continue
            ax.plot(st["epoch"], st["mean"], color=COLORS[rep], linestyle=style, marker=MARKERS[rep], markersize=3)
            if style == "-":
                ax.fill_between(st["epoch"], st["min"].clip(lower=st["mean"].min() * 1e-3), st["max"],
                                color=COLORS[rep], alpha=0.15, linewidth=0)
            drawn.append(st["mean"])
    if not drawn:
        no_data(ax)
        return
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # whole epochs (0: initialisation)
    ax.set_xlabel("epoch")
    ax.set_ylabel("gradient flow ‖g‖²")
    ax.grid(alpha=0.3, which="major")


def _draw_gf_layers(ax, rows: pd.DataFrame) -> None:
    layers = list(dict.fromkeys(rows["layer"].dropna()))
    pos = {name: i for i, name in enumerate(layers)}
    for rep in T.REPRS:
        st = mean_sd_by(rows[rows["repr"] == rep], "layer", "gf")
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
            no_data(ax, "hessian and density tables are empty")
            ax.set_title("Hessian spectra, SP vs IP")
            return save(fig, out_stem)
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
        fig.legend(handles=repr_legend(extra=extra), loc="outside lower center", ncol=4, frameon=False)
        fig.suptitle("Hessian of the training loss over the trainable unpruned coordinates, SP vs IP "
                     "(mean ± 1 sd over seeds; densities by stochastic Lanczos quadrature)")
        return save(fig, out_stem)


def _draw_eigenvalues(ax, eig: pd.DataFrame) -> None:
    if not has_values(eig, "value", "rank"):
        no_data(ax)
        return
    for rep in T.REPRS:
        for when, face in (("init", "none"), ("final", COLORS[rep])):
            rows = eig[(eig["repr"] == rep) & (eig["when"] == when)]
            if rows.empty:
                continue
            st = mean_sd_by(rows, "rank", "value").sort_values("rank")
            shift = OFFSETS[rep] * 0.8 + (0.06 if when == "final" else -0.06)
            ax.errorbar(st["rank"] + shift, st["mean"], yerr=st["sd"].fillna(0), color=COLORS[rep], linestyle="",
                        marker=MARKERS[rep], markerfacecolor=face, markersize=5, capsize=2)
    if all_positive(eig["value"]):
        ax.set_yscale("log")
    ranks = sorted(eig["rank"].dropna().unique())
    ax.set_xticks(ranks)
    ax.set_xticklabels([f"{int(r)}" for r in ranks])
    ax.set_xlabel("eigenvalue rank")
    ax.set_ylabel("eigenvalue")
    ax.grid(alpha=0.3)


def _draw_trace(ax, trace: pd.DataFrame) -> None:
    if not has_values(trace, "value"):
        no_data(ax)
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
    if all_positive(trace["value"]):
        ax.set_yscale("log")
    ax.set_ylabel("trace")
    ax.grid(axis="y", alpha=0.3)


#: the density axis shows this many decades below the highest density: SLQ's Gaussian tails reach 1e-300,
#: and an axis that follows them squeezes the bulk of the spectrum into a line
DENSITY_DECADES = 6


def _draw_density(ax, d: pd.DataFrame) -> None:
    if not has_values(d, "density", "grid"):
        no_data(ax)
        return
    peak = 0.0
    for rep in T.REPRS:
        rows = d[d["repr"] == rep]
        if rows.empty:
            continue
        st = mean_sd_by(rows, "grid", "density").sort_values("grid")
        st = st[st["mean"] > 0]
        ax.plot(st["grid"], st["mean"], color=COLORS[rep], linewidth=1.2)
        peak = max(peak, float(st["mean"].max()) if len(st) else 0.0)
    ax.set_yscale("log")
    if peak > 0:
        ax.set_ylim(peak * 10.0 ** -DENSITY_DECADES, peak * 2)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel(f"density (down to peak × 1e-{DENSITY_DECADES})")
    ax.grid(alpha=0.3)
