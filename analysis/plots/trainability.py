"""Trainability figures: how much gradient signal IP and SP get, and the curvature they see.

- :func:`fig_gradient_flow`        (fig. 4) C6's gradient-flow measure: per method, each run's mean
  gradient flow over the training epochs, SP vs IP
- :func:`fig_gradient_flow_layers` (appendix fig. A1) gradient flow per part of the network at the
  start of sparse training and after it
- :func:`fig_hessian`              (fig. 5) top Hessian eigenvalue and trace, every measured seed; the
  SLQ spectral density only where the stored curve resolves it
- :func:`fig_hessian_density`      (appendix fig. A2) every stored SLQ spectral density, each marked
  resolved or not
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ip.pruning import method_info

from .. import tables as T
from .style import (
    COLORS,
    MARKERS,
    RC,
    Drawn,
    disconnected_handle,
    draw_method_points,
    has_values,
    no_data,
    no_data_figure,
    panel_grid,
    repr_legend,
    save,
)

#: the representations C6 compares (IP_eq is not part of it)
C6_REPRS = ("sp", "ip")


def _starts_trained(method: str) -> bool:
    """Whether sparse training of ``method`` starts from the trained dense network (``oneshot``): its first
    gradient-flow point is measured there, not at initialisation."""
    try:
        return bool(method_info(method).finetunes)
    except (KeyError, ValueError):
        return False


def _start_label(method: str, rewound) -> str:
    """What "the start of sparse training" is for ``method``."""
    if method in rewound:
        return "start: the rewind point, gf_rewind"
    if _starts_trained(method):
        return "start: the pruned trained net"
    return ""


def _share_y(axes) -> None:
    """One y-range for panels that are read against each other."""
    if not axes:
        return
    low = min(ax.get_ylim()[0] for ax in axes)
    high = max(ax.get_ylim()[1] for ax in axes)
    for ax in axes:
        ax.set_ylim(low, high)


# --------------------------------------------------------------------------- (4) gradient flow

def training_epochs(history: pd.DataFrame) -> int:
    """How many training epochs the history's mean gradient flow averages (epoch 0, the start, is not one)."""
    if not len(history) or "epoch" not in history:
        return 0
    return int(history.loc[history["epoch"] > 0, "epoch"].nunique())


