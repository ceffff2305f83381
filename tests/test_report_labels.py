"""What the report's labels say: † for a part a squeezed schedule explains and ‡ for a choice on an edge of
its grid, each wherever such a part is named in the body; an interval on one side of 0 that Holm leaves
inconclusive says so; the storage ratio beside C2's slopes; the baselines read on SP alone; the
learning-rate grid as the run recorded it; C9's failed checks with their values; what every result
rests on (training length, GF at the end of training); C5's absolute range; C4's runtime over the same
sparse pairs.  Small synthetic tables, each checked against a number computed here."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from analysis import report as R
from analysis import stats as S
from analysis import tables as T
from analysis import verdicts as V
from analysis.claims import ClaimResult, Part, claim_c4, claim_c5, claim_c9
from analysis.claims.controls import LrGrid, claim_k2
from analysis.evidence import Evidence
from analysis.formatting import Scale, holm_gap, verdict_label
from analysis.sanity import checks as sanity_checks
from test_analysis import make_history, make_runs, make_sweep, make_tables
from test_claims_extra import k2_evidence, lr_table
from test_report_opening import META, STEPS, body_of, study_runs, study_tables


def _claims_row(text: str, claim_id: str) -> str:
    return next(line for line in body_of(text).splitlines() if line.startswith(f"| {claim_id} |"))


def _caveats(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("- **Caveats**"))


# --------------------------------------------------------------------------- A, B: the marks

def test_a_grid_edge_is_marked_double_dagger_and_a_squeezed_schedule_dagger(tmp_path):
    text = R.build_report(study_tables(), tmp_path)
    body = body_of(text)
    caveats = _caveats(text)
    assert "‡ a choice on an edge of its grid" in caveats and "† rigl, gmp: schedules squeezed" in caveats
    k2 = next(line for line in body.splitlines() if line.startswith("| K2 |"))
    assert "snip‡ +" in k2
    assert "snip†" not in text                       # † is for schedules only
    assert "part snip‡ (SP chose ×4" in text.split("## K2: ")[1]
    # a verdict that turns on such a part names it with its mark
    edge = Part("snip", S.INCONCLUSIVE, caveat="SP chose ×4, the top of the grid 0.25–4", mark="‡")
    k2_result = ClaimResult("K2", "claim", S.INCONCLUSIVE, {}, (), "", [edge, Part("synflow", S.SUPPORTED)])
    assert R._verdict_cell(k2_result) == "**inconclusive**, on snip‡ alone"
    assert R._verdict_line(k2_result) == "**Verdict: inconclusive.** It turns on snip‡ alone."


def test_every_part_on_a_squeezed_schedule_carries_its_dagger_in_the_body(tmp_path):
    """Outside the opening table's method column, the caveats line that explains them and the setting-like
    lines, a body that names rigl or gmp names them marked."""
    sweep = make_sweep(methods=("snip", "rigl"), sparsities=(0.9, 0.95, 0.98, 0.99))
    sweep["steps"] = STEPS
    text = R.build_report(study_tables(sweep=sweep), tmp_path)
    # the training-length section's runs with the schedules as published are not squeezed: no mark there
    before_length = body_of(text).split("## Training length")[0]
    body = [line for line in before_length.splitlines()
            if not line.startswith(("- **Caveats**", "| rigl |", "| gmp |"))]
    unmarked = [m.group(0) for line in body for m in re.finditer(r"\b(rigl|gmp)\b(?!†)", line, re.IGNORECASE)]
    assert unmarked == []
    assert "rigl†" in _claims_row(text, "C2") and "rigl†" in _claims_row(text, "C7")
    c5 = _claims_row(text, "C5")
    assert "supported 8/8 (rigl†, gmp† among them)" in c5
    c6 = _claims_row(text, "C6")
    assert re.search(r"(rigl|gmp)† ", c6) or re.search(r"\((rigl|gmp)†\)", c6)


def test_the_baselines_name_a_squeezed_method_with_its_dagger():
    summary = study_runs()
    summary.loc[(summary["method"] == "gmp") & (summary["repr"] == "sp"), "test_acc"] -= 0.2
    ev = Evidence.from_tables(study_tables(summary=summary))
    gmp = next(c for c in R.baseline_checks(ev) if "GMP" in c.expectation)
    assert gmp.agrees is False and gmp.expectation.startswith("SP: GMP† at or above")
    assert gmp.numbers.startswith("gmp† ")
    assert "GMP† at or above the best score-based pruning-at-initialisation method" in R.sanity_line(ev)


def test_the_marked_tally_names_the_marked_parts_of_each_verdict():
    from analysis.claims.parts import tally
    parts = [Part("rigl GF", S.INCONCLUSIVE, mark="†"), Part("gmp GF", S.SUPPORTED, mark="†"),
             Part("snip GF", S.INCONCLUSIVE)]
    assert tally(parts) == "supported 1/3, inconclusive 2/3"
    assert tally(parts, marked=True) == "supported 1/3 (gmp†), inconclusive 2/3 (rigl† among them)"
    assert parts[0].marked == "rigl† GF" and parts[2].marked == "snip GF"


# --------------------------------------------------------------------------- C: C2's storage ratio, Holm's gap

def test_c2_gives_what_ip_stores_over_sp_at_the_sweeps_ends(tmp_path):
    t = study_tables()
    text = R.build_report(t, tmp_path)
    sweep = t.sweep[t.sweep["method"] == "snip"]
    stored = sweep.groupby(["repr", "sparsity"])["stored_params"].mean()
    low, high = (stored["ip"][s] / stored["sp"][s] for s in (0.9, 0.995))
    assert f"IP stores {low:.2f}× SP at s=0.9, {high:.2f}× at 0.995" in _claims_row(text, "C2")


def _family(*diffs):
    """Comparisons of one claim's parts, decided together (Holm over them)."""
    return S.decide_family([S.compare([0.0] * len(d), [0.0] * len(d), d) for d in diffs], 0.05)


