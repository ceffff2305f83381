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

from ip.pruning import method_info

from .. import tables as T
from .style import COLORS, MARKERS, RC, Drawn, all_positive, has_values, mean_sd_by, no_data, repr_legend, save

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
        ax.set_title(f"{method} (first point: gf_rewind)" if method in rewound
                     else f"{method} (first point: the pruned trained net)" if _starts_trained(method) else method)


def _starts_trained(method: str) -> bool:
    """Whether sparse training of ``method`` starts from the trained dense network (``oneshot``): its first
    gradient-flow point is measured there, not at initialisation."""
    try:
        return bool(method_info(method).finetunes)
    except (KeyError, ValueError):
        return False


def fig_gradient_flow(history: pd.DataFrame, gf_layers: pd.DataFrame, out_stem,
                      summary: pd.DataFrame | None = None) -> Drawn:
    # history.sparsity is the sparsity measured at each epoch (it ramps up under GMP): not a selector
    hist = _with_start(history, summary)
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
        top.suptitle("Gradient flow ‖g‖² during training (log scale), measured at the start of sparse training "
                     "and at each epoch's end: line = mean over seeds, band = min–max;\ndashed: only the masked "
                     "prunable tensors, the coordinates SP and IP share (w / λ)")
        _method_panels(bottom, methods_l, rows_l, ncols, init, _draw_gf_layers, "gf_layers table has no 'init' rows",
                       rewound | set(init.loc[init["when"] == "rewind", "method"]) if len(init) else rewound)
        bottom.suptitle("Gradient flow per part of the network at the start of sparse training (sum over its layers, "
                        "mean over seeds, log scale); gf_rewind: at the rewind point")
        extra = [Line2D([], [], color="0.3", linestyle="--", label="shared coordinates only (SP: masked w; IP: λ)")]
        bottom.legend(handles=repr_legend(extra=extra), loc="outside lower center", ncol=3, frameon=False)
        return save(fig, out_stem)


def _with_start(history: pd.DataFrame, summary: pd.DataFrame | None) -> pd.DataFrame:
    """The history with each run's gradient flow at the start of sparse training as epoch 0 (the summary's
    ``gf_init`` / ``gf_init_shared``, or ``gf_rewind`` for a run that starts at a rewind point), unless the
    history has an epoch 0 already."""
    if summary is None or not len(summary) or "gf_init" not in summary or \
            (len(history) and (history["epoch"] == 0).any()):
        return history
    start = summary[["method", "repr", "seed"]].copy()
    start["epoch"] = 0
    gf_rewind = summary["gf_rewind"] if "gf_rewind" in summary else pd.Series(np.nan, index=summary.index)
    start["gf"] = summary["gf_init"].where(summary["gf_init"].notna(), gf_rewind)
    if "gf_init_shared" in summary:
        start["gf_shared"] = summary["gf_init_shared"]
    start = start.dropna(subset=["gf"])
    return pd.concat([start, history], ignore_index=True) if len(start) else history


def _draw_gf_curves(ax, hist: pd.DataFrame) -> None:
    drawn = []
    for rep in T.REPRS:
        rows = hist[hist["repr"] == rep]
        for metric, style in (("gf", "-"), ("gf_shared", "--")):
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
    epochs = sorted(int(e) for e in hist["epoch"].dropna().unique())
    if len(epochs) <= 12:   # whole epochs (0: the start of sparse training)
        ax.set_xticks(epochs)
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("gradient flow ‖g‖²")
    ax.grid(alpha=0.3, which="major")


def layer_group(layer: str) -> str:
    """The part of the network a layer belongs to: a ResNet stage (``layer<k>.…``), the stem before it,
    or the head after it; other networks' layers by their first name part."""
    head = str(layer).split(".", 1)[0]
    if head.startswith("layer") and head[5:].isdigit():
        return f"stage {head[5:]}"
    if head in ("conv1", "bn1"):
        return "stem"
    if head in ("fc", "linear", "classifier"):
        return "head"
    return head


def _draw_gf_layers(ax, rows: pd.DataFrame) -> None:
    """Gradient flow per part of the network (the stem, each ResNet stage, the head): the sum over its
    layers, mean over seeds, SP against IP."""
    rows = rows.assign(group=rows["layer"].map(layer_group))
    groups = list(dict.fromkeys(rows["group"].dropna()))
    pos = {name: i for i, name in enumerate(groups)}
    for rep in T.REPRS:
        side = rows[rows["repr"] == rep]
        if side.empty:
            continue
        per_run = side.groupby(["seed", "group"])["gf"].sum().reset_index()
        st = mean_sd_by(per_run, "group", "gf")
        st = st[st["mean"] > 0]
        if st.empty:
            continue
        st["x"] = st["group"].map(pos)
        st = st.sort_values("x")
        ax.plot(st["x"], st["mean"], color=COLORS[rep], marker=MARKERS[rep], markersize=4, linewidth=1.2)
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=7)
    ax.set_ylabel("Σ ‖g_layer‖² over the part")
    ax.grid(alpha=0.3)


