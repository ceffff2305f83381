"""The controls' figures (results/controls.csv):

- :func:`fig_shuffle`  mask shuffling: per method, test accuracy of SP and IP with their own
  masks and with the masks shuffled within each layer (paired seeds joined; one y-scale for
  every method), and IP − SP under both, with 95 % paired intervals
- :func:`fig_lr`       learning-rate control: validation and test accuracy against the
  learning-rate scale per representation (the scale validation chose ringed), and IP − SP
  per scale and best against best, with 95 % paired intervals
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import controls as C
from .. import tables as T
from ..formatting import side_label
from .style import COLORS, MARKERS, RC, Drawn, no_data, panel_grid, plt, repr_legend, save


def _interval(ax, x: float, pairs, factor: float, color: str, marker: str = "o") -> bool:
    """Mean and 95 % paired interval of ``pairs``' differences at ``x`` (nothing drawn without pairs)."""
    d = pairs.comparison().diff
    if d.n == 0:
        return False
    low, high = d.ci
    ax.plot([x], [d.mean * factor], marker=marker, color=color, ms=6, zorder=3)
    if not math.isnan(low):
        ax.plot([x, x], [low * factor, high * factor], color=color, lw=1.6, zorder=2)
    ax.scatter(np.full(d.n, x + 0.12), np.asarray(d.values) * factor, s=9, color=color, alpha=0.45, zorder=2)
    return True


def _control_runs(table: pd.DataFrame, control: str) -> tuple[list[str], pd.DataFrame, float, str]:
    """The control's methods and runs, the accuracy factor (100: fractions shown in %) and the difference unit."""
    runs = table[table["control"] == control]
    factor = T.percent_scale(runs["test_acc"]) if len(runs) else 100.0
    return C.methods_of(table, control), runs, factor, " (pp)" if factor == 100 else ""