def test_an_interval_on_one_side_that_holm_leaves_inconclusive_says_so():
    """Mean −1, se 0.289 over 4 pairs: the 95 % interval (t = 3.18) ends below 0, the 97.5 % one Holm gives the
    smaller of two p-values (t = 4.18) reaches above it, so the part is inconclusive and says why."""
    below, across = _family([-1.5, -0.5, -1.5, -0.5], [1.0, -1.0, 0.5, -0.5])
    assert S.t_interval(below.diff.values)[1] < 0 < S.t_interval(below.diff.values, 1 - 0.05 / 2)[1]
    assert below.verdict == S.INCONCLUSIVE and below.decision.holm_m == 2
    assert holm_gap(below) == "below 0 at 95 %, not after Holm over 2 parts"
    assert verdict_label(below) == "inconclusive: below 0 at 95 %, not after Holm over 2 parts"
    assert R.outcome_text(below, Scale(100, "", 2)).startswith(
        "inconclusive (below 0 at 95 %, not after Holm over 2 parts)")                  # the ablation's outcome
    # an interval across 0, and a supported part, have nothing to add
    assert across.verdict == S.INCONCLUSIVE and holm_gap(across) == "" and verdict_label(across) == S.INCONCLUSIVE
    [above] = _family([1.5, 0.5, 1.5, 0.5])
    assert above.verdict == S.SUPPORTED and holm_gap(above) == ""
    # in the report: C2's part of the same shape is labelled so in the claims table
    result = next(r for r in V.all_verdicts(Evidence.from_tables(study_tables())) if r.claim_id == "C2")
    for p in result.parts:
        if p.comparison is not None and holm_gap(p.comparison):
            assert f"({verdict_label(p.comparison)})" in result.brief


# --------------------------------------------------------------------------- D: the baselines on SP alone

def test_the_baselines_read_sp_alone():
    summary = study_runs(rigl_eq=-0.3)          # rigl IP_eq far below every SP mean
    ev = Evidence.from_tables(study_tables(summary=summary))
    chance = next(c for c in R.baseline_checks(ev) if "at chance" in c.expectation)
    runs = ev.headline.frame
    sp_low = runs[runs["repr"] == "sp"].groupby("method")["test_acc"].mean().min()
    every_low = runs.groupby(["method", "repr"])["test_acc"].mean().min()
    assert every_low < sp_low
    assert chance.numbers == f"lowest mean {100 * sp_low:.2f} %"
    assert chance.numbers != next(c for c in sanity_checks(ev) if "at chance" in c.expectation).numbers
    section = R.sanity_section(ev)
    assert "numbers (SP runs at the headline sparsity, connected)" in section and "SP runs" in section.split("\n")[2]


# --------------------------------------------------------------------------- E: the grid the run recorded

def _k2(scales, best, lr_params=None):
    ev = k2_evidence(lr_table(best, scales=scales))
    meta = {"params": {"controls": {"lr": lr_params}}} if lr_params is not None else {}
    ev = Evidence.from_tables(T.Tables.from_frames(summary=ev.tables.summary, controls=ev.tables.controls, meta=meta))
    return claim_k2(ev)


