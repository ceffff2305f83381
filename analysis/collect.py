"""The tidy tables the aggregate stage writes, from the rows the runs produced (pure
functions of data frames, so they can be checked on any rows of the same shape)."""
from __future__ import annotations

import pandas as pd

from . import tables as T
from .stats import CONFIDENCE, compare_runs, t_interval


def sweep_table(sweep_rows: list[dict], summary: pd.DataFrame, sweep_methods: list[str]) -> pd.DataFrame:
    """The sweep's runs plus the main runs of the sweep methods (the headline sparsity's points);
    where a sweep point repeats the headline sparsity, the main run wins."""
    sweep = pd.DataFrame(sweep_rows)
    if not summary.empty:
        head = summary[summary["method"].isin(sweep_methods)].assign(experiment="sweep")
        sweep = pd.concat([sweep, head], ignore_index=True)
    if not sweep.empty:
        sweep = sweep.drop_duplicates(subset=["method", "repr", "seed", "sparsity"], keep="last")
    return sweep


def axis_table(axis_rows: list[dict], summary: pd.DataFrame, methods: list[str], seeds: list[int]) -> pd.DataFrame:
    """The training-length axis: its runs (without their per-epoch history) plus the main runs
    of ``methods`` and the axis' ``seeds`` (the headline's length), so that every length of a
    method is read over the same seeds."""
    parts = [pd.DataFrame([{k: v for k, v in row.items() if k != "history"} for row in axis_rows])] if axis_rows else []
    if not summary.empty and axis_rows:
        head = summary[summary["method"].isin(methods) & summary["seed"].isin(list(seeds))]
        parts.append(head.assign(experiment="axis"))
    parts = [x for x in parts if not x.empty]
    if not parts:
        return pd.DataFrame(columns=T.SCHEMAS["axis"][1])
    table = pd.concat(parts, ignore_index=True)
    return table.sort_values(["method", "epochs", "repr", "seed"], ignore_index=True)


def ablation_table(ablation_rows: list[dict], summary: pd.DataFrame, method: str, interspace,
                   seeds=None) -> pd.DataFrame:
    """The ablation's IP variants of ``method`` plus their baselines from the main runs: SP, IP
    with the main setting (``interspace``: its FB init and sharing), the main IP_eq runs as the
    ``fair_budget`` variant (the main setting with its FB entries charged to the budget), and the
    dense runs; with ``seeds`` (the ablation's), only the main runs of those seeds, so that every
    variant is read over the same seeds."""
    parts = [pd.DataFrame(ablation_rows)] if ablation_rows else []
    if not summary.empty:
        if seeds is not None:
            summary = summary[summary["seed"].isin(list(seeds))]
        base = summary[summary["method"] == method]
        parts.append(base[base["repr"] == "sp"].assign(variant="sp"))
        ip_main = base[base["repr"] == "ip"]
        parts.append(ip_main.assign(variant=f"fb_init={interspace.fb_init}"))
        parts.append(ip_main.assign(variant=f"share={interspace.share}"))
        parts.append(base[base["repr"] == T.EQUAL_STORAGE].assign(variant="fair_budget", repr="ip"))
        dense = summary[summary["method"] == "dense"]
        parts.append(dense.assign(variant="dense-" + dense["repr"]))
    parts = [x for x in parts if not x.empty]
    return pd.concat(parts, ignore_index=True).assign(experiment="ablation") if parts else pd.DataFrame()


def headline_metrics(summary: pd.DataFrame, alpha: float = 1 - CONFIDENCE) -> dict:
    """Per method: mean test accuracy per representation (``test_acc_sp``, ``test_acc_ip``[, ``test_acc_ip_eq``])
    and, per representation compared with SP, the mean paired difference over connected seed pairs with its
    Student-t interval at confidence 1 − ``alpha`` (``ip_minus_sp``, ``ip_minus_sp_ci_low``,
    ``ip_minus_sp_ci_high``, ``ip_minus_sp_n_pairs``; likewise ``ip_eq_minus_sp``).  Rounded to 4 decimals
    (an interval's end near 0 keeps 2 significant digits);
    an interval that needs 2 pairs is left out with fewer."""
    out: dict = {}
    if summary.empty:
        return out
    means = summary.groupby(["method", "repr"])["test_acc"].mean()
    for (method, repr_), v in means.items():
        out.setdefault(method, {})[f"test_acc_{repr_}"] = round(float(v), 4)
    for method, d in out.items():
        runs = summary[summary["method"] == method]
        for against in T.reprs_present(runs)[1:]:
            diff = compare_runs(runs, "test_acc", keys=["method", "seed"], against=against).diff
            if diff.n == 0:
                continue
            key = f"{against}_minus_sp"
            d[key] = round(diff.mean, 4)
            d[f"{key}_n_pairs"] = diff.n
            if diff.testable:
                low, high = t_interval(diff.values, 1 - alpha)
                d[f"{key}_ci_low"], d[f"{key}_ci_high"] = interval_end(low), interval_end(high)
    return out


def interval_end(x: float, decimals: int = 4) -> float:
    """An interval's end rounded to ``decimals``, or to 2 significant digits where that would make a
    non-zero end 0: which side of 0 an end lies on decides a verdict."""
    rounded = round(float(x), decimals)
    return rounded if rounded != 0 or x == 0 else float(f"{x:.2g}")


def theorem1_tables(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """From the Thm 1 checks' rows: ``checks`` (one pass/fail row per check and mask),
    ``one_step`` (losses after one step and their first-order predictions, SP and IP) and
    ``gf_masks`` (gradient flow of SP and IP per mask)."""
    checks = []
    for (method, sparsity, seed, check), g in rows.groupby(["method", "sparsity", "seed", "check"], sort=False):
        holds = g[(g["quantity"] == "holds")]
        if holds.empty:
            continue
        passed = bool(holds["value"].astype(float).min() > 0.5)
        detail = "; ".join(f"{r.variant}:{r.quantity}={r.value:.3g}" for r in g.itertuples()
                           if r.quantity != "holds" and pd.isna(r.eta))
        checks.append({"check": check, "method": method, "sparsity": sparsity, "seed": seed, "passed": passed,
                       "detail": detail})
    step = rows[(rows["check"] == "one_step") & rows["eta"].notna()]
    wide = step.pivot_table(index=["method", "sparsity", "seed", "eta"], columns=["variant", "quantity"],
                            values="value", aggfunc="first")
    table = pd.DataFrame({
        "loss_sp": wide[("sp", "loss")], "loss_ip": wide[("ip", "loss")],
        "pred_sp": wide[("sp", "first_order_prediction")], "pred_ip": wide[("ip", "first_order_prediction")],
    }).reset_index()
    gf = rows[(rows["check"] == "gradient_flow") & (rows["quantity"] == "gf_total")]
    gf_masks = gf.pivot_table(index=["method", "sparsity", "seed"], columns="variant", values="value") \
        .reset_index().rename(columns={"sp": "gf_sp", "ip": "gf_ip"})
    return {"checks": pd.DataFrame(checks), "one_step": table, "gf_masks": gf_masks}