def gf_per_run(history: pd.DataFrame, summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """C6's gradient-flow measure per SP and IP run: the mean of ``gf`` over the training epochs (epoch 0 left
    out), with the run's connectivity flag from ``summary`` when given."""
    keys = ["method", "repr", "seed"]
    if not has_values(history, "gf"):
        return pd.DataFrame(columns=keys + ["gf"])
    runs = T.history_means(history[history["repr"].isin(C6_REPRS)], "gf").dropna(subset=["gf"])
    if summary is not None and len(summary) and "disconnected" in summary:
        runs = runs.merge(summary[keys + ["disconnected"]].drop_duplicates(keys), on=keys, how="left")
    return runs


def _ratio_ticks(ax, runs: pd.DataFrame) -> None:
    """Each method's tick with the ratio of the mean IP and SP gradient flow over its connected runs."""
    methods = T.ordered_methods(runs["method"].dropna().unique())
    connected = runs[~T.is_disconnected(runs)]
    labels = []
    for method in methods:
        means = connected[connected["method"] == method].groupby("repr")["gf"].mean()
        ok = {"sp", "ip"} <= set(means.index) and means["sp"] > 0
        labels.append(f"{method}\nIP/SP {means['ip'] / means['sp']:.2f}" if ok else method)
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(labels, rotation=0, ha="center", fontsize=7.5)


def fig_gradient_flow(history: pd.DataFrame, gf_layers: pd.DataFrame, out_stem,
                      summary: pd.DataFrame | None = None) -> Drawn:
    """Fig. 4, what C6 decides on gradient flow: per method, each SP and IP run's gradient flow ‖g‖² averaged over
    the training epochs (seeds as points, mean ± 1 sd), on a linear axis from 0; each tick gives the ratio
    of the IP and SP means.  The gradient flow at the start of sparse training is Theorem 1 (fig. 7), and the
    per-layer detail (``gf_layers``) is :func:`fig_gradient_flow_layers`."""
    runs = gf_per_run(history, summary)
    epochs = training_epochs(history)
    n_methods = runs["method"].nunique() if len(runs) else 0
    with plt.rc_context(RC):
        width = max(9.0, 0.95 * n_methods + 2.5)
        fig, ax = plt.subplots(figsize=(width, 5.0), layout="constrained")
        if runs.empty:
            no_data(ax, "history table has no gradient flow")
            ax.set_title("Gradient flow during training, SP vs IP")
            return save(fig, out_stem)
        hollow = draw_method_points(ax, runs, "gf")
        _ratio_ticks(ax, runs)
        ax.set_ylim(bottom=0)
        what = ("at the end of the one training epoch" if epochs == 1
                else f"mean over the {epochs} training epoch ends" if epochs > 1 else "as logged")
        ax.set_ylabel(f"gradient flow ‖g‖²\n({what})")
        ax.grid(axis="y", alpha=0.3)
        seeds = runs["seed"].nunique()
        ax.set_title(f"Does IP get more gradient signal while it trains? (C6, gradient flow; higher is better)\n"
                     f"‖g‖² over all trainable unpruned coordinates (IP: λ and F),\n{what}; "
                     f"{seeds} seed{'s' if seeds != 1 else ''} per side; each tick: the ratio of the means")
        extra = [Line2D([], [], color="0.3", marker="_", markersize=12, linestyle="", label="mean ± 1 sd over seeds")]
        if hollow:
            extra.append(disconnected_handle())
        fig.legend(handles=repr_legend(C6_REPRS, extra=extra), loc="outside lower center", ncol=3, frameon=False)
        return save(fig, out_stem)


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


#: how each time point of the per-layer gradient flow is drawn
WHEN_STYLE = {"start": dict(linestyle="--", fill=False), "final": dict(linestyle="-", fill=True)}


def _draw_gf_layers(ax, rows: pd.DataFrame, groups: list[str]) -> bool:
    """Gradient flow per part of the network (the sum over its layers; mean over seeds, bars: min–max), SP
    against IP, at the start of sparse training (dashed, hollow) and after it (solid, filled)."""
    pos = {name: i for i, name in enumerate(groups)}
    drawn = False
    for rep in C6_REPRS:
        for when, style in WHEN_STYLE.items():
            side = rows[(rows["repr"] == rep) & (rows["phase"] == when)]
            if side.empty:
                continue
            per_run = side.groupby(["seed", "group"])["gf"].sum().reset_index()
            g = per_run.groupby("group")["gf"]
            st = pd.DataFrame({"mean": g.mean(), "min": g.min(), "max": g.max()}).reset_index()
            st = st[st["mean"] > 0]
            if st.empty:
                continue
            st["x"] = st["group"].map(pos) + (-0.06 if rep == "sp" else 0.06)
            st = st.sort_values("x")
            ax.errorbar(st["x"], st["mean"], yerr=[st["mean"] - st["min"].clip(lower=st["mean"] * 1e-3),
                                                    st["max"] - st["mean"]],
                        color=COLORS[rep], linestyle=style["linestyle"], marker=MARKERS[rep], markersize=4,
                        markerfacecolor=COLORS[rep] if style["fill"] else "white", linewidth=1.2, elinewidth=0.7,
                        capsize=2)
            drawn = True
    if not drawn:
        no_data(ax)
        return False
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    return True


def fig_gradient_flow_layers(gf_layers: pd.DataFrame, out_stem, summary: pd.DataFrame | None = None) -> Drawn:
    """Appendix fig. A1, where in the network the gradient flow sits: per method, the sum of ‖g_layer‖² over each
    part (stem, ResNet stages, head), SP vs IP, at the start of sparse training and after it (log scale: the two
    differ by one to two decades); one y-scale for every panel."""
    rows = gf_layers[gf_layers["repr"].isin(C6_REPRS)] if len(gf_layers) else gf_layers
    if has_values(rows, "gf", "layer"):
        rows = rows.assign(phase=rows["when"].map({"init": "start", "rewind": "start", "final": "final"}),
                           group=rows["layer"].map(layer_group)).dropna(subset=["phase", "gf"])
    methods = T.ordered_methods(rows["method"].dropna().unique()) if has_values(rows, "gf") else []
    rewound = set(summary.loc[T.starts_at_rewind(summary), "method"]) if summary is not None and len(summary) \
        else set()
    if methods:
        rewound |= set(rows.loc[rows["when"] == "rewind", "method"])
    with plt.rc_context(RC):
        if not methods:
            return no_data_figure(out_stem, "gf_layers table is empty", "Gradient flow per part of the network")
        groups = list(dict.fromkeys(rows["group"].dropna()))
        fig, axes = panel_grid(len(methods), 3, panel=(3.6, 2.7))
        width, height = fig.get_size_inches()
        fig.set_size_inches(max(width, 9.5), height)   # room for the title and the legend
        drawn = []
        for ax, method in zip(axes, methods):
            if _draw_gf_layers(ax, rows[rows["method"] == method], groups):
                drawn.append(ax)
            start = _start_label(method, rewound)
            ax.set_title(f"{method}\n({start})" if start else method, fontsize=9)
        _share_y(drawn)
        for i, ax in enumerate(axes):
            if ax in drawn and i % 3 == 0:
                ax.set_ylabel("Σ ‖g_layer‖² over the part\n(log scale)")
        extra = [Line2D([], [], color="0.3", linestyle="--", marker="o", markerfacecolor="white",
                        label="start of sparse training"),
                 Line2D([], [], color="0.3", linestyle="-", marker="o", label="after training"),
                 Line2D([], [], color="0.3", marker="|", linestyle="", markersize=8, label="bar: seeds' min–max")]
        fig.legend(handles=repr_legend(C6_REPRS, extra=extra), loc="outside lower center",
                   ncol=3 if len(methods) >= 3 else 2, frameon=False)
        seeds = rows["seed"].nunique()
        fig.suptitle("Where the gradient flow sits: ‖g‖² per part of the network, SP vs IP\n"
                     f"(sum over the part's layers, mean over {seeds} seed{'s' if seeds != 1 else ''}), "
                     "at the start of sparse training and after training\n"
                     "log scale (the two differ by decades), one scale for every panel")
        return save(fig, out_stem)


# --------------------------------------------------------------------------- (5) Hessian

#: the density axis shows this many decades below the highest density: SLQ's Gaussian tails reach 1e-300,
#: and an axis that follows them squeezes the bulk of the spectrum into a line
DENSITY_DECADES = 6
#: a stored SLQ density with more separate peaks than this is taken as not resolved: its Lanczos nodes lie
#: further apart than the Gaussian smoothing, so the curve shows one spike per node (a bulk and a couple of
#: outlying eigenvalues are fewer)
MAX_RESOLVED_PEAKS = 3
#: panels whose largest |value| differ by more than this factor keep their own y-scale
SHARE_FACTOR = 10.0


def density_peaks(grid, density) -> int:
    """The number of separate peaks of one stored density within :data:`DENSITY_DECADES` of its highest one;
    a one-point dip (a tail written as 0 or 1e-300) does not split a peak."""
    grid = np.asarray(grid, dtype=float)
    d = np.clip(np.nan_to_num(np.asarray(density, dtype=float)[np.argsort(grid)]), 0.0, None)
    if d.size >= 3:
        d = np.concatenate([d[:1], np.median(np.stack([d[:-2], d[1:-1], d[2:]]), axis=0), d[-1:]])
    if not d.size or d.max() <= 0:
        return 0
    d = d[np.r_[True, d[1:] != d[:-1]]]      # a plateau counts once
    rising = np.r_[True, d[1:] > d[:-1]]
    falling = np.r_[d[:-1] > d[1:], True]
    return int((rising & falling & (d >= d.max() * 10.0 ** -DENSITY_DECADES)).sum())


def density_resolution(density: pd.DataFrame) -> pd.DataFrame:
    """Per stored curve (method, repr, seed, when): its separate peaks and whether it is resolved."""
    keys = ["method", "repr", "seed", "when"]
    if not has_values(density, "grid", "density"):
        return pd.DataFrame(columns=keys + ["peaks", "resolved"])
    rows = [{**dict(zip(keys, k)), "peaks": density_peaks(g["grid"], g["density"])}
            for k, g in density.dropna(subset=["grid", "density"]).groupby(keys, dropna=False)]
    out = pd.DataFrame(rows, columns=keys + ["peaks"])
    return out.assign(resolved=out["peaks"] <= MAX_RESOLVED_PEAKS)


def _seed_offsets(n: int) -> np.ndarray:
    return np.linspace(-0.05, 0.05, n) if n > 1 else np.zeros(1)


def _draw_seeds(ax, rows: pd.DataFrame, methods, ylabel: str) -> bool:
    """Per method and representation every seed's value as a point (mean as a bar when there are several),
    on a linear axis with a line at 0: the sign is read off directly."""
    if not has_values(rows, "value"):
        no_data(ax)
        return False
    reprs = [r for r in T.REPRS + (T.EQUAL_STORAGE,) if (rows["repr"] == r).any()]
    offsets = {r: d for r, d in zip(reprs, np.linspace(-0.22, 0.22, len(reprs)) if len(reprs) > 1 else [0.0])}
    for i, method in enumerate(methods):
        for rep in reprs:
            vals = rows.loc[(rows["method"] == method) & (rows["repr"] == rep)].sort_values("seed")["value"]
            vals = vals.dropna().to_numpy(dtype=float)
            if not vals.size:
                continue
            x = i + offsets[rep]
            ax.scatter(x + _seed_offsets(vals.size), vals, s=24, color=COLORS[rep], marker=MARKERS[rep], zorder=3,
                       alpha=0.85, linewidths=0)
            if vals.size > 1:
                ax.plot([x - 0.09, x + 0.09], [vals.mean()] * 2, color=COLORS[rep], linewidth=1.6, zorder=4)
    ax.axhline(0, color="#555555", linewidth=0.8)
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods, rotation=30 if len(methods) > 6 else 0)
    ax.set_xlim(-0.6, len(methods) - 0.4)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    return True