def test_k2_describes_a_fixed_grid_as_the_run_recorded_it():
    result = _k2((0.5, 1.0, 2.0), {"sp": 2.0, "ip": 2.0}, {"lr_scales": [0.5, 1.0, 2.0]})
    assert "the fixed grid ×0.5, ×1, ×2 (`controls.lr.lr_scales` as the run recorded it)" in result.summary
    assert "grow" not in result.summary
    assert result.parts[0].caveat == "SP and IP chose ×2, the top of the fixed grid 0.5–2"
    assert result.parts[0].mark == "‡"


def test_k2_describes_a_grid_that_grew_and_where_it_reached_its_limit():
    grown = _k2((0.25, 0.5, 1.0, 2.0, 4.0, 8.0), {"sp": 4.0, "ip": 1.0},
                {"lr_scales": [0.25, 0.5, 1.0, 2.0, 4.0], "max_growth": 2})
    assert ("the grid ×0.25, ×0.5, ×1, ×2, ×4 (`controls.lr.lr_scales` as the run recorded it), which grows by the "
            "next scale beyond an edge a choice lies on, at most 2 times per edge: grown by ×8") in grown.summary
    assert grown.parts[0].caveat == ""                       # SP's choice ×4 now lies inside the grown grid
    limit = _k2((0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0), {"sp": 32.0, "ip": 1.0},
                {"lr_scales": [0.25, 0.5, 1.0, 2.0, 4.0], "max_growth": 2})
    assert "grown by ×8, ×16" in limit.summary
    assert limit.parts[0].caveat == "SP chose ×16, the top of the grid 0.25–16 (grown 2 times there, the limit)"
    inside = _k2((0.25, 0.5, 1.0, 2.0, 4.0), {"sp": 1.0, "ip": 2.0},
                 {"lr_scales": [0.25, 0.5, 1.0, 2.0, 4.0], "max_growth": 2})
    assert "not grown (no choice on an edge)" in inside.summary
    grid = LrGrid((0.25, 0.5, 1.0, 2.0, 4.0, 8.0), (0.25, 0.5, 1.0, 2.0, 4.0), 2)
    assert grid.added == {"bottom": [], "top": [8.0]} and not grid.fixed


# --------------------------------------------------------------------------- F: C9's failed checks

def _checks(rows):
    return T.normalise_table("checks", pd.DataFrame(rows))


def test_c9_names_dense_without_a_sparsity_and_gives_the_failed_value_against_its_tolerance():
    detail = "ip:max_abs_error=1.87e-05; ip:max_rel_error={rel}; ip:num_checked=76; ip:num_nondifferentiable=0"
    rows = [dict(check="fd_grad_fb", method="dense", sparsity=0.98, seed=0, passed=False,
                 detail=detail.format(rel=3.73e-05)),
            dict(check="fd_grad_fb", method="synflow", sparsity=0.98, seed=0, passed=False,
                 detail=detail.format(rel=4.69e-04)),
            dict(check="fd_grad_fb", method="snip", sparsity=0.98, seed=0, passed=True, detail=detail.format(rel=1e-7))]
    rows += [dict(check="gradient_flow", method=m, sparsity=0.98, seed=0, passed=True, detail="")
             for m in ("dense", "snip", "synflow")]
    from ip.theory import FD_RTOL
    result = claim_c9(Evidence.from_tables(T.Tables.from_frames(checks=_checks(rows), meta={"sparsity": 0.98})))
    assert result.brief == (f"4/6 checks passed; fd_grad_fb failed at dense, synflow s=0.98 (relative error 3.7e-05, "
                            f"4.7e-04 against {FD_RTOL:g}); every other check passed (3/3)")
    assert "dense s=" not in result.brief and "dense s=" not in result.explanation
    # a row's own value and reference, where recorded, come first
    rows[0].update(value=2e-3, reference=1e-3)
    recorded = claim_c9(Evidence.from_tables(T.Tables.from_frames(checks=_checks(rows), meta={"sparsity": 0.98})))
    assert "relative error 2.0e-03 against 0.001, 4.7e-04 against 1e-05" in recorded.brief


# --------------------------------------------------------------------------- G, H: the opening

def test_the_caveats_say_what_every_result_rests_on(tmp_path):
    t = study_tables()
    caveats = _caveats(R.build_report(t, tmp_path))
    main = t.summary[t.summary["experiment"] == "main"]["train_loss"]
    assert f"(regime line): final training loss of the main runs {main.min():.2f}–{main.max():.2f}" in caveats
    # GF logged at several epoch ends: "during training" is their mean, nothing to add
    assert "at the end of training" not in caveats
    one_epoch = make_history(epochs=1)
    caveats = _caveats(R.build_report(study_tables(history=one_epoch), tmp_path))
    assert "C6's gradient flow \"during training\" is its value at the end of training" in caveats
    assert caveats.count(f"{STEPS} steps") == 0 and "schedules squeezed into the run's length" in caveats


