"""The tables the aggregate stage writes (analysis.collect), on small hand-made frames with exact numbers."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from analysis.collect import ablation_table, headline_metrics, sweep_table, theorem1_tables

NAN = math.nan


def run(method, repr_, seed, sparsity, test_acc, **extra) -> dict:
    return {"experiment": "main", "method": method, "repr": repr_, "seed": seed, "sparsity": sparsity,
            "test_acc": test_acc, **extra}


def test_sweep_table_adds_the_sweep_methods_main_runs_and_the_main_run_wins():
    sweep_rows = [run("snip", "sp", 0, 0.9, 0.60), run("snip", "ip", 0, 0.9, 0.62),
                  run("snip", "sp", 0, 0.98, 0.11), run("snip", "ip", 0, 0.98, 0.12)]   # repeats the headline
    summary = pd.DataFrame([run("snip", "sp", 0, 0.98, 0.40), run("snip", "ip", 0, 0.98, 0.45),
                            run("random", "sp", 0, 0.98, 0.30), run("dense", "sp", 0, 0.0, 0.70)])
    table = sweep_table([{**r, "experiment": "sweep"} for r in sweep_rows], summary, ["snip"])
    assert len(table) == 4 and set(table["method"]) == {"snip"} and set(table["experiment"]) == {"sweep"}
    at = table.set_index(["repr", "sparsity"])["test_acc"].to_dict()
    assert at == {("sp", 0.9): 0.60, ("ip", 0.9): 0.62, ("sp", 0.98): 0.40, ("ip", 0.98): 0.45}
    assert sweep_table([], pd.DataFrame(), ["snip"]).empty


def test_ablation_table_adds_the_baselines_from_the_main_runs():
    ablation_rows = [{**run("snip", "ip", 0, 0.98, 0.50), "variant": "fb_init=dct"}]
    summary = pd.DataFrame([run("snip", "sp", 0, 0.98, 0.40), run("snip", "ip", 0, 0.98, 0.45),
                            run("random", "sp", 0, 0.98, 0.30),
                            run("dense", "sp", 0, 0.0, 0.70), run("dense", "ip", 0, 0.0, 0.71)])
    table = ablation_table(ablation_rows, summary, "snip", SimpleNamespace(fb_init="spatial", share="layer"))
    assert list(table["variant"]) == ["fb_init=dct", "sp", "fb_init=spatial", "share=layer", "dense-sp", "dense-ip"]
    assert list(table["test_acc"]) == [0.50, 0.40, 0.45, 0.45, 0.70, 0.71]
    assert list(table["method"]) == ["snip"] * 4 + ["dense"] * 2
    assert set(table["experiment"]) == {"ablation"} and "random" not in set(table["method"])
    assert ablation_table([], pd.DataFrame(), "snip", SimpleNamespace(fb_init="spatial", share="layer")).empty


def test_headline_metrics_means_and_paired_intervals_without_disconnected_pairs():
    rows = []
    for seed, (sp, ip, ip_eq) in enumerate([(0.40, 0.45, 0.41), (0.42, 0.49, 0.44), (0.44, 0.10, 0.47)]):
        rows += [run("snip", "sp", seed, 0.98, sp, disconnected=False),
                 # seed 2's IP network is disconnected (chance level): its pair is no evidence
                 run("snip", "ip", seed, 0.98, ip, disconnected=seed == 2),
                 run("snip", "ip_eq", seed, 0.98, ip_eq, disconnected=False)]
    rows += [run("dense", "sp", 0, 0.0, 0.70), run("dense", "ip", 0, 0.0, 0.72)]
    metrics = headline_metrics(pd.DataFrame(rows))
    snip = metrics["snip"]
    assert snip["test_acc_sp"] == 0.42 and snip["test_acc_ip"] == 0.3467 and snip["test_acc_ip_eq"] == 0.44
    # IP − SP over the two connected pairs: 0.05, 0.07; t_{0.975, 1} = 12.706
    assert snip["ip_minus_sp"] == 0.06 and snip["ip_minus_sp_n_pairs"] == 2
    assert (snip["ip_minus_sp_ci_low"], snip["ip_minus_sp_ci_high"]) == (-0.0671, 0.1871)
    # IP_eq − SP: 0.01, 0.02, 0.03; t_{0.975, 2} = 4.303
    assert snip["ip_eq_minus_sp"] == 0.02 and snip["ip_eq_minus_sp_n_pairs"] == 3
    assert (snip["ip_eq_minus_sp_ci_low"], snip["ip_eq_minus_sp_ci_high"]) == (-0.0048, 0.0448)
    # one dense pair (no disconnected column in those rows: connected): a difference, no interval
    assert metrics["dense"] == {"test_acc_sp": 0.70, "test_acc_ip": 0.72, "ip_minus_sp": 0.02,
                                "ip_minus_sp_n_pairs": 1}
    wider = headline_metrics(pd.DataFrame(rows), alpha=0.01)["snip"]
    assert wider["ip_eq_minus_sp_ci_low"] < snip["ip_eq_minus_sp_ci_low"]
    assert headline_metrics(pd.DataFrame()) == {}


def test_theorem1_tables_from_the_checks_rows():
    def row(check, variant, quantity, value, eta=NAN):
        return {"method": "snip", "sparsity": 0.9, "seed": 0, "check": check, "variant": variant,
                "quantity": quantity, "value": value, "eta": eta}
    rows = pd.DataFrame([
        row("gradient_flow", "ip", "holds", 1.0), row("gradient_flow", "sp", "gf_total", 2.0),
        row("gradient_flow", "ip", "gf_total", 3.0),
        row("expressivity", "ip", "holds", 1.0), row("expressivity", "ip", "holds", 0.0),
        row("one_step", "sp", "loss", 2.0, 0.1), row("one_step", "ip", "loss", 1.9, 0.1),
        row("one_step", "sp", "first_order_prediction", 1.8, 0.1),
        row("one_step", "ip", "first_order_prediction", 1.7, 0.1),
    ])
    out = theorem1_tables(rows)
    checks = out["checks"].set_index("check")
    assert list(checks.index) == ["gradient_flow", "expressivity"]          # one_step has no pass/fail row
    assert checks.loc["gradient_flow", "passed"] and not checks.loc["expressivity", "passed"]
    assert checks.loc["gradient_flow", "detail"] == "sp:gf_total=2; ip:gf_total=3"
    step = out["one_step"].iloc[0]
    assert (step["eta"], step["loss_sp"], step["loss_ip"], step["pred_sp"], step["pred_ip"]) == (0.1, 2.0, 1.9,
                                                                                               1.8, 1.7)
    gf = out["gf_masks"].iloc[0]
    assert (gf["method"], gf["sparsity"], gf["gf_sp"], gf["gf_ip"]) == ("snip", 0.9, 2.0, 3.0)


@pytest.mark.parametrize("value, passed", [(0.51, True), (0.5, False)])
def test_theorem1_check_passes_only_above_one_half(value, passed):
    rows = pd.DataFrame([{"method": "snip", "sparsity": 0.9, "seed": 0, "check": "b_gf", "variant": "ip",
                          "quantity": "holds", "value": value, "eta": NAN},
                         {"method": "snip", "sparsity": 0.9, "seed": 0, "check": "one_step", "variant": "sp",
                          "quantity": "loss", "value": 1.0, "eta": 0.1},
                         {"method": "snip", "sparsity": 0.9, "seed": 0, "check": "one_step", "variant": "ip",
                          "quantity": "loss", "value": 1.0, "eta": 0.1},
                         {"method": "snip", "sparsity": 0.9, "seed": 0, "check": "one_step", "variant": "sp",
                          "quantity": "first_order_prediction", "value": 1.0, "eta": 0.1},
                         {"method": "snip", "sparsity": 0.9, "seed": 0, "check": "one_step", "variant": "ip",
                          "quantity": "first_order_prediction", "value": 1.0, "eta": 0.1}])
    assert bool(theorem1_tables(rows)["checks"]["passed"].iloc[0]) is passed


def test_an_interval_end_that_rounds_to_zero_keeps_its_side():
    from analysis.collect import interval_end
    assert interval_end(0.0000127) == 1.3e-05 and interval_end(-0.0000127) == -1.3e-05
    assert interval_end(0.01234) == 0.0123 and interval_end(0.0) == 0.0


def test_ablation_baselines_are_the_main_runs_of_the_ablation_seeds():
    ablation_rows = [{**run("snip", "ip", s, 0.98, 0.50), "variant": "fb_init=dct"} for s in (0, 1)]
    summary = pd.DataFrame([run("snip", r, s, 0.98, 0.40 + 0.01 * s) for r in ("sp", "ip") for s in range(5)])
    table = ablation_table(ablation_rows, summary, "snip", SimpleNamespace(fb_init="spatial", share="layer"),
                           seeds=[0, 1])
    assert set(table["seed"]) == {0, 1}
    everything = ablation_table(ablation_rows, summary, "snip", SimpleNamespace(fb_init="spatial", share="layer"))
    assert set(everything["seed"]) == set(range(5))
