"""Filter figure (fig. 3, the paper's Fig. 1 analogue): trained K×K filters of SP and IP, and
how evenly their energy is spread: the participation ratio (STUDY_SPEC section 3, claim C5)
per layer and per method.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import tables as T
from ..formatting import side_label
from .style import (COLORS, MARKERS, RC, Drawn, draw_method_points, has_values, mean_sd_by, no_data,
                    repr_legend, save)


# --------------------------------------------------------------------------- (3) filters (Fig. 1 analogue)

def _pick_filters(filters: pd.DataFrame, method: str | None, seed, layer, max_filters: int):
    """The filters to show: by default the first method with both SP and IP, its lowest seed, its first layer,
    and up to ``max_filters`` (out, in) positions present in both representations."""
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
            no_data(ax, "filters table is empty")
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
                        no_data(ax, f"{rep.upper()} filter missing")
                        continue
                    im = ax.imshow(mat, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
                    for (y, x), v in np.ndenumerate(mat):
                        if v == 0:
                            ax.text(x, y, "0", ha="center", va="center", fontsize=8, color="#444444")
                    nz = int(np.count_nonzero(np.nan_to_num(mat)))
                    h = np.nan_to_num(mat).ravel()
                    pr = (h @ h) ** 2 / (h.size * np.sum(h ** 4)) if np.any(h) else float("nan")
                    ax.set_title(f"out {chosen[c][0]}, in {chosen[c][1]}\nPR {pr:.2f}; {nz}/{mat.size} non-zero",
                                 fontsize=8)
                    for spine in ax.spines.values():
                        spine.set_visible(True)
                        spine.set_color(COLORS[rep])
                        spine.set_linewidth(2)
                heat_axes[r, 0].set_ylabel(side_label(rep), color=COLORS[rep], fontsize=11, fontweight="bold")
                if im is not None:
                    top.colorbar(im, ax=list(heat_axes[r, :]), shrink=0.8, label="weight")
            top.suptitle(f"Trained K×K filters of layer {layer} ({method}, seed {seed}); '0' marks exact zeros; "
                         "PR: participation ratio")
        ax_layer, ax_method = bottom.subplots(1, 2, width_ratios=[1.6, 1])
        _draw_layer_density(ax_layer, filter_density, method)
        runs = _filter_density_runs(summary, filter_density, sparsity)
        if has_values(runs, PR):
            draw_method_points(ax_method, runs, PR, 1.0)
            ax_method.set_ylabel("mean participation ratio of the kept filters")
            _pr_axis(ax_method)
        else:
            no_data(ax_method, "no participation ratios")
        ax_method.set_title("Participation ratio per method (1: energy spread evenly;\n1/K²: one entry; points: "
                            "seeds; bars: mean ± 1 sd)")
        bottom.legend(handles=repr_legend(T.reprs_present(runs) if len(runs) else T.REPRS), loc="outside lower center",
                      ncol=3, frameon=False)
        return save(fig, out_stem)


PR = "participation_ratio"
K2 = 9   # the 3×3 filters of the study's networks


def _pr_axis(ax) -> None:
    ax.set_ylim(0, 1.05)
    ax.axhline(1 / K2, color="#777777", linestyle=":", linewidth=1)
    ax.text(1.0, 1 / K2, " 1/K²", transform=ax.get_yaxis_transform(), va="center", ha="left", fontsize=7,
            color="#555555")
    ax.grid(axis="y", alpha=0.3)


def _filter_density_runs(summary, filter_density, sparsity):
    """Per-run participation ratios: ``summary.participation_ratio`` at ``sparsity``, else the filter-weighted
    mean over layers."""
    if summary is not None and has_values(summary, PR):
        return T.at_sparsity(summary, sparsity)
    if has_values(filter_density, PR):
        return T.filter_density_per_run(filter_density)
    return pd.DataFrame(columns=["method", "repr", "seed", PR])


def _draw_layer_density(ax, filter_density: pd.DataFrame, method: str | None) -> None:
    fd = filter_density[filter_density["method"] == method] if method is not None else filter_density.iloc[0:0]
    if not has_values(fd, PR):
        if has_values(filter_density, PR):
            method = T.ordered_methods(filter_density["method"].dropna().unique())[0]
            fd = filter_density[filter_density["method"] == method]
        else:
            no_data(ax, "no participation ratios per layer")
            ax.set_title("Participation ratio per layer")
            return
    layers = list(dict.fromkeys(fd["layer"].dropna()))
    pos = {name: i for i, name in enumerate(layers)}
    for rep in T.REPRS:
        st = mean_sd_by(fd[fd["repr"] == rep], "layer", PR)
        if st.empty:
            continue
        st["x"] = st["layer"].map(pos)
        st = st.sort_values("x")
        ax.errorbar(st["x"], st["mean"], yerr=st["sd"].fillna(0), color=COLORS[rep],
                    marker=MARKERS[rep], markersize=4, capsize=2, linewidth=1.2)
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels(layers, rotation=90, fontsize=6 if len(layers) > 12 else 8)
    ax.set_ylabel("mean participation ratio")
    _pr_axis(ax)
    ax.set_title(f"Participation ratio of the kept filters per layer ({method}; mean ± 1 sd over seeds)")