# --------------------------------------------------------------------------- I: C5's absolute range

def test_c5_gives_the_participation_ratios_range_with_its_anchors():
    summary = make_runs()
    summary["participation_ratio"] += 0.02 * summary["method"].map({"random": 0, "snip": 1}).fillna(2)
    t = make_tables(summary=summary)
    result = claim_c5(Evidence.from_tables(t))
    runs = t.summary[t.summary["method"] != "dense"]
    means = runs.groupby(["repr", "method"])["participation_ratio"].mean()
    sp, ip = means["sp"], means["ip"]
    assert f"method means SP {sp.min():.2f}–{sp.max():.2f}, IP {ip.min():.2f}–{ip.max():.2f}" in result.brief
    assert "1/K² = 0.11 for K = 3: one non-zero entry per K×K filter; 1: all K² entries equal" in result.brief


def test_c5_gives_the_share_of_filters_with_pr_above_two_over_k_squared():
    """STUDY_SPEC section 3 reports PR as a mean and as the share of filters with PR > 2/K²: the share is beside
    the mean, per method SP / IP and the dense networks', for information (the mean decides)."""
    summary = make_runs()
    shares = {"sp": 0.05, "ip": 0.20}
    summary["pr_dense_share"] = summary["repr"].map(shares) + 0.01 * summary["method"].map(
        {"random": 0, "snip": 1}).fillna(2)
    summary.loc[summary["method"] == "dense", "pr_dense_share"] = 0.97
    result = claim_c5(Evidence.from_tables(make_tables(summary=summary)))
    assert "snip SP 6.0 % / IP 21.0 %" in result.summary and "the dense networks SP 97.0 %, IP 97.0 %" in \
        result.summary
    assert "share of filters with PR > 2/K²: SP 5–7 %, IP 20–22 % over methods (dense 97 %); " in result.brief
    # the share never decides: the parts are those of the mean participation ratio, one per sparse method
    assert sorted(p.label for p in result.parts) == sorted(set(summary["method"]) - {"dense"})
    assert all("participation ratio" in p.note for p in result.parts)
    summary = summary.drop(columns="pr_dense_share")
    bare = claim_c5(Evidence.from_tables(make_tables(summary=summary)))
    assert "PR > 2/K²" not in bare.summary and "PR > 2/K²" not in bare.brief


# --------------------------------------------------------------------------- J: C4's runtime pairs

def test_c4_runtime_compares_every_representation_over_the_same_sparse_pairs():
    summary = study_runs()
    dense = summary["method"] == "dense"
    summary["step_seconds"] = 0.02 + 0.001 * summary["seed"]
    summary.loc[summary["repr"] == "ip", "step_seconds"] *= 1.05
    summary.loc[dense & (summary["repr"] == "ip"), "step_seconds"] = 1.0      # far off: would move the median
    summary.loc[(summary["method"] == "rigl") & (summary["repr"] == T.EQUAL_STORAGE) & (summary["seed"] == 4),
                "step_seconds"] = float("nan")                               # this pair is left out of both
    result = claim_c4(Evidence.from_tables(make_tables(summary=summary, meta=META)))
    ip, eq = (next(p for p in result.parts if p.label == f"runtime {name}/SP") for name in ("IP", "IP_eq"))
    sparse = (~summary["method"].eq("dense")).sum() // 3 - 1
    assert ip.numbers["n_pairs"] == eq.numbers["n_pairs"] == sparse
    assert ip.numbers["step_ratio_median"] == pytest.approx(1.05)
    assert f"over the {sparse} sparse pairs" in ip.note and f"over the {sparse} sparse pairs with step times" \
        in result.brief
    # the pair without a step time is counted and said, not mistaken for a disconnected one
    assert ip.numbers["excluded_untimed"] == 1 and ip.numbers["excluded_disconnected"] == 0
    assert "1 pairs left out: a run without a step time" in ip.note and "disconnected" not in ip.note


def test_every_claim_still_decides_on_the_study_like_tables():
    results = V.all_verdicts(Evidence.from_tables(study_tables()))
    assert [r.claim_id for r in results] == [f"C{i}" for i in range(1, 11)]
    assert all(r.verdict in S.VERDICTS for r in results)
