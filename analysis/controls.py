"""The controls' tidy table (results/controls.csv) and what the report reads from it.

- mask shuffling: the shuffled runs (``shuffled`` true) beside their unshuffled pairs, the
  main runs of the same method, representation and seed;
- learning rate: every run of the control with its validation and test accuracy, the
  scale each representation's validation accuracy chooses (:func:`best_scale`), the grid
  the stage ran (:func:`lr_scales`) and whether a choice is one of its edges (:func:`grid_edge`).
"""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ip.controls import best_scale as choose

from . import tables as T
from .stats import Pairs

#: the columns a row of results/controls.csv keeps (the rest of a run's metrics are in its json)
COLUMNS = T.SCHEMAS["controls"][1]


def best_scale(runs: pd.DataFrame, by: str = "val_acc") -> Mapping[tuple[str, str], float]:
    """:func:`ip.controls.best_scale` of a table's runs (the rule the lr_control stage grows its grid by)."""
    return choose(runs.to_dict("records"), by)


def controls_table(shuffle_rows: list[dict], lr_rows: list[dict], summary: pd.DataFrame) -> pd.DataFrame:
    """One row per run of a control; the shuffle control's unshuffled runs are the main runs it pairs with."""
    parts = []
    if shuffle_rows:
        shuffled = pd.DataFrame(shuffle_rows).assign(control="shuffle", shuffled=True)
        parts.append(shuffled)
        if not summary.empty:
            keys = shuffled[["method", "repr", "seed"]].drop_duplicates()
            main = summary.merge(keys, on=["method", "repr", "seed"])
            parts.append(main.assign(control="shuffle", shuffled=False))
    if lr_rows:
        parts.append(pd.DataFrame(lr_rows).assign(control="lr", shuffled=False))
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    table = pd.concat(parts, ignore_index=True)
    return table.reindex(columns=COLUMNS).sort_values(["control", "method", "repr", "shuffled", "lr_scale", "seed"],
                                                      ignore_index=True)


def lr_choice(table: pd.DataFrame) -> pd.DataFrame:
    """Per (method, repr) of the learning-rate control: the scale chosen on validation accuracy."""
    runs = table[table["control"] == "lr"]
    if runs.empty:
        return pd.DataFrame(columns=["method", "repr", "lr_scale"])
    chosen = best_scale(runs, by="val_acc")
    return pd.DataFrame([{"method": m, "repr": r, "lr_scale": s} for (m, r), s in chosen.items()])


def lr_scales(table: pd.DataFrame, method: str) -> list[float]:
    """Every scale the learning-rate control ran for ``method``, ascending: the grid as the stage grew it."""
    runs = table[(table["control"] == "lr") & (table["method"] == method)]
    return sorted(float(s) for s in runs["lr_scale"].dropna().astype(float).unique())


def grid_edge(scale: float, scales: list[float]) -> str:
    """'bottom' or 'top' where ``scale`` is the smallest or largest of ``scales`` ('only' for a grid of
    one scale): a choice there is not bracketed, a scale beyond it might do better; '' where it lies
    strictly inside."""
    if not scales or scale != scale:
        return ""
    if len(scales) == 1:
        return "only"
    if float(scale) == max(scales):
        return "top"
    if float(scale) == min(scales):
        return "bottom"
    return ""


def _as_sides(runs: pd.DataFrame, side: pd.Series) -> pd.DataFrame:
    """``runs`` with ``repr`` replaced by ``side`` (the two sides of a comparison that is not IP vs SP)."""
    return runs.assign(repr=side.to_numpy())


def shuffle_effect(table: pd.DataFrame, method: str, repr_: str) -> Pairs:
    """Test accuracy of the shuffled runs against the unshuffled ones of (method, repr), paired by seed."""
    runs = table[(table["control"] == "shuffle") & (table["method"] == method) & (table["repr"] == repr_)]
    sides = _as_sides(runs, runs["shuffled"].map(lambda v: "shuffled" if v is True else "unshuffled"))
    return Pairs.of(sides, "test_acc", keys=["method", "seed"], against="shuffled", base="unshuffled")


def shuffle_advantage(table: pd.DataFrame, method: str, shuffled: bool) -> Pairs:
    """IP − SP test accuracy of ``method``'s shuffle-control seeds, with shuffled or unshuffled masks."""
    runs = table[(table["control"] == "shuffle") & (table["method"] == method)
                 & (table["shuffled"].map(lambda v: v is True) == shuffled)]
    return Pairs.of(runs, "test_acc", keys=["method", "seed"])


def lr_advantage(table: pd.DataFrame, method: str, scale: float | None = None) -> Pairs:
    """IP − SP test accuracy of the learning-rate control at one scale, or (``scale`` None) with
    each representation at the scale its validation accuracy chose (best against best)."""
    runs = table[(table["control"] == "lr") & (table["method"] == method)]
    if scale is None:
        chosen = lr_choice(runs)
        runs = runs.merge(chosen, on=["method", "repr", "lr_scale"])
    else:
        runs = runs[runs["lr_scale"].astype(float) == float(scale)]
    return Pairs.of(runs, "test_acc", keys=["method", "seed"])


def methods_of(table: pd.DataFrame, control: str) -> list[str]:
    """The methods of ``control``, in the study's display order."""
    return T.ordered_methods(table.loc[table["control"] == control, "method"].dropna())
