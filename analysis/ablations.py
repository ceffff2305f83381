"""Ablation variants of IP, each compared with its SP baseline by the rule of :mod:`analysis.stats`.

Used by the report's ablation table and by the ablation figure, which must agree on which SP
runs a variant is compared with (:func:`sp_baseline`) and on which arms are the main setting
(:func:`main_arms`).

The aggregate stage writes the main setting's runs into the ablation table under the names of the
arms they are (``fb_init=spatial`` and ``share=layer``: the main IP runs; ``fair_budget``: the main
IP_eq runs; ``dense-*``: the dense runs).  Those arms are the ablation's *references*, never members
of its Holm family: the claims decide those runs already (C1, C8), on every main seed.  The
variants that differ from the main setting are one family for the Holm adjustment, and each is set
beside its reference (the main IP runs; the main IP_eq runs for a variant whose FB entries are
charged to the budget), paired over seeds, for information.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import tables as T
from .stats import compare_runs, decide_family

#: the marker of a variant whose FB entries are charged to the budget (study.params.ablation_variants)
FAIR_BUDGET = "fair_budget"
#: the outcome of an arm that is a main setting's runs
REFERENCE = "reference"
#: the metrics two sets of runs must agree on, seed by seed, to be the same runs
SAME_RUN_METRICS = ("test_acc", "train_loss", "test_loss")


def sp_baseline(ablation: pd.DataFrame, method: str, variant=None) -> pd.DataFrame:
    """The SP runs an ablation variant is compared with: SP runs of the same variant if the table has
    them, else those labelled ``sp``, else every SP run of the method; one per (seed, sparsity)."""
    sp = ablation[(ablation["repr"] == "sp") & (ablation["method"] == method)]
    for choice in (sp[sp["variant"] == variant], sp[sp["variant"] == "sp"], sp):
        if len(choice):
            return choice.drop_duplicates(subset=["seed", "sparsity"])
    return sp


def _same_runs(arm: pd.DataFrame, main: pd.DataFrame) -> bool:
    """Whether every run of ``arm`` is a run of ``main`` (same seed, the same value of every metric of
    :data:`SAME_RUN_METRICS` that both recorded; the test accuracy at least)."""
    if arm.empty or main.empty:
        return False
    metrics = [m for m in SAME_RUN_METRICS if m in arm and m in main and arm[m].notna().any()]
    if "test_acc" not in metrics:
        return False
    merged = arm[["seed", *metrics]].merge(main[["seed", *metrics]].drop_duplicates("seed"), on="seed",
                                           how="left", suffixes=("", "_main"))
    return all(np.array_equal(merged[m].to_numpy(dtype=float), merged[f"{m}_main"].to_numpy(dtype=float),
                              equal_nan=True) for m in metrics)


def main_arms(ablation: pd.DataFrame, summary: pd.DataFrame | None) -> dict[tuple[str, str], str]:
    """The ablation's IP arms that are main runs: (method, variant) -> the main representation they are
    (``ip``, or ``ip_eq`` for the main setting charged to the budget), found by matching the runs with the
    summary table seed by seed, not by name."""
    if ablation.empty or summary is None or summary.empty:
        return {}
    out = {}
    for (method, variant), arm in ablation[ablation["repr"] == "ip"].groupby(["method", "variant"], sort=False):
        main = summary[summary["method"] == method]
        for rep in T.reprs_present(main)[1:]:
            if _same_runs(arm, main[main["repr"] == rep]):
                out[(method, variant)] = rep
                break
    return out


def reference_of(variant: str, references: dict[str, str]) -> str | None:
    """The main arm a variant is read against: the main IP_eq runs for a variant charged to the budget (when
    the ablation has them), else the main IP runs; ``references`` maps each main representation to its arm."""
    if FAIR_BUDGET in str(variant) and T.EQUAL_STORAGE in references:
        return references[T.EQUAL_STORAGE]
    return references.get("ip")


def ablation_comparisons(ab: pd.DataFrame, alpha: float, metric: str = "test_acc",
                         summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each IP arm of the ablation table ``ab`` against the SP runs of the same (method, seed, sparsity).

    With ``summary`` (the main runs), an arm whose runs are main runs (:func:`main_arms`) is a reference: its
    comparison is given undecided, ``verdict`` :data:`REFERENCE` and ``main_repr`` the representation it is;
    the other arms are one family for the Holm adjustment, and each carries ``vs_reference``, its paired
    difference from its reference arm's runs (``reference``, which are the main ``reference_repr`` runs:
    :func:`reference_of`; information).  Without ``summary`` every
    arm is a member, and one set of runs under two names counts once."""
    cols = ["method", "variant", "repr", "n", "mean", "sd", "sp_n", "sp_mean", "sp_sd", "comparison", "verdict",
            "main_repr", "reference", "reference_repr", "vs_reference"]
    if ab.empty:
        return pd.DataFrame(columns=cols)
    mains = main_arms(ab, summary)
    labelled, unique, seen, references = [], [], {}, {}
    for (method, variant), g in ab[ab["repr"] == "ip"].groupby(["method", "variant"], sort=False, dropna=False):
        sp = sp_baseline(ab, method, variant)
        c = compare_runs(pd.concat([g, sp]), metric, keys=["method", "seed", "sparsity"])
        if (method, variant) in mains:
            references.setdefault(method, {}).setdefault(mains[(method, variant)], variant)
            labelled.append((method, variant, c, mains[(method, variant)]))
            continue
        # without the main runs to tell, one set of runs under two names is one comparison of the family
        key = (method, tuple(sorted(zip(g["seed"], g["sparsity"], g[metric]))),
               tuple(sorted(zip(sp["seed"], sp["sparsity"], sp[metric]))))
        if key not in seen:
            seen[key] = len(unique)
            unique.append(c)
        labelled.append((method, variant, seen[key], None))
    decided = decide_family(unique, alpha)
    ip_rows = ab[ab["repr"] == "ip"]
    rows = []
    for method, variant, c, main_repr in labelled:
        c = c if main_repr is not None else decided[c]
        ref = None if main_repr is not None else reference_of(variant, references.get(method, {}))
        vs = None
        if ref is not None:
            pair = pd.concat([ip_rows[(ip_rows["method"] == method) & (ip_rows["variant"] == variant)]
                              .assign(repr="variant"),
                              ip_rows[(ip_rows["method"] == method) & (ip_rows["variant"] == ref)]
                              .assign(repr="reference")])
            vs = compare_runs(pair, metric, keys=["method", "seed", "sparsity"], against="variant",
                              base="reference")
        rows.append({"method": method, "variant": variant, "repr": "ip", "n": c.a.n, "mean": c.a.mean, "sd": c.a.sd,
                     "sp_n": c.b.n, "sp_mean": c.b.mean, "sp_sd": c.b.sd, "comparison": c,
                     "verdict": REFERENCE if main_repr is not None else c.verdict, "main_repr": main_repr,
                     "reference": ref, "reference_repr": mains.get((method, ref)) if ref is not None else None,
                     "vs_reference": vs})
    return pd.DataFrame(rows, columns=cols)
