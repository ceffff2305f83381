"""The training-length figure (results/axis.csv; claim C10):

- :func:`fig_axis` (fig. 12) per method on the axis, the paired IP−SP and IP_eq−SP test-accuracy
  differences against the training length (epochs), mean and 95 % t interval over connected seed
  pairs, seeds as points; one y-scale for every panel
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from .. import tables as T
from ..formatting import fmt_sparsity, side_label
from ..stats import CONFIDENCE, t_interval
from ..training_length import (
    against_of,
    axis_methods,
    axis_runs,
    family_of,
    headline_epochs,
    lengths,
    pairs_at,
    published_methods,
)
from .style import COLORS, MARKERS, MISSING_COLOR, RC, Drawn, no_data, no_data_figure, panel_grid, plt, save

TITLE = "IP's test-accuracy advantage over SP against training length (above 0: IP better)"


def _epochs(n: int) -> str:
    return f"{n} epoch{'s' if n != 1 else ''}"


def _panel_title(method: str, rows: pd.DataFrame, published: list[str], head: int | None) -> str:
    """The method and its family; for a method with its schedule as published, which point has which schedule."""
    if method == "dense":
        return "dense (no pruning; C8)"
    family = family_of(method)
    title = f"{method} ({family})" if family else method
    found = lengths(rows)
    if method in published and head in found and len(found) > 1:
        longer = ", ".join(str(e) for e in found if e != head)
        title += (f"\n{_epochs(head)}: the headline's squeezed schedule"
                  f"\n{longer} epochs: the schedule as published")
    return title


def _draw_accounting(ax, rows: pd.DataFrame, method: str, against: str, factor: float,
                     shift: float, linestyle: str = "-") -> tuple[bool, int]:
    """Mean and 95 % t interval of the paired ``against`` − SP differences at each length of ``method``, seeds as
    faint points, joined by ``linestyle`` (dotted where the schedule changes with the length); returns (whether
    anything was drawn, pairs left out as disconnected)."""
    xs, means, lows, highs, excluded = [], [], [], [], 0
    for epochs in lengths(rows):
        pairs = pairs_at(rows, method, epochs, against)
        excluded += pairs.excluded_disconnected
        d = pairs.diffs.to_numpy(dtype=float) * factor
        if not d.size:
            continue
        x = epochs * shift
        ax.scatter(np.full(d.size, x * 1.03), d, s=10, color=COLORS[against], alpha=0.4, linewidths=0, zorder=3)
        low, high = t_interval(d) if d.size > 1 else (d.mean(), d.mean())
        xs.append(x)
        means.append(d.mean())
        lows.append(low)
        highs.append(high)
    if not xs:
        return False, excluded
    means, lows, highs = map(np.asarray, (means, lows, highs))
    ax.errorbar(xs, means, yerr=[means - lows, highs - means], color=COLORS[against], marker=MARKERS[against],
                markersize=5, capsize=3, linewidth=1.4, linestyle=linestyle, zorder=4)
    return True, excluded


def seeds_per_length(runs: pd.DataFrame) -> str:
    """'3 paired seeds', or '3 paired seeds (2 at 12 epochs)' where a length has fewer."""
    counts = runs.groupby("epochs")["seed"].nunique()
    most = int(counts.max()) if len(counts) else 0
    fewer = [f"{int(n)} at {int(e)} epoch{'s' if e != 1 else ''}" for e, n in counts.items() if n < most]
    return f"{most} paired seed{'s' if most != 1 else ''}" + (f" ({', '.join(fewer)})" if fewer else "")


def fig_axis(axis_table: pd.DataFrame, out_stem, meta: dict | None = None, sparsity: float | None = None) -> Drawn:
    """Fig. 12: per method on the training-length axis (sparse methods, then dense), the paired IP−SP and
    IP_eq−SP test-accuracy differences against the length in epochs (log scale), with 95 % t intervals over
    connected seed pairs; a line at 0 and one y-scale for every panel.  For a method trained with its
    schedule as published (``axis.published.methods`` of ``meta``'s params) the title says which point has
    which schedule."""
    runs = axis_runs(axis_table, meta, sparsity)
    methods = axis_methods(runs)
    with plt.rc_context(RC):
        if not methods:
            return no_data_figure(out_stem, "axis table is empty", "IP − SP test accuracy vs training length")
        factor = T.percent_scale(runs["test_acc"])
        published = published_methods(runs, meta)
        head = headline_epochs(meta or {})
        if head is None:
            head = lengths(runs)[0]
        every = lengths(runs)
        accountings = against_of(runs)
        shifts = dict(zip(accountings, 10 ** np.linspace(-0.02, 0.02, len(accountings))
                          if len(accountings) > 1 else [1.0]))
        fig, axes = panel_grid(len(methods), 4, panel=(3.6, 3.2))
        drawn_axes, dotted = [], False
        for ax, method in zip(axes, methods):
            rows = runs[runs["method"] == method]
            ax.set_title(_panel_title(method, rows, published, head), fontsize=9)
            drew, excluded = False, 0
            for against in against_of(rows):
                changes = method in published and head in lengths(rows) and len(lengths(rows)) > 1
                dotted |= changes
                did, left_out = _draw_accounting(ax, rows, method, against, factor, shifts[against],
                                                 ":" if changes else "-")
                drew, excluded = drew or did, excluded + left_out
            if not drew:
                no_data(ax, f"no connected SP/IP pairs of {method}")
                continue
            drawn_axes.append(ax)
            ax.axhline(0, color="k", linewidth=0.8)
            ax.set_xscale("log")
            ax.minorticks_off()
            ax.set_xticks(every)
            ax.set_xticklabels([str(e) for e in every])
            ax.set_xlim(every[0] / 1.5, every[-1] * 1.5)
            ax.set_xlabel("training length (epochs, log scale)")
            ax.grid(alpha=0.3)
            if excluded:
                ax.text(0.02, 0.02, f"{excluded} pair{'s' if excluded != 1 else ''} left out: disconnected",
                        transform=ax.transAxes, fontsize=6.5, color=MISSING_COLOR, va="bottom")
        if drawn_axes:   # one y-scale: the panels are read against each other
            low = min(ax.get_ylim()[0] for ax in drawn_axes)
            high = max(ax.get_ylim()[1] for ax in drawn_axes)
            for ax in drawn_axes:
                ax.set_ylim(low, high)
            drawn_axes[0].set_ylabel("test accuracy − SP's" + (" (pp)" if factor == 100 else ""))
        handles = [Line2D([], [], color=COLORS[a], marker=MARKERS[a], linewidth=1.4,
                          label=f"{side_label(a)} − SP: mean and {100 * CONFIDENCE:.0f} % CI over connected "
                                "pairs; points: seeds") for a in accountings]
        if dotted:
            handles.append(Line2D([], [], color="k", linestyle=":", linewidth=1.4,
                                  label="dotted: the schedule changes between the lengths (the panel's title)"))
        fig.legend(handles=handles, loc="outside lower center", ncol=1, frameon=False)
        fig.suptitle(f"{TITLE}\nsparsity {fmt_sparsity(sparsity) if sparsity is not None else 'as run'} "
                     f"(the dense panel: unpruned), {seeds_per_length(runs)}")
        return save(fig, out_stem)
