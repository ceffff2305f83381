"""Cost figure (fig. 9): stored parameters, inference MACs and training-step time of SP and IP,
and the filter-basis overhead of the paper's networks against the paper's statement.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.transforms import blended_transform_factory

from .. import tables as T
from ..formatting import fmt_sparsity, side_label
from ..paper import PAPER_FB_OVERHEAD_PERCENT
from .style import (
    COLORS,
    MISSING_COLOR,
    RC,
    Drawn,
    all_positive,
    draw_method_points,
    has_values,
    no_data,
    repr_legend,
    save,
)

# --------------------------------------------------------------------------- (9) costs

def _stacked_storage(ax, sparse: pd.DataFrame, methods: Sequence[str]) -> None:
    """Per method, one linear bar per representation: kept weights (SP) or kept λ with the FB entries
    stacked on top (IP, IP_eq); a dashed line at SP's storage shows what equal storage means."""
    reprs = T.reprs_present(sparse)
    width = 0.8 / len(reprs)
    sp_level = None
    for i, method in enumerate(methods):
        rows = sparse[sparse["method"] == method]
        for j, rep in enumerate(reprs):
            side = rows[rows["repr"] == rep]
            x = i - 0.4 + width * (j + 0.5)
            if side.empty or not side["kept_params"].notna().any():
                ax.text(x, 0.02, f"{rep.upper()} missing", rotation=90, ha="center", va="bottom", fontsize=7,
                        color=MISSING_COLOR, transform=blended_transform_factory(ax.transData, ax.transAxes))
                continue
            kept = float(side["kept_params"].mean())
            fb = float(side["fb_overhead_params"].fillna(0).mean()) if "fb_overhead_params" in side else 0.0
            what = "weights" if rep == "sp" else "λ"
            ax.bar(x, kept, width * 0.95, color=COLORS[rep], label=f"{side_label(rep)}: kept {what}" if i == 0 else None)
            if fb:
                ax.bar(x, fb, width * 0.95, bottom=kept, color=COLORS[rep], alpha=0.4, hatch="//",
                       edgecolor=COLORS[rep], label=f"{side_label(rep)}: filter-basis entries" if i == 0 else None)
            ax.text(x, kept + fb, f" {kept + fb:.0f}", ha="center", va="bottom", fontsize=6.5, rotation=90)
            if rep == "sp":
                sp_level = kept
    if sp_level is not None:
        ax.axhline(sp_level, color="k", linestyle="--", linewidth=0.8, label="SP's storage (equal storage)")
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods, rotation=30 if len(methods) > 5 else 0)
    ax.set_ylabel("stored numbers (kept entries + FB entries)")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.45)   # room for the legend above the tallest bar
    ax.legend(frameon=False, fontsize=7, loc="upper left", ncol=2)


def _log_bars_with_reference(ax, sparse, methods, bars, reference: pd.Series, reference_label: str,
                             ylabel: str) -> None:
    """Grouped bars on a log axis with the dense network's value (median of ``reference``) as a dotted line."""
    _grouped_bars(ax, sparse, methods, bars)
    reference = reference.dropna()
    if len(reference):
        ax.axhline(reference.median(), color="k", linestyle=":", linewidth=1, label=reference_label)
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * 3)                 # room above the dense line for the legend
    ax.legend(frameon=False, fontsize=7, loc="upper left", ncol=2)


def fig_costs(summary: pd.DataFrame, costs_reference: pd.DataFrame, out_stem, sparsity: float | None = None
              ) -> Drawn:
    runs = T.at_sparsity(summary, sparsity)
    sparse = runs[runs["method"] != "dense"]
    methods = T.sparse_methods(runs) if len(runs) else []
    with plt.rc_context(RC):
        fig, axes = plt.subplots(2, 2, figsize=(13, 9), layout="constrained")
        ax_params, ax_flops, ax_time, ax_ref = axes.ravel()
        # (a) stored numbers: SP kept weights, IP kept coefficients, IP FB entries
        ax_params.set_title(f"Stored numbers at sparsity {fmt_sparsity(sparsity)} (mean over seeds)")
        if methods and has_values(sparse, "kept_params"):
            _stacked_storage(ax_params, sparse, methods)
        else:
            no_data(ax_params, "no parameter counts")
        # (b) sparse inference MACs
        ax_flops.set_title("Inference multiply-accumulates (IP: factorised path)")
        if methods and has_values(sparse, "flops_sparse"):
            bars = [("SP: sparse", "sp", "flops_sparse", None), ("IP: sparse (basis conv + 1×1)", "ip", "flops_sparse",
                                                                None)]
            if T.EQUAL_STORAGE in T.reprs_present(sparse):
                bars.append(("IP_eq: sparse (basis conv + 1×1)", T.EQUAL_STORAGE, "flops_sparse", None))
            _log_bars_with_reference(ax_flops, sparse, methods, bars, runs["flops_dense"], "dense network",
                                     "MACs per image (log)")
        else:
            no_data(ax_flops, "no FLOP counts")
        # (c) training step time
        ax_time.set_title("Training step time (points: seeds; bars: mean ± 1 sd; C4: median of the paired "
                          "IP/SP ratios)")
        if has_values(runs, "step_seconds"):
            draw_method_points(ax_time, runs, "step_seconds", 1000.0)
            ax_time.set_ylabel("seconds per step × 1000 (ms)")
            ax_time.grid(axis="y", alpha=0.3)
            ax_time.legend(handles=repr_legend(T.reprs_present(runs)), frameon=False, fontsize=7)
        else:
            no_data(ax_time, "no step times")
        # (d) paper-scale nets
        ax_ref.set_title("FB overhead of paper-scale networks per FB sharing vs the paper's statement")
        ref = T.with_share(costs_reference).dropna(subset=["fb_overhead_percent"])
        if len(ref):
            labels = [f"{r.model}" + ("" if pd.isna(r.width) else f"\nw{int(r.width)}") + f"\n{r.share}"
                      for r in ref.itertuples()]
            x = np.arange(len(ref))
            ax_ref.bar(x, ref["fb_overhead_percent"], color=COLORS["ip"], alpha=0.85)
            for xi, v in zip(x, ref["fb_overhead_percent"]):
                meets = "meets" if v <= PAPER_FB_OVERHEAD_PERCENT else "exceeds"
                ax_ref.text(xi, v * 1.08, f"{v:.3g} %\n({meets})", ha="center", va="bottom", fontsize=7,
                            bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1))
            ax_ref.axhline(PAPER_FB_OVERHEAD_PERCENT, color="k", linestyle="--", linewidth=1,
                           label=f"paper: ≤ {PAPER_FB_OVERHEAD_PERCENT:g} % of dense parameters")
            ax_ref.set_xticks(x)
            ax_ref.set_xticklabels(labels, fontsize=6.5)
            ax_ref.set_xlabel("network, base width, FB sharing (layer: one FB per conv; network: one per kernel size)",
                              fontsize=7)
            if all_positive(ref["fb_overhead_percent"]):
                ax_ref.set_yscale("log")
                low, high = ax_ref.get_ylim()
                ax_ref.set_ylim(low, high * 4)     # room for the tallest bar's label
            ax_ref.set_ylabel("FB entries / dense parameters (%)")
            ax_ref.legend(frameon=False, fontsize=7)
        else:
            no_data(ax_ref, "costs_reference table is empty")
        fig.suptitle("Costs of SP and IP: parameters, inference MACs, training time")
        return save(fig, out_stem)


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
