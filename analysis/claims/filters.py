"""C5 :func:`claim_c5`: after sparse training IP's filters are spatially dense, SP's sparse.

The measure is the spatial participation ratio of the trained K×K filters that keep an
entry (SP) or coefficient (IP), per run (STUDY_SPEC section 3): ``summary.participation_ratio``,
or when that is blank the filter-weighted mean of ``filter_density.csv``.  The fraction of
non-zero entries is printed beside it for information only: any movement of an FB makes
every entry of an IP filter non-zero, so it cannot fail.
"""
from __future__ import annotations

import pandas as pd

from .. import tables as T
from ..evidence import Evidence, Runs
from ..figures import CLAIM_FIGURES
from ..formatting import Scale, fmt
from ..paper import CLAIMS
from ..stats import NOT_TESTED, combine
from .parts import ClaimResult, decide_parts, numbers_of, per_method_parts, tally
from .schedules import mark_squeezed

METRIC = "participation_ratio"


def _filter_runs(ev: Evidence) -> tuple[Runs, str]:
    """Per-run participation ratios (and non-zero fractions) at the headline sparsity, and their source."""
    runs = ev.headline.frame
    if METRIC in runs and runs[METRIC].notna().any():
        return ev.headline, f"{ev.path_of('summary')} ({METRIC})"
    filter_density = ev.tables.filter_density
    if filter_density.empty:
        return ev.headline, "missing"
    # the per-layer file knows nothing of connectivity: take each run's flag from the summary
    flags = runs[["method", "repr", "seed", "disconnected"]].drop_duplicates(["method", "repr", "seed"])
    per_run = T.filter_density_per_run(filter_density).merge(flags, on=["method", "repr", "seed"], how="inner")
    if not per_run[METRIC].notna().any():
        return Runs.of(per_run), "missing"
    return Runs.of(per_run), f"{ev.path_of('filter_density')} (filter-weighted mean over layers)"


SHARE = "pr_dense_share"


def _share_means(runs: pd.DataFrame) -> pd.Series:
    """Mean over runs of the share of filters with PR > 2/K², per (method, repr); empty where not recorded."""
    if SHARE not in runs or not runs[SHARE].notna().any():
        return pd.Series(dtype=float)
    return runs.groupby(["method", "repr"])[SHARE].mean()


def _share_note(runs: pd.DataFrame, methods) -> str:
    """The second number of STUDY_SPEC section 3: the share of filters with PR > 2/K², per method SP / IP (and
    the dense network's), for information beside the mean that decides."""
    means = _share_means(runs)
    bits = [f"{m} SP {fmt(100 * means[(m, 'sp')], 1)} % / IP {fmt(100 * means[(m, 'ip')], 1)} %"
            for m in methods if (m, "sp") in means and (m, "ip") in means]
    if not bits:
        return ""
    dense = [f"{side.upper()} {fmt(100 * means[('dense', side)], 1)} %" for side in ("sp", "ip")
             if ("dense", side) in means]
    return (" The share of filters with PR > 2/K² (an effective number of entries K²·PR above 2), mean per run, for "
            "information: " + "; ".join(bits) + (f"; the dense networks {', '.join(dense)}" if dense else "") + ".")


def _nonzero_note(runs: pd.DataFrame, methods) -> str:
    if "filter_density" not in runs or not runs["filter_density"].notna().any():
        return ""
    means = runs.groupby(["method", "repr"])["filter_density"].mean()
    bits = [f"{m} SP {fmt(100 * means[(m, 'sp')], 1)} % / IP {fmt(100 * means[(m, 'ip')], 1)} %"
            for m in methods if (m, "sp") in means and (m, "ip") in means]
    return (" For information only (it cannot fail for IP), the fraction of non-zero filter entries: "
            + "; ".join(bits) + ".") if bits else ""