def _share_if_comparable(axes, values: list) -> bool:
    """One y-range for ``axes`` when their largest |value| lie within :data:`SHARE_FACTOR` of each other."""
    tops = [float(np.nanmax(np.abs(v))) for v in values if len(v) and np.isfinite(v).any()]
    if len(tops) != len(axes) or not tops or min(tops) <= 0 or max(tops) / min(tops) > SHARE_FACTOR:
        return False
    _share_y(axes)
    return True


#: the rows of fig. 5: (what, its axis label, which hessian.csv rows)
HESSIAN_ROWS = (
    ("top eigenvalue", "top eigenvalue (Lanczos)", lambda h: (h["kind"] == "eigenvalue") & (h["rank"] == 1)),
    ("trace", "trace (Hutchinson)", lambda h: h["kind"] == "trace"),
)


def fig_hessian(hessian: pd.DataFrame, density: pd.DataFrame, out_stem) -> Drawn:
    """Fig. 5, "is IP's curvature different?": the top eigenvalue and the trace per method at the start of sparse
    training and after it, SP vs IP[, IP_eq], every measured seed a point, linear axes with a line at 0 (the
    trace is negative at the start).  The spectral density of one method is drawn only where every stored
    curve is resolved (:func:`density_resolution`); all of them are in :func:`fig_hessian_density`."""
    methods = T.ordered_methods(hessian["method"].dropna().unique()) if len(hessian) else []
    status = density_resolution(density)
    show_density = bool(len(status)) and bool(status["resolved"].all())
    with plt.rc_context(RC):
        if not methods and not show_density:
            return no_data_figure(out_stem, "hessian table is empty" + ("" if len(density) else " (and so is the density table)"), "Hessian spectra, SP vs IP")
        nrows = 3 if show_density else 2
        fig, axes = plt.subplots(nrows, 2, figsize=(max(10.0, 1.1 * len(methods) + 4), 3.3 * nrows + 1.2),
                                 layout="constrained", squeeze=False)
        phases = (("init", "at the start of sparse training"), ("final", "after training"))
        for row, (kind, name, select) in enumerate(HESSIAN_ROWS):
            pair, values = [], []
            for col, (when, phase) in enumerate(phases):
                ax = axes[row][col]
                rows = hessian[select(hessian) & (hessian["when"] == when)] if len(hessian) else hessian
                ax.set_title(f"{kind.capitalize()} {phase}")
                if _draw_seeds(ax, rows, methods, f"Hessian {name}"):
                    pair.append(ax)
                    values.append(rows["value"].dropna().to_numpy(dtype=float))
            if len(pair) == 2 and not _share_if_comparable(pair, values):
                for ax in pair:
                    ax.set_title(ax.get_title() + " (own y-scale)")
        if show_density:
            shown = _density_method(density, T.ordered_methods(density["method"].dropna().unique()))
            for col, (when, phase) in enumerate(phases):
                ax = axes[2][col]
                _draw_density(ax, density[(density["method"] == shown) & (density["when"] == when)])
                ax.set_title(f"{shown}: spectral density {phase}")
        reprs = [r for r in T.REPRS + (T.EQUAL_STORAGE,) if len(hessian) and (hessian["repr"] == r).any()] \
            or list(T.REPRS)
        extra = [Line2D([], [], color="0.3", marker="o", linestyle="", label="one seed")]
        seeds = sorted(int(s) for s in hessian["seed"].dropna().unique()) if len(hessian) else []
        if len(seeds) > 1:
            extra.append(Line2D([], [], color="0.3", linewidth=1.6, label="mean over seeds"))
        fig.legend(handles=repr_legend(reprs, extra=extra), loc="outside lower center", ncol=3, frameon=False)
        density_note = ("bottom: spectral densities by stochastic Lanczos quadrature" if show_density else
                        "spectral densities: appendix figure A2" + (
                            f" (not resolved here: up to {int(status['peaks'].max())} separate Lanczos peaks "
                            "per curve)" if len(status) else " (none stored)"))
        fig.suptitle("Is IP's curvature different? Hessian of the training loss over the trainable unpruned "
                     f"coordinates, SP vs IP\nseed{'s' if len(seeds) != 1 else ''} "
                     f"{', '.join(map(str, seeds)) or 'missing'} (every measured seed drawn); linear axes, a line "
                     f"at 0\n{density_note}")
        return save(fig, out_stem)


