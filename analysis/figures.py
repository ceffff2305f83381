"""The study's figures: which file each one is, which claim it supports, and the command line.

Every ``fig_*`` function takes DataFrames with the columns of :mod:`analysis.tables`
and an output path stem, writes ``<stem>.png`` and ``<stem>.pdf`` and returns
:class:`Drawn`.  It can be called on any other tables of the same shape.  A panel
whose data is missing says "no data" (and why); a missing run is never drawn as zero.
The drawing code is in :mod:`analysis.plots`, one module per group of figures.

Command line (the pipeline's ``figures`` stage)::

    python -m analysis.figures --results results --out paper_figures
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from . import tables as T
from .evidence import Evidence
from .plots.accuracy import fig_ablation, fig_accuracy, fig_generalisation, fig_sweep
from .plots.axis import fig_axis
from .plots.controls import fig_lr, fig_shuffle
from .plots.costs import fig_costs
from .plots.storage import fig_storage
from .plots.filters import fig_filters
from .plots.style import Drawn
from .plots.theorem1 import fig_theorem1
from .plots.trainability import fig_gradient_flow, fig_gradient_flow_layers, fig_hessian, fig_hessian_density

#: figure file stems (written by :func:`draw_all`) that carry the evidence of each claim
FIGURES = {
    "accuracy": "fig1_accuracy",
    "sweep": "fig2_sweep",
    "filters": "fig3_filters",
    "gradient_flow": "fig4_gradient_flow",
    "hessian": "fig5_hessian",
    "generalisation": "fig6_generalisation",
    "theorem1": "fig7_theorem1",
    "ablation": "fig8_ablation",
    "costs": "fig9_costs",
    "shuffle": "fig10_shuffle_control",
    "lr": "fig11_lr_control",
    "axis": "fig12_training_length",
    "storage": "fig13_storage",
}
#: the figures each claim cites, in the order the report shows them
CLAIM_FIGURES = {
    "C1": (FIGURES["accuracy"],),
    "C2": (FIGURES["sweep"], FIGURES["storage"]),
    "C3": (),
    "C4": (FIGURES["costs"],),
    "C5": (FIGURES["filters"],),
    "C6": (FIGURES["gradient_flow"], FIGURES["hessian"]),
    "C7": (FIGURES["generalisation"],),
    "C8": (FIGURES["ablation"], FIGURES["accuracy"]),
    "C9": (FIGURES["theorem1"],),
    "C10": (FIGURES["axis"],),
}
#: the figures of the controls' claims (beyond the paper)
CONTROL_FIGURES = {"K1": (FIGURES["shuffle"],), "K2": (FIGURES["lr"],)}
#: appendix figures: the detail behind a claim's figures, drawn by :func:`draw_all` beside :data:`FIGURES`
APPENDIX_FIGURES = {
    "gradient_flow_layers": "figA1_gradient_flow_layers",
    "hessian_density": "figA2_hessian_density",
}
#: the appendix figures of each claim
CLAIM_APPENDIX_FIGURES = {"C6": (APPENDIX_FIGURES["gradient_flow_layers"], APPENDIX_FIGURES["hessian_density"])}

__all__ = ["APPENDIX_FIGURES", "CLAIM_APPENDIX_FIGURES", "CLAIM_FIGURES", "CONTROL_FIGURES", "FIGURES", "Drawn",
           "draw_all", "fig_ablation", "fig_accuracy", "fig_axis", "fig_costs", "fig_filters", "fig_generalisation",
           "fig_gradient_flow", "fig_gradient_flow_layers", "fig_hessian", "fig_hessian_density",
           "fig_lr", "fig_shuffle", "fig_storage", "fig_sweep", "fig_theorem1", "main"]


def draw_all(tables: T.Tables, out_dir) -> dict[str, Drawn]:
    """Every figure of the study from ``tables`` into ``out_dir`` (file stems from :data:`FIGURES` and
    :data:`APPENDIX_FIGURES`)."""
    out = Path(out_dir)
    t, s = tables, Evidence.from_tables(tables).sparsity
    jobs = {
        "accuracy": lambda p: fig_accuracy(t.summary, p, s, chance=T.chance_level(t.meta)),
        "sweep": lambda p: fig_sweep(t.sweep, p, t.summary),
        "filters": lambda p: fig_filters(t.filters, t.filter_density, p, t.summary, sparsity=s),
        "gradient_flow": lambda p: fig_gradient_flow(t.history, t.gf_layers, p, t.summary),
        "hessian": lambda p: fig_hessian(t.hessian, t.density, p),
        "generalisation": lambda p: fig_generalisation(t.sweep, p),
        "theorem1": lambda p: fig_theorem1(t.checks, t.one_step, p, gf_masks=t.gf_masks, sparsity=s),
        "ablation": lambda p: fig_ablation(t.ablation, t.summary, p),
        "costs": lambda p: fig_costs(t.summary, t.costs_reference, p, s),
        "shuffle": lambda p: fig_shuffle(t.controls, p),
        "lr": lambda p: fig_lr(t.controls, p),
        "axis": lambda p: fig_axis(t.axis, p, t.meta, s),
        "storage": lambda p: fig_storage(t.sweep, t.summary, p),
        "gradient_flow_layers": lambda p: fig_gradient_flow_layers(t.gf_layers, p, t.summary),
        "hessian_density": lambda p: fig_hessian_density(t.density, p),
    }
    stems = {**FIGURES, **APPENDIX_FIGURES}
    return {name: job(out / stems[name]) for name, job in jobs.items()}


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