def claim_c5(ev: Evidence) -> ClaimResult:
    """C5: for each sparse method, the paired IP−SP difference of the mean participation ratio of the trained
    filters at the headline sparsity (above 0: IP's filters are spatially denser)."""
    runs, source = _filter_runs(ev)
    parts = decide_parts(per_method_parts(runs, METRIC, Scale(1.0, "", 3), "mean participation ratio",
                                          better="more spread"), ev.alpha) if source != "missing" else []
    mark_squeezed(parts, ev.tables.meta, ev.headline.frame)
    verdict = combine(p.verdict for p in parts)
    if not parts:
        expl, verdict = (f"missing: no participation ratios ({ev.path_of('summary')}, "
                         f"{ev.path_of('filter_density')})"), NOT_TESTED
        summary = expl
    else:
        summary = ("Spatial participation ratio PR(h) = (Σh²)² / (K²·Σh⁴) of the trained K×K filters that keep an "
                   "entry (SP) or coefficient (IP): 1/K² for one non-zero entry, 1 for equal energy everywhere; "
                   f"mean per run, from {source}; methods: {tally(parts)}." + _share_note(ev.headline.frame, runs.methods)
                   + _nonzero_note(runs.frame, runs.methods))
        expl = summary + " Per method: " + "; ".join(p.note for p in parts) + "."
    key = "; ".join(f"{p.label} SP {fmt(p.comparison.b.mean, 3)} / IP {fmt(p.comparison.a.mean, 3)}"
                    for p in parts if p.comparison is not None and p.comparison.diff.n) or "missing"
    result = ClaimResult("C5", CLAIMS["C5"], verdict, numbers_of(parts), CLAIM_FIGURES["C5"], expl, parts,
                         f"participation ratio: {key}", summary)
    paired = [p.comparison for p in parts if p.comparison is not None and p.comparison.diff.n]
    ratios = [c.a.mean / c.b.mean for c in paired if c.b.mean]
    if ratios:
        result.brief = (f"mean participation ratio IP/SP {_spread(ratios)} over {len(ratios)} method"
                        f"{'s' if len(ratios) != 1 else ''}; method means SP {_spread([c.b.mean for c in paired])}, "
                        f"IP {_spread([c.a.mean for c in paired])} ({_anchors(ev.tables.filters)}); "
                        + _share_brief(ev.headline.frame, runs.methods)
                        + f"parts: {tally(parts, marked=True)}")
    return result


def _share_brief(runs: pd.DataFrame, methods) -> str:
    """'share of filters with PR > 2/K²: SP 1–49 %, IP 4–61 % over methods (dense 97 %); ' or ''."""
    means = _share_means(runs)
    sides = {side: [100 * means[(m, side)] for m in methods if (m, side) in means] for side in ("sp", "ip")}
    if not sides["sp"] or not sides["ip"]:
        return ""
    dense = f" (dense {fmt(100 * means[('dense', 'sp')], 0)} %)" if ("dense", "sp") in means else ""
    return (f"share of filters with PR > 2/K²: SP {_spread(sides['sp'], 0)} %, IP {_spread(sides['ip'], 0)} % over "
            f"methods{dense}; ")


def _spread(values, digits: int = 2) -> str:
    """'0.31–0.40' (or one value): the range of ``values``."""
    low, high = fmt(min(values), digits), fmt(max(values), digits)
    return low + (f"–{high}" if low != high else "")


def kernel_size(filters: pd.DataFrame) -> int | None:
    """K of the K×K filters recorded in ``filters.csv`` (rows and columns counted from 0), None without any."""
    if filters.empty or not {"row", "col"} <= set(filters.columns):
        return None
    k = pd.concat([filters["row"], filters["col"]]).dropna()
    return int(k.max()) + 1 if len(k) else None


def _anchors(filters: pd.DataFrame) -> str:
    """The participation ratio's two ends: 1/K² (one non-zero entry per filter) and 1 (all K² entries equal)."""
    k = kernel_size(filters)
    low = f"1/K² = {fmt(1 / k ** 2, 2)} for K = {k}" if k else "1/K²"
    return f"{low}: one non-zero entry per K×K filter; 1: all K² entries equal"
