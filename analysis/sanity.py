"""Sanity of the baselines before any claim is read: what the pruning literature leads one to
expect of standard pruning at high sparsity, set against this study's SP runs.

Each expectation is a comparison of mean SP test accuracies at the headline sparsity (or a
range of a measured quantity), reported as agreeing or not, with the numbers.  They are not
claims of the paper and carry no verdict; a disagreement is something to explain before the
claims are trusted (the report lists them first).

- no method at chance accuracy unless its network is disconnected;
- gradient flow at initialisation of the dense network within 0.1-100 (of order 1-10 expected; batch statistics);
- GMP and LT with rewinding at or above the best of the score-based methods that prune at initialisation
  (Frankle et al. 2021; Gale et al. 2019), RigL at or above random ERK (Evci et al. 2020),
  SNIP, GraSP and SynFlow close to random ERK at high sparsity (Frankle et al. 2021).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from . import tables as T
from .evidence import Evidence

#: "at or above" and "close to" allow this much (accuracy as a fraction): about 1 sd of a run here
TOLERANCE = 0.01
#: a mean accuracy within this of chance counts as "at chance"
CHANCE_MARGIN = 0.05
#: the order of magnitude expected of the dense network's gradient flow at initialisation
GF_INIT_RANGE = (0.1, 100.0)
PAI = ("snip", "grasp", "synflow")
#: the README section that gives what was measured about each disagreement of the default study
README_SECTION = "Why the baselines rank as they do"


@dataclass(frozen=True)
class Check:
    expectation: str
    agrees: bool | None          # None: the runs it needs are missing
    numbers: str


def _sp_means(ev: Evidence) -> pd.Series:
    runs = ev.headline.frame
    sp = runs[(runs["repr"] == "sp") & ~T.is_disconnected(runs).astype(bool)]
    return sp.groupby("method")["test_acc"].mean()


def _pct(v: float) -> str:
    return f"{100 * v:.2f} %"


def checks(ev: Evidence) -> list[Check]:
    out = []
    runs = ev.headline.frame
    chance = T.chance_level(ev.tables.meta)
    if chance is not None and len(runs):
        connected = runs[~T.is_disconnected(runs).astype(bool)]
        means = connected.groupby(["method", "repr"])["test_acc"].mean()
        low = [f"{m} {r.upper()} {_pct(v)}" for (m, r), v in means.items() if v < chance + CHANCE_MARGIN]
        out.append(Check(f"no connected run's method at chance ({_pct(chance)})", not low,
                         (", ".join(low) or f"lowest mean {_pct(means.min())}") if len(means) else "no runs"))
    dense = runs[runs["method"] == "dense"]["gf_init"].dropna() if "gf_init" in runs else pd.Series(dtype=float)
    if len(dense):
        lo, hi = GF_INIT_RANGE
        out.append(Check("gradient flow of the dense network at initialisation within 0.1-100 (order 1-10 expected)",
                         bool(dense.between(lo, hi).all()), f"{dense.min():.3g} to {dense.max():.3g} over "
                                                            f"{len(dense)} runs"))
    sp = _sp_means(ev)
    pai = [m for m in PAI if m in sp]
    best_pai = max(pai, key=lambda m: sp[m]) if pai else None

    def at_least(a: str, b: str | None, label: str) -> None:
        if a not in sp or b is None or b not in sp:
            out.append(Check(label, None, "runs missing"))
            return
        out.append(Check(label, bool(sp[a] >= sp[b] - TOLERANCE), f"{a} {_pct(sp[a])}, {b} {_pct(sp[b])}"))

    at_least("gmp", best_pai, "SP: GMP at or above the best score-based pruning-at-initialisation method (SNIP, GraSP, SynFlow)")
    at_least("lt", best_pai, "SP: LT (rewinding) at or above the best score-based pruning-at-initialisation method")
    at_least("rigl", "random", "SP: RigL at or above random ERK")
    if "random" in sp and pai:
        far = [m for m in pai if abs(sp[m] - sp["random"]) > 2 * TOLERANCE]
        out.append(Check("SP: SNIP, GraSP, SynFlow close to random ERK (within 2 pp)", not far,
                         f"random {_pct(sp['random'])}; " + ", ".join(f"{m} {_pct(sp[m])}" for m in pai)))
    return out