def _density_method(density: pd.DataFrame, methods) -> str:
    """The method whose spectral density is shown: the first sparse one measured in SP and IP, else the first."""
    for m in methods:
        if m != "dense" and set(density.loc[density["method"] == m, "repr"]) >= set(T.REPRS):
            return m
    return methods[0]


def _draw_density(ax, d: pd.DataFrame, reprs=T.REPRS) -> bool:
    """Every stored curve of ``d`` (one line per representation and seed), log density axis down to
    :data:`DENSITY_DECADES` below the highest peak, linear eigenvalue axis."""
    if not has_values(d, "density", "grid"):
        no_data(ax)
        return False
    peak = 0.0
    for rep in reprs:
        for _, rows in d[d["repr"] == rep].groupby("seed", dropna=False):
            rows = rows.dropna(subset=["grid", "density"]).sort_values("grid")
            rows = rows[rows["density"] > 0]
            if rows.empty:
                continue
            ax.plot(rows["grid"], rows["density"], color=COLORS[rep], linewidth=1.1, alpha=0.85)
            peak = max(peak, float(rows["density"].max()))
    if peak <= 0:
        no_data(ax, "no positive density")
        return False
    ax.set_yscale("log")
    ax.set_ylim(peak * 10.0 ** -DENSITY_DECADES, peak * 2)
    ax.axvline(0, color="#555555", linewidth=0.8)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel(f"density (log; down to peak × 1e-{DENSITY_DECADES})")
    ax.grid(alpha=0.3)
    return True