def _no_runs(fig, axes, what: str, title: str, out_stem) -> Drawn:
    no_data(axes[0], f"no {what} runs in results/controls.csv")
    for ax in axes[1:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return save(fig, out_stem)


def fig_shuffle(table: pd.DataFrame, out_stem) -> Drawn:
    methods, runs, factor, unit = _control_runs(table, "shuffle")
    with plt.rc_context(RC):
        fig, axes = panel_grid(max(1, len(methods)) + 1, 3, panel=(3.6, 3.2), sharey=False)
        if not methods:
            return _no_runs(fig, axes, "shuffle-control", "Mask-shuffle control", out_stem)
        reprs = [r for r in (*T.REPRS, T.EQUAL_STORAGE) if (runs["repr"] == r).any()]
        for j, (ax, method) in enumerate(zip(axes, methods)):
            ax.set_title(f"{method}: test accuracy")
            for i, rep in enumerate(reprs):
                rows = runs[(runs["method"] == method) & (runs["repr"] == rep)]
                wide = rows.pivot_table(index="seed", columns="shuffled", values="test_acc", aggfunc="first")
                for seed, row in wide.iterrows():
                    ax.plot([2 * i, 2 * i + 1], [row.get(False, np.nan) * factor, row.get(True, np.nan) * factor],
                            color=COLORS[rep], marker=MARKERS[rep], ms=4, lw=0.8, alpha=0.8)
            ax.set_xticks([2 * i + k for i in range(len(reprs)) for k in (0, 1)],
                          [f"{side_label(rep)}\n{'own' if k == 0 else 'shuffled'}"
                           for rep in reprs for k in (0, 1)])
            if j % 3 == 0:    # one label per row of panels: they share the y-scale
                ax.set_ylabel("test accuracy (%)" if factor == 100 else "test accuracy")
            ax.grid(axis="y", alpha=0.3)
        accuracy_axes = [ax for ax in axes[:len(methods)] if ax.lines]
        if len(accuracy_axes) > 1:    # the methods' panels are read against each other: one y-scale
            low = min(ax.get_ylim()[0] for ax in accuracy_axes)
            high = max(ax.get_ylim()[1] for ax in accuracy_axes)
            for ax in accuracy_axes:
                ax.set_ylim(low, high)
        ax = axes[len(methods)]
        ax.set_title("IP − SP test accuracy" + unit)
        for i, method in enumerate(methods):
            for k, shuffled in enumerate((False, True)):
                _interval(ax, 2 * i + k, C.shuffle_advantage(table, method, shuffled), factor,
                          COLORS["ip"], "s" if shuffled else "o")
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_xticks([2 * i + k for i in range(len(methods)) for k in (0, 1)],
                      [f"{m}\n{'own' if k == 0 else 'shuffled'}" for m in methods for k in (0, 1)])
        ax.grid(axis="y", alpha=0.3)
        for extra in axes[len(methods) + 1:]:
            extra.set_visible(False)
        fig.legend(handles=repr_legend(reprs), loc="outside lower center", ncol=2, frameon=False)
        fig.suptitle("Mask-shuffle control: kept positions permuted within each layer, per-layer counts unchanged\n"
                     "(lines join a seed's runs; right: mean and 95 % paired interval, dots = seeds)")
        return save(fig, out_stem)


def fig_lr(table: pd.DataFrame, out_stem) -> Drawn:
    methods, runs, factor, unit = _control_runs(table, "lr")
    with plt.rc_context(RC):
        fig, axes = panel_grid(max(1, 2 * len(methods)), 2, panel=(4.2, 3.2), sharey=False)
        if not methods:
            return _no_runs(fig, axes, "learning-rate-control", "Learning-rate control", out_stem)
        chosen = C.lr_choice(runs).set_index(["method", "repr"])["lr_scale"].to_dict()
        reprs = [r for r in (*T.REPRS, T.EQUAL_STORAGE) if (runs["repr"] == r).any()]
        for j, method in enumerate(methods):
            ax = axes[2 * j]
            ax.set_title(f"{method}: accuracy against the learning rate")
            for rep in reprs:
                rows = runs[(runs["method"] == method) & (runs["repr"] == rep)]
                means = rows.groupby("lr_scale")[["val_acc", "test_acc"]].mean().sort_index()
                ax.plot(means.index, means["test_acc"] * factor, color=COLORS[rep], marker=MARKERS[rep], lw=1.4)
                ax.plot(means.index, means["val_acc"] * factor, color=COLORS[rep], ls="--", lw=1.0)
                ax.scatter(rows["lr_scale"], rows["test_acc"] * factor, s=8, color=COLORS[rep], alpha=0.4)
                best = chosen.get((method, rep))
                if best is not None and best in means.index:
                    ax.plot([best], [means.loc[best, "val_acc"] * factor], marker="o", ms=11, mfc="none",
                            mec=COLORS[rep], mew=1.5)
            ax.set_xscale("log", base=2)
            scales = sorted(runs["lr_scale"].astype(float).unique())
            ax.set_xticks(scales, [f"×{s:g}" for s in scales])
            ax.set_xlabel("learning rate (× train.lr)")
            ax.set_ylabel("accuracy (%)" if factor == 100 else "accuracy")
            ax.grid(alpha=0.3)
            ax = axes[2 * j + 1]
            ax.set_title(f"{method}: IP − SP test accuracy" + unit)
            for i, scale in enumerate(scales):
                _interval(ax, i, C.lr_advantage(table, method, scale), factor, COLORS["ip"])
            _interval(ax, len(scales) + 0.5, C.lr_advantage(table, method), factor, "black", "D")
            ax.axhline(0.0, color="black", lw=0.8)
            ax.set_xticks([*range(len(scales)), len(scales) + 0.5],
                          [f"×{s:g}" for s in scales] + [
                              "best vs best\n(SP ×{:g}, IP ×{:g})".format(chosen.get((method, "sp"), math.nan),
                                                                          chosen.get((method, "ip"), math.nan))])
            ax.grid(axis="y", alpha=0.3)
        handles = repr_legend(reprs) + [plt.Line2D([], [], color="grey", lw=1.4, label="test accuracy (mean)"),
                                        plt.Line2D([], [], color="grey", ls="--", lw=1.0,
                                                   label="validation accuracy (mean; chooses the scale, ringed)")]
        fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
        fig.suptitle("Learning-rate control: each representation's scale chosen on a held-out validation slice\n"
                     "(right: mean and 95 % paired interval, dots = seeds)")
        return save(fig, out_stem)
