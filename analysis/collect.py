"""The tidy tables the aggregate stage writes, from the rows the runs produced (pure
functions of data frames, so they can be checked on any rows of the same shape)."""
from __future__ import annotations

import pandas as pd


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


def ablation_table(ablation_rows: list[dict], summary: pd.DataFrame, method: str, interspace) -> pd.DataFrame:
    """The ablation's IP variants of ``method`` plus their baselines from the main runs: SP, IP
    with the main setting (``interspace``: its FB init and sharing), and the dense runs."""
    parts = [pd.DataFrame(ablation_rows)] if ablation_rows else []
    if not summary.empty:
        base = summary[summary["method"] == method]
        parts.append(base[base["repr"] == "sp"].assign(variant="sp"))
        ip_main = base[base["repr"] == "ip"]
        parts.append(ip_main.assign(variant=f"fb_init={interspace.fb_init}"))
        parts.append(ip_main.assign(variant=f"share={interspace.share}"))
        dense = summary[summary["method"] == "dense"]
        parts.append(dense.assign(variant="dense-" + dense["repr"]))
    parts = [x for x in parts if not x.empty]
    return pd.concat(parts, ignore_index=True).assign(experiment="ablation") if parts else pd.DataFrame()


def headline_metrics(summary: pd.DataFrame) -> dict:
    """Mean test accuracy per method and representation, and the IP - SP difference."""
    out: dict = {}
    if summary.empty:
        return out
    means = summary.groupby(["method", "repr"])["test_acc"].mean()
    for (method, repr_), v in means.items():
        out.setdefault(method, {})[f"test_acc_{repr_}"] = round(float(v), 4)
    for method, d in out.items():
        if "test_acc_sp" in d and "test_acc_ip" in d:
            d["ip_minus_sp"] = round(d["test_acc_ip"] - d["test_acc_sp"], 4)
    return out


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
