"""The training-length axis (STUDY_SPEC section 6, claim C10): the paired IP−SP and IP_eq−SP
test-accuracy differences per method and length, and how they change from the shortest to the
longest length.

The axis table (``results/axis.csv``) holds the axis' runs and the headline's main runs of the
axis methods for the axis' seeds; a main run carries ``epochs`` = ``train.epochs``.  These are
pure functions of that table (and meta.json), shared by the claim (:mod:`analysis.claims.length`),
its figure (:mod:`analysis.plots.axis`) and the report.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import tables as T
from .stats import CONFIDENCE, MIN_SEEDS, PairedDifferences, Pairs, t_interval

METRIC = "test_acc"
#: how the advantage changes from the shortest to the longest length (information, never a verdict); an
#: interval of the change that spans 0 says no change was detected, not that the advantage stays as it was
GROWS, SHRINKS, HOLDS = "grows", "shrinks", "no change detected"
TREND_NOT_TESTED = "not tested here"


def trend_phrase(label: str) -> str:
    """'the advantage grows' / 'the advantage shrinks' / 'no change of the advantage detected' / '… not tested'."""
    if label == HOLDS:
        return "no change of the advantage detected"
    if label == TREND_NOT_TESTED:
        return "the change of the advantage is not tested here"
    return f"the advantage {label}"

#: how the report names the pruning families of :mod:`ip.pruning` (C1's parts)
FAMILY_NAMES = {"baseline": "baseline", "pai": "PaI", "lt": "LT", "dst": "DST", "gradual": "during training",
                "pretrained": "after training"}


def family_of(method: str) -> str:
    """'PaI', 'DST', 'during training', ... (the method's family in :mod:`ip.pruning`); '' if unknown."""
    from ip.pruning import method_info
    try:
        family = method_info(method).family
    except ValueError:
        return ""
    return FAMILY_NAMES.get(family, family)


def headline_epochs(meta: dict) -> int | None:
    value = T.meta_value(meta, "epochs", "train.epochs")
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


def axis_runs(axis: pd.DataFrame, meta: dict | None = None, sparsity: float | None = None) -> pd.DataFrame:
    """The axis' runs with a test accuracy: a row without ``epochs`` is a headline run (``train.epochs`` of
    meta.json); sparse runs at ``sparsity`` only (the headline's), dense runs whatever theirs."""
    if axis.empty or METRIC not in axis:
        return axis.iloc[0:0]
    runs = axis[axis[METRIC].notna() & axis["method"].notna()].copy()
    fill = headline_epochs(meta or {})
    if fill is not None:
        runs["epochs"] = runs["epochs"].fillna(fill)
    runs = runs[runs["epochs"].notna()]
    runs["epochs"] = runs["epochs"].astype(int)
    return T.at_sparsity(runs, sparsity)


def lengths(runs: pd.DataFrame, method: str | None = None) -> list[int]:
    """The lengths (epochs) present, of ``method`` or of every run, ascending."""
    rows = runs if method is None else runs[runs["method"] == method]
    return sorted(int(e) for e in rows["epochs"].dropna().unique()) if len(rows) else []


def longest_length(runs: pd.DataFrame) -> int | None:
    """The longest length of the sparse runs (the axis' longest; the dense lengths are not parts of C10)."""
    found = lengths(runs[runs["method"] != "dense"]) if len(runs) else []
    return found[-1] if found else None


def methods_at(runs: pd.DataFrame, epochs: int) -> list[str]:
    """The sparse methods with runs at ``epochs``, in display order."""
    return T.sparse_methods(runs[runs["epochs"] == epochs]) if len(runs) else []


def published_methods(runs: pd.DataFrame, meta: dict | None = None) -> list[str]:
    """The methods trained with their schedules as published (``axis.published.methods`` of meta.json's
    params) that are on the axis; without that key, the sparse methods that miss the longest length."""
    named = T.meta_value(meta or {}, "axis.published.methods")
    sparse = T.sparse_methods(runs) if len(runs) else []
    if isinstance(named, (list, tuple)):
        return [m for m in sparse if m in named]
    longest = longest_length(runs)
    return [m for m in sparse if m not in methods_at(runs, longest)] if longest is not None else []


def axis_methods(runs: pd.DataFrame) -> list[str]:
    """Every method of the axis: the sparse ones in display order, dense last."""
    if runs.empty:
        return []
    return T.sparse_methods(runs) + (["dense"] if (runs["method"] == "dense").any() else [])


def against_of(runs: pd.DataFrame) -> tuple[str, ...]:
    """The representations compared with SP: IP, and IP_eq where the runs have it."""
    return tuple(r for r in T.reprs_present(runs) if r in T.ACCOUNTINGS)


def pairs_at(runs: pd.DataFrame, method: str, epochs: int, against: str = "ip") -> Pairs:
    """The seed pairs of ``method`` trained ``epochs`` epochs, ``against`` vs SP (disconnected pairs left out,
    counted)."""
    rows = runs[(runs["method"] == method) & (runs["epochs"] == epochs)]
    return Pairs.of(rows, METRIC, keys=["method", "seed"], against=against)


def difference_table(runs: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Per method, accounting and length: the mean paired difference over connected pairs with its t interval
    at ``confidence`` (NaN below 2 pairs), the number of pairs and of pairs left out as disconnected."""
    cols = ["method", "against", "epochs", "n", "mean", "ci_low", "ci_high", "excluded"]
    rows = []
    for method in axis_methods(runs):
        for against in against_of(runs[runs["method"] == method]):
            for epochs in lengths(runs, method):
                pairs = pairs_at(runs, method, epochs, against)
                d = pairs.diffs.to_numpy(dtype=float)
                if not d.size and not pairs.excluded_disconnected:
                    continue
                low, high = t_interval(d, confidence)
                rows.append({"method": method, "against": against, "epochs": epochs, "n": int(d.size),
                             "mean": float(d.mean()) if d.size else np.nan, "ci_low": low, "ci_high": high,
                             "excluded": pairs.excluded_disconnected})
    return pd.DataFrame(rows, columns=cols)


@dataclass(frozen=True)
class Trend:
    """The change of one method's paired advantage from its shortest to its longest length: per seed with a
    connected pair at both, d_longest − d_shortest."""
    method: str
    against: str
    shortest: int
    longest: int
    change: PairedDifferences
    ci: tuple
    label: str


def trend_label(change: PairedDifferences, ci: tuple) -> str:
    """'grows' if the interval of the change lies above 0, 'shrinks' if below, else 'no change detected';
    not tested below 2 seeds."""
    if change.n < MIN_SEEDS:
        return TREND_NOT_TESTED
    low, high = ci
    return GROWS if low > 0 else SHRINKS if high < 0 else HOLDS


def trend(runs: pd.DataFrame, method: str, against: str = "ip", confidence: float = CONFIDENCE) -> Trend | None:
    """The change of ``method``'s ``against``−SP advantage from its shortest to its longest length (None with
    fewer than two lengths)."""
    found = lengths(runs, method)
    if len(found) < 2:
        return None
    short, long_ = found[0], found[-1]
    by_seed = {}
    for epochs in (short, long_):
        pairs = pairs_at(runs, method, epochs, against).connected
        by_seed[epochs] = pd.Series(pairs["diff"].to_numpy(dtype=float), index=pairs["seed"].to_numpy())
    both = pd.concat(by_seed, axis=1).dropna()
    change = PairedDifferences.of(both[long_] - both[short]) if len(both) else PairedDifferences.of([])
    ci = t_interval(change.values, confidence)
    return Trend(method, against, short, long_, change, ci, trend_label(change, ci))


def steps_at(runs: pd.DataFrame, epochs: int, meta: dict | None = None) -> int | None:
    """Optimisation steps of a run of ``epochs`` epochs: as the runs recorded them, else the headline's steps
    per run (meta.json) scaled by the length."""
    rows = runs[(runs["epochs"] == epochs)] if len(runs) else runs
    if len(rows) and "steps" in rows and rows["steps"].notna().any():
        return int(rows["steps"].dropna().mode().iloc[0])
    per_run, head = T.steps_per_run(meta or {}), headline_epochs(meta or {})
    if per_run is None or head is None:
        return None
    return int(round(per_run * epochs / head))


def recorded_updates(runs: pd.DataFrame, method: str, epochs: int) -> int | None:
    """Median mask updates (RigL) or pruning steps (GMP) the runs of ``method`` at ``epochs`` recorded."""
    rows = runs[(runs["method"] == method) & (runs["epochs"] == epochs)] if len(runs) else runs
    if not len(rows) or "mask_updates" not in rows or rows["mask_updates"].isna().all():
        return None
    return int(rows["mask_updates"].dropna().median())


def dst_updates(steps: int, interval: int, stop_fraction: float) -> int:
    """Mask updates a RigL/SET schedule makes in a run of ``steps`` steps: every ``interval``-th step t > 0 before
    ``stop_fraction`` of training (the rule of :mod:`ip.pruning.dst`, steps counted from 0)."""
    end = int(stop_fraction * steps)
    return max(0, (end - 1) // interval) if end > 0 else 0


def gmp_steps(steps: int, interval: int, start_fraction: float, end_fraction: float) -> int:
    """Pruning steps a GMP schedule makes in a run of ``steps`` steps: every ``interval``-th step from
    ``start_fraction`` of training, and the step at ``end_fraction`` (the rule of :mod:`ip.pruning.gradual`); the
    step at the start prunes nothing (the cubic schedule is still at 0 there) and is not counted."""
    end = max(1, int(round(end_fraction * steps)))
    start = min(int(round(start_fraction * steps)), end)
    on_grid = {t for t in range(start, min(end, steps - 1) + 1, interval)}
    if end < steps:
        on_grid.add(end)
    return len({t for t in on_grid if t > start})
