"""C5 :func:`claim_c5`: after sparse training IP's filters are spatially dense, SP's sparse.

The measure is the fraction of spatially non-zero entries of the trained K×K filters,
per run: ``summary.filter_density``, or when that is blank the mean over layers of
``filter_density.csv``.
"""
from __future__ import annotations

import pandas as pd

from .. import tables as T
from ..figures import CLAIM_FIGURES
from ..formatting import Scale, fmt
from ..paper import CLAIMS
from ..stats import NOT_TESTED, alpha_of, combine
from .evidence import ClaimResult, decide_parts, numbers_of, per_method_parts, tally


def _filter_density_runs(t: T.Tables) -> tuple[pd.DataFrame, str]:
    """Per-run filter densities at the headline sparsity, and where they were read from."""
    s = T.headline_sparsity(t)
    runs = T.at_sparsity(t.summary, s)
    if runs["filter_density"].notna().any():
        return runs, f"{t.path_of('summary')} (filter_density)"
    if t.filter_density.empty:
        return runs, "missing"
    # the per-layer file knows nothing of connectivity: take each run's flag from the summary
    flags = runs[["method", "repr", "seed", "disconnected"]].drop_duplicates(["method", "repr", "seed"])
    per_run = T.filter_density_per_run(t.filter_density).merge(flags, on=["method", "repr", "seed"], how="left")
    return per_run, f"{t.path_of('filter_density')} (mean over layers)"


def claim_c5(t: T.Tables) -> ClaimResult:
    """C5: per method, IP's trained filters spatially denser than SP's."""
    runs, source = _filter_density_runs(t)
    methods = T.sparse_methods(runs) if len(runs) else []
    scale = Scale(100.0, " %", 1)
    parts = decide_parts(per_method_parts(runs, methods, "filter_density", scale, "spatial filter density", True,
                                          "denser"), alpha_of(t.meta))
    verdict = combine(p.verdict for p in parts)
    if not parts or source == "missing":
        expl, verdict = f"missing: no filter densities ({t.path_of('filter_density')})", NOT_TESTED
        summary = expl
    else:
        summary = (f"Fraction of spatially non-zero entries of trained K×K filters, from {source}; "
                   f"methods: {tally(parts)}.")
        expl = summary + " Per method: " + "; ".join(p.note for p in parts) + "."
    key = "; ".join(f"{p.label} SP {fmt(100 * p.comparison.b.mean, 1)} % / IP {fmt(100 * p.comparison.a.mean, 1)} %"
                    for p in parts if p.comparison is not None and p.comparison.diff.n) or "missing"
    return ClaimResult("C5", CLAIMS["C5"], verdict, numbers_of(parts), CLAIM_FIGURES["C5"], expl, parts,
                       f"filter density: {key}", summary)