# --------------------------------------------------------------------------- (5) Hessian

def fig_hessian(hessian: pd.DataFrame, density: pd.DataFrame, out_stem) -> Drawn:
    """Fig. 5, "is IP's curvature different?" in four panels: the top eigenvalue and the trace per method
    (SP, IP[, IP_eq]; hollow at the start of sparse training, filled after it), and the spectral density of
    one method at both times."""
    methods = T.ordered_methods(set(hessian["method"].dropna()) | set(density["method"].dropna()))
    with plt.rc_context(RC):
        if not methods:
            fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
            no_data(ax, "hessian and density tables are empty")
            ax.set_title("Hessian spectra, SP vs IP")
            return save(fig, out_stem)
        fig, axes = plt.subplots(2, 2, figsize=(max(10.0, 1.0 * len(methods) + 4), 7.5), layout="constrained")
        (ax_top, ax_trace), (ax_d0, ax_d1) = axes
        eig = hessian[(hessian["kind"] == "eigenvalue") & (hessian["rank"] == 1)]
        _draw_per_method(ax_top, eig, methods, "top Hessian eigenvalue")
        ax_top.set_title("Top eigenvalue (Lanczos) per method")
        _draw_per_method(ax_trace, hessian[hessian["kind"] == "trace"], methods, "Hessian trace (Hutchinson)")
        ax_trace.set_title("Trace (sum of all eigenvalues, Hutchinson) per method")
        shown = _density_method(density, methods)
        for ax, when in ((ax_d0, "init"), (ax_d1, "final")):
            d = density[(density["method"] == shown) & (density["when"] == when)]
            _draw_density(ax, d)
            phase = "at the start of sparse training" if when == "init" else "after training"
            ax.set_title(f"{shown}: spectral density {phase}")
        reprs = [r for r in T.REPRS + (T.EQUAL_STORAGE,) if (hessian["repr"] == r).any()] or list(T.REPRS)
        extra = [Line2D([], [], color="k", marker="o", markerfacecolor="none", linestyle="", label="at init"),
                 Line2D([], [], color="k", marker="o", linestyle="", label="after training")]
        fig.legend(handles=repr_legend(reprs, extra=extra), loc="outside lower center", ncol=3, frameon=False)
        seeds = sorted(int(s) for s in hessian["seed"].dropna().unique())
        fig.suptitle("Is IP's curvature different? Hessian of the training loss over the trainable unpruned "
                     f"coordinates, SP vs IP\n(seed{'s' if len(seeds) != 1 else ''} "
                     f"{', '.join(map(str, seeds)) or 'missing'}{'; mean over seeds' if len(seeds) > 1 else ''}; "
                     "densities by stochastic Lanczos quadrature)")
        return save(fig, out_stem)


def _density_method(density: pd.DataFrame, methods) -> str:
    """The method whose spectral density is shown: the first sparse one measured in SP and IP, else the first."""
    for m in methods:
        if m != "dense" and set(density.loc[density["method"] == m, "repr"]) >= set(T.REPRS):
            return m
    return methods[0]


def _draw_per_method(ax, rows: pd.DataFrame, methods, ylabel: str) -> None:
    """Per method and representation: mean over seeds at the start of sparse training (hollow) and after it
    (filled), joined by a thin line."""
    if not has_values(rows, "value"):
        no_data(ax)
        return
    reprs = [r for r in T.REPRS + (T.EQUAL_STORAGE,) if (rows["repr"] == r).any()]
    offsets = {r: d for r, d in zip(reprs, np.linspace(-0.25, 0.25, len(reprs)) if len(reprs) > 1 else [0.0])}
    for i, method in enumerate(methods):
        for rep in reprs:
            means = [rows.loc[(rows["method"] == method) & (rows["repr"] == rep) & (rows["when"] == w), "value"].mean()
                     for w in ("init", "final")]
            x = [i + offsets[rep] - 0.05, i + offsets[rep] + 0.05]
            if not any(np.isfinite(means)):
                continue
            ax.plot(x, means, color=COLORS[rep], linewidth=0.8, alpha=0.6)
            ax.scatter(x[:1], means[:1], s=22, facecolors="none", edgecolors=COLORS[rep], marker=MARKERS[rep])
            ax.scatter(x[1:], means[1:], s=22, color=COLORS[rep], marker=MARKERS[rep])
    if all_positive(rows["value"]):
        ax.set_yscale("log")
    else:
        # linear within ± the decade of the median magnitude, so the ticks around 0 stay apart
        typical = float(rows["value"].abs().median())
        ax.set_yscale("symlog", linthresh=10.0 ** math.floor(math.log10(typical)) if typical > 0 else 1.0)
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods, rotation=30 if len(methods) > 6 else 0)
    ax.set_ylabel(ylabel)
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