def fig_hessian_density(density: pd.DataFrame, out_stem) -> Drawn:
    """Appendix fig. A2: every stored SLQ spectral density, per method at the start of sparse training and after
    it, SP vs IP[, IP_eq], one line per seed; a curve that is not resolved (:func:`density_resolution`) is
    marked with its number of separate peaks.  One density scale for every panel."""
    status = density_resolution(density)
    methods = T.ordered_methods(status["method"].dropna().unique()) if len(status) else []
    with plt.rc_context(RC):
        if not methods:
            return no_data_figure(out_stem, "density table is empty", "Hessian spectral density (SLQ), SP vs IP")
        reprs = [r for r in T.REPRS + (T.EQUAL_STORAGE,) if (density["repr"] == r).any()]
        cells = [(m, w) for m in methods for w in ("init", "final")]
        fig, axes = panel_grid(len(cells), 2, panel=(5.2, 2.9))
        drawn = []
        for ax, (method, when) in zip(axes, cells):
            phase = "at the start of sparse training" if when == "init" else "after training"
            mine = status[(status["method"] == method) & (status["when"] == when)]
            note = (f"\nnot resolved: up to {int(mine['peaks'].max())} separate peaks (Lanczos nodes)"
                    if len(mine) and not mine["resolved"].all() else "")
            ax.set_title(f"{method}, {phase}{note}", fontsize=9)
            if _draw_density(ax, density[(density["method"] == method) & (density["when"] == when)], reprs):
                drawn.append(ax)
                ax.set_ylabel("density (log scale)" if axes.index(ax) % 2 == 0 else "")
        _share_y(drawn)
        fig.legend(handles=repr_legend(reprs), loc="outside lower center", ncol=len(reprs), frameon=False)
        n_bad = int((~status["resolved"]).sum())
        fig.suptitle("Hessian spectral density by stochastic Lanczos quadrature, as stored (one line per seed)\n"
                     + (f"{n_bad} of {len(status)} curves not resolved: more than {MAX_RESOLVED_PEAKS} separate "
                        "peaks,\nthe nodes of too few Lanczos probes and steps, not a density" if n_bad
                        else "every curve resolved") + "; one density scale for every panel")
        return save(fig, out_stem)
