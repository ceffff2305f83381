"""Ablation variants of IP, each compared with its SP baseline by the rule of :mod:`analysis.stats`.

Used by the report's ablation table and by the ablation figure, which must agree on
which SP runs a variant is compared with (:func:`sp_baseline`).  The variants of the
ablation table are one family for the Holm adjustment.
"""
from __future__ import annotations

import pandas as pd

from .stats import compare_runs, decide_family


def sp_baseline(ablation: pd.DataFrame, method: str, variant=None) -> pd.DataFrame:
    """The SP runs an ablation variant is compared with: SP runs of the same variant if the table has
    them, else those labelled ``sp``, else every SP run of the method; one per (seed, sparsity)."""
    sp = ablation[(ablation["repr"] == "sp") & (ablation["method"] == method)]
    for choice in (sp[sp["variant"] == variant], sp[sp["variant"] == "sp"], sp):
        if len(choice):
            return choice.drop_duplicates(subset=["seed", "sparsity"])
    return sp


def ablation_comparisons(ab: pd.DataFrame, alpha: float, metric: str = "test_acc") -> pd.DataFrame:
    """Each IP ablation variant of the ablation table ``ab`` against the SP runs of the same (method, seed,
    sparsity), by the same rule at ``alpha``; the variants of the table are one family for the Holm adjustment
    (a variant that is the same runs as another under a second name counts once)."""
    cols = ["method", "variant", "repr", "n", "mean", "sd", "sp_n", "sp_mean", "sp_sd", "comparison", "verdict"]
    if ab.empty:
        return pd.DataFrame(columns=cols)
    labelled, unique, seen = [], [], {}
    for (method, variant), g in ab[ab["repr"] == "ip"].groupby(["method", "variant"], sort=False, dropna=False):
        sp = sp_baseline(ab, method, variant)
        # the main setting is the reference of two groups (FB init, FB sharing): one set of runs under two
        # names is one comparison of the Holm family, not two
        key = (method, tuple(sorted(zip(g["seed"], g["sparsity"], g[metric]))),
               tuple(sorted(zip(sp["seed"], sp["sparsity"], sp[metric]))))
        if key not in seen:
            seen[key] = len(unique)
            unique.append(compare_runs(pd.concat([g, sp]), metric, keys=["method", "seed", "sparsity"]))
        labelled.append((method, variant, seen[key]))
    decided = decide_family(unique, alpha)
    rows = []
    for method, variant, i in labelled:
        c = decided[i]
        rows.append({"method": method, "variant": variant, "repr": "ip", "n": c.a.n, "mean": c.a.mean, "sd": c.a.sd,
                     "sp_n": c.b.n, "sp_mean": c.b.mean, "sp_sd": c.b.sd, "comparison": c, "verdict": c.verdict})
    return pd.DataFrame(rows, columns=cols)
