"""C2's slope over the sweep, the pooled sign test beside C1, the learning-rate control's edges
(K2) and C4's inference MACs, on small synthetic tables checked against hand computations."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from analysis import report as R
from analysis import stats as S
from analysis import tables as T
from analysis.claims import claim_c1, claim_c2, claim_c4
from analysis.claims.controls import claim_k2
from analysis.evidence import Evidence

SPARSITIES = (0.9, 0.95, 0.98, 0.99)
SEEDS = (0, 1, 2)
#: per seed: (intercept, slope) of the advantage in x = −log10(1 − s), and a wobble so seeds differ
GROWING = {0: (0.00, 0.030, 0.002), 1: (0.01, 0.025, -0.001), 2: (-0.005, 0.035, 0.0005)}
FLAT = {0: (0.02, 0.004, 0.003), 1: (0.02, -0.006, -0.002), 2: (0.02, 0.001, 0.001)}


def x_of(s):
    return -math.log10(1 - s)


def advantage(line, s):
    a, b, wobble = line
    k = SPARSITIES.index(s) if s in SPARSITIES else 0
    return a + b * x_of(s) + wobble * (-1) ** k


def sweep_rows(lines: dict, method="snip", against="ip", sparsities=SPARSITIES, stored_ratio=1.3):
    rows = []
    for seed, line in lines.items():
        for s in sparsities:
            sp = 0.85 - 0.2 * s + 0.001 * seed
            kept = round((1 - s) * 20000)
            rows.append(dict(method=method, repr="sp", seed=seed, sparsity=s, test_acc=sp, stored_params=kept))
            rows.append(dict(method=method, repr=against, seed=seed, sparsity=s, test_acc=sp + advantage(line, s),
                             stored_params=round(kept * stored_ratio)))
    return rows


def c2(rows) -> object:
    sweep = T.normalise_table("sweep", pd.DataFrame(rows).assign(experiment="sweep"))
    return claim_c2(Evidence.from_tables(T.Tables.from_frames(sweep=sweep)))


def part(result, label):
    return next(p for p in result.parts if p.label == label)


# --------------------------------------------------------------------------- C2: slope against −log10(1 − s)

def test_c2_slope_is_the_mean_of_per_seed_least_squares_slopes_with_its_t_interval():
    result = c2(sweep_rows(GROWING))
    snip = part(result, "snip")
    x = np.array([x_of(s) for s in SPARSITIES])
    slopes = [np.polyfit(x, [advantage(GROWING[seed], s) for s in SPARSITIES], 1)[0] for seed in SEEDS]
    mean, sd = np.mean(slopes), np.std(slopes, ddof=1)
    low, high = scipy_stats.t.interval(0.95, len(slopes) - 1, loc=mean, scale=sd / math.sqrt(len(slopes)))
    assert snip.numbers["slope_mean"] == pytest.approx(mean) and mean > 0     # grows with s: positive slope
    assert (snip.numbers["slope_ci_low"], snip.numbers["slope_ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert snip.numbers["n_seeds"] == 3 and snip.verdict == S.SUPPORTED and result.verdict == S.SUPPORTED
    assert "x = −log10(1 − s)" in result.summary and "positive slope means the advantage grows" in result.summary
    assert f"+{100 * mean:.2f} pp/decade" in snip.note
    # the endpoint change is printed for information only
    change = [advantage(GROWING[seed], 0.99) - advantage(GROWING[seed], 0.9) for seed in SEEDS]
    assert snip.numbers["change_mean"] == pytest.approx(np.mean(change))
    assert "For information, the change from s=0.9 to s=0.99" in snip.note


def test_c2_a_shrinking_advantage_has_a_negative_slope_and_a_flat_one_is_inconclusive():
    shrinking = {seed: (a + 0.1, -b, w) for seed, (a, b, w) in GROWING.items()}
    down = c2(sweep_rows(shrinking))
    assert part(down, "snip").numbers["slope_mean"] < 0 and down.verdict == S.NOT_SUPPORTED
    flat = c2(sweep_rows(FLAT))
    assert flat.verdict == S.INCONCLUSIVE
    low, high = part(flat, "snip").numbers["slope_ci_low"], part(flat, "snip").numbers["slope_ci_high"]
    assert low < 0 < high


def test_c2_prints_each_points_storage_ratio_and_leaves_out_infeasible_and_disconnected_points():
    rows = sweep_rows(GROWING, stored_ratio=1.3)
    eq = sweep_rows(GROWING, against=T.EQUAL_STORAGE, stored_ratio=1.0)
    eq = [r for r in eq if r["repr"] == T.EQUAL_STORAGE and r["sparsity"] != 0.99]
    eq += [dict(method="snip", repr=T.EQUAL_STORAGE, seed=seed, sparsity=0.99,
                infeasible="the FB entries exceed the budget") for seed in SEEDS]
    rows += eq
    # one disconnected IP run at 0.95, and two headline-only seeds with one point each
    for r in rows:
        r["disconnected"] = r["repr"] == "ip" and r["seed"] == 1 and r["sparsity"] == 0.95
    for seed in (3, 4):
        rows += [dict(method="snip", repr=rep, seed=seed, sparsity=0.98, test_acc=0.7 + 0.5 * (rep != "sp"),
                      stored_params=400) for rep in ("sp", "ip", T.EQUAL_STORAGE)]
    result = c2(rows)
    ip, eq_part = part(result, "snip"), part(result, "snip (equal storage)")
    assert ip.numbers["excluded_disconnected"] == 1 and ip.numbers["n_seeds_short"] == 2
    assert ip.numbers["n_seeds"] == 3 and "1 pair disconnected" in ip.note and "2 seeds with fewer" in ip.note
    # seed 1's slope is over its three connected points
    x = np.array([x_of(s) for s in (0.9, 0.98, 0.99)])
    seed1 = np.polyfit(x, [advantage(GROWING[1], s) for s in (0.9, 0.98, 0.99)], 1)[0]
    others = [np.polyfit([x_of(s) for s in SPARSITIES], [advantage(GROWING[k], s) for s in SPARSITIES], 1)[0]
              for k in (0, 2)]
    assert ip.numbers["slope_mean"] == pytest.approx(np.mean([seed1, *others]))
    assert ip.numbers["storage_ratio@0.9"] == pytest.approx(1.3, rel=1e-3)
    assert "s=0.9 " in ip.note and "storage IP/SP 1.300" in ip.note
    assert eq_part.numbers["n_infeasible"] == 1 and "1 point infeasible (s=0.99" in eq_part.note
    assert eq_part.numbers["sparsity_high"] == 0.98 and "storage IP_eq/SP 1.000" in eq_part.note
    # both accountings are one family
    assert {p.comparison.decision.holm_m for p in result.parts} == {2}
    assert set(result.group_verdicts) == {"IP vs SP (paper's accounting: equal sparsity, FBs as overhead)",
                                          "IP_eq vs SP (equal storage)"}


def test_c2_with_one_connected_sparsity_is_not_tested():
    result = c2(sweep_rows(GROWING, sparsities=(0.98,)))
    assert result.verdict == S.NOT_TESTED and "fewer than two sparsities" in result.parts[0].note


# --------------------------------------------------------------------------- the pooled sign test beside C1

def test_c1_pooled_sign_test_counts_methods_and_leaves_out_a_tie():
    shift = {"random": 0.03, "snip": 0.02, "grasp": -0.01, "synflow": 0.0}
    rows = []
    for method, d in shift.items():
        for seed in SEEDS:
            sp = 0.8 + 0.01 * seed
            wobble = 0.0 if d == 0 else 0.002 * (seed - 1)
            rows += [dict(method=method, repr="sp", seed=seed, sparsity=0.98, test_acc=sp),
                     dict(method=method, repr="ip", seed=seed, sparsity=0.98, test_acc=sp + d + wobble)]
    result = claim_c1(Evidence.from_tables(T.Tables.from_frames(summary=pd.DataFrame(rows),
                                                                meta={"sparsity": 0.98})))
    pooled = {k.removeprefix("pooled.ip."): v for k, v in result.numbers.items() if k.startswith("pooled.ip.")}
    assert (pooled["higher"], pooled["lower"], pooled["ties"], pooled["methods"]) == (2, 1, 1, 3)
    assert pooled["sign_test_p"] == pytest.approx(scipy_stats.binomtest(2, 3, 0.5).pvalue)
    assert "information, not a verdict" in result.summary
    assert "IP higher in 2 of 3 methods (1 tie (mean exactly 0) left out)" in result.summary
    assert f"p = {scipy_stats.binomtest(2, 3, 0.5).pvalue:.3g}" in result.summary
    # information only: the verdict is the per-method rule's
    assert result.verdict == S.combine(p.verdict for p in result.parts)


# --------------------------------------------------------------------------- K2: a choice on an edge of the grid

def lr_table(best: dict, scales=(0.25, 0.5, 1.0, 2.0, 4.0)) -> pd.DataFrame:
    rows = []
    for seed in range(4):
        w = 0.001 * ((seed * 7) % 3 - 1)
        for repr_, gain in (("sp", 0.0), ("ip", 0.02)):
            for x in scales:
                acc = 0.8 + gain - 0.01 * abs(math.log2(x / best[repr_])) + w
                rows.append({"control": "lr", "method": "snip", "repr": repr_, "seed": seed, "lr_scale": x,
                             "val_acc": acc, "test_acc": acc + w, "sparsity": 0.98, "shuffled": False})
    return pd.DataFrame(rows)


def k2_evidence(controls):
    summary = pd.DataFrame([{"method": m, "repr": r, "seed": s, "sparsity": 0.98, "test_acc": 0.8}
                            for m in ("dense", "snip") for r in ("sp", "ip") for s in range(4)])
    return Evidence.from_tables(T.Tables.from_frames(summary=summary, controls=controls))


def test_k2_says_a_choice_on_an_edge_is_not_bracketed_and_the_verdict_names_the_part(tmp_path):
    ev = k2_evidence(lr_table({"sp": 4.0, "ip": 1.0}))
    result = claim_k2(ev)
    [snip] = result.parts
    assert "SP chose ×4, the top of the grid 0.25–4: not bracketed" in snip.note
    assert "IP chose" not in snip.note
    assert snip.numbers["sp_on_edge"] and not snip.numbers["ip_on_edge"]
    assert "part snip" in result.caveat and "not bracketed" in result.caveat
    assert ("snip: the scales run: ×0.25, ×0.5, ×1, ×2, ×4 (the run's params snapshot does not record the grid); "
            "chosen SP ×4 (an edge: not bracketed), IP ×1") in result.summary
    assert result.verdict == S.SUPPORTED                      # the §5 rule's verdict, unchanged
    section = R.controls_section(ev, tmp_path)
    assert f"**Verdict: {result.verdict}.** Note: a learning rate chosen on an edge" in section
    assert "part snip‡ (SP chose ×4" in section


def test_k2_a_choice_inside_the_grid_is_not_flagged():
    result = claim_k2(k2_evidence(lr_table({"sp": 2.0, "ip": 0.5})))
    [snip] = result.parts
    assert "not bracketed" not in snip.note and result.caveat == ""
    assert "SP at ×2 vs IP at ×0.5" in snip.note
    assert "chosen SP ×2, IP ×0.5" in result.summary
    low = claim_k2(k2_evidence(lr_table({"sp": 2.0, "ip": 0.25})))
    assert "IP chose ×0.25, the bottom of the grid 0.25–4: not bracketed" in low.parts[0].note


# --------------------------------------------------------------------------- C4: inference MACs per method

def test_c4_prints_the_mean_macs_of_each_representation_and_their_ratio():
    rows = []
    macs = {"snip": {"sp": 1.0e6, "ip": 1.5e6, T.EQUAL_STORAGE: 1.2e6}, "random": {"sp": 2.0e6, "ip": 2.2e6}}
    for method, by_rep in macs.items():
        for rep, m in by_rep.items():
            for seed in SEEDS:
                rows.append(dict(method=method, repr=rep, seed=seed, sparsity=0.98, test_acc=0.8,
                                 flops_sparse=m + 1000 * seed, step_seconds=0.02))
    rows += [dict(method="dense", repr=rep, seed=0, sparsity=0.0, test_acc=0.9, flops_sparse=9e9)
             for rep in ("sp", "ip")]
    result = claim_c4(Evidence.from_tables(T.Tables.from_frames(summary=pd.DataFrame(rows),
                                                                meta={"sparsity": 0.98})))
    n = result.numbers
    assert n["macs.snip.sp"] == pytest.approx(1.0e6 + 1000) and n["macs.snip.ip"] == pytest.approx(1.5e6 + 1000)
    assert n["macs.snip.ip_over_sp"] == pytest.approx((1.5e6 + 1000) / (1.0e6 + 1000))
    assert n["macs.snip.ip_eq_over_sp"] == pytest.approx((1.2e6 + 1000) / (1.0e6 + 1000))
    assert math.isnan(n["macs.random.ip_eq"]) and "macs.dense.sp" not in n
    assert "snip SP 1.001 M, IP 1.501 M (×1.500), IP_eq 1.201 M (×1.200)" in result.summary
    assert "not a part of the verdict" in result.summary
    assert all("MACs" not in p.label for p in result.parts)
