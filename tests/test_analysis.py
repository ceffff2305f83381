"""The analysis layer on small synthetic tables: verdicts follow the data, missing stays missing,
every figure draws (also from empty tables), and the report's numbers are the data's."""
from __future__ import annotations

import json
import math
import re

import matplotlib.collections
import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from analysis import answer as A
from analysis import claims as C
from analysis import figures as Fg
from analysis import report as R
from analysis import stats as S
from analysis import tables as T
from analysis import verdicts as V
from analysis.evidence import Evidence
from analysis.plots.style import COLORS
from analysis.plots.theorem1 import _gf_points

SEEDS = (0, 1, 2)
METHODS = ("dense", "random", "snip", "lt")
HEADLINE = 0.98
LAYERS = ("conv1", "layer1.0.conv1", "layer1.0.conv2", "layer2.0.conv1", "layer2.0.conv2", "fc")


# --------------------------------------------------------------------------- synthetic tables

def _acc(method_index: int, seed: int, rep: str, ip_shift: float, noise: float, ip_wobble: float) -> float:
    """SP: base + noise*(seed-1) (sd = noise over 3 seeds); IP adds ip_shift and a seed-0 wobble."""
    base = 0.80 - 0.02 * method_index + noise * (seed - 1)
    return base + (ip_shift + ip_wobble * (seed == 0) if rep == "ip" else 0.0)


def make_runs(ip_shift=0.05, noise=0.004, methods=METHODS, seeds=SEEDS, sparsity=HEADLINE, drop=(),
              experiment="main", gap_ip_shift=-0.02, step_ratio=1.03, ip_wobble=0.0005):
    """Run rows; ``drop``: (method, repr) pairs left out."""
    rows = []
    for mi, method in enumerate(methods):
        for seed in seeds:
            for rep in T.REPRS:
                if (method, rep) in drop:
                    continue
                acc = _acc(mi, seed, rep, ip_shift, noise, ip_wobble)
                gap = 0.06 + (gap_ip_shift if rep == "ip" else 0.0) + 0.002 * seed
                prunable, dense_total = 17000, 17300
                s = 0.0 if method == "dense" else sparsity
                kept = round((1 - s) * prunable)
                fb = 1539 if rep == "ip" else 0
                rows.append(dict(
                    experiment=experiment, method=method, repr=rep, seed=seed, sparsity=s, test_acc=acc,
                    train_acc=acc + gap, test_loss=0.5 - acc / 4, train_loss=0.4 - acc / 4, gap_acc=gap,
                    gap_loss=0.1, sparsity_actual=s, kept_params=kept, fb_overhead_params=fb,
                    stored_params=kept + fb, total_params=dense_total + fb, flops_dense=2.0e6,
                    flops_sparse=(1 - s) * 2.0e6 * (1.4 if rep == "ip" else 1.0) + 1.0, gf_init=(2.0 if rep == "ip"
                                                                                               else 1.0) + 0.01 * seed,
                    gf_init_shared=1.0 + 0.01 * seed, gf_final=0.1, gf_final_shared=0.08, collapsed_layers=0,
                    epochs=5, seconds=60.0, step_seconds=0.02 * (step_ratio if rep == "ip" else 1.0) + 1e-4 * seed,
                    filter_density=(0.97 if rep == "ip" else 0.25) + 0.01 * seed,
                    participation_ratio=(0.6 if rep == "ip" else 0.3) + 0.01 * seed,
                    hessian_top1_init=5.0, hessian_top1_final=20.0, hessian_trace_init=50.0,
                    hessian_trace_final=200.0))
    return pd.DataFrame(rows)


def make_sweep(adv_low=0.0, adv_high=0.06, noise=0.003, methods=("random", "snip"),
               sparsities=(0.9, 0.95, 0.98, 0.99), gap_ip_shift=-0.02, ip_wobble=0.0005):
    frames = []
    for k, s in enumerate(sparsities):
        shift = adv_low + (adv_high - adv_low) * k / (len(sparsities) - 1)
        # seed 0's IP wobble grows with sparsity, so the per-seed change of the advantage has a spread
        df = make_runs(ip_shift=shift, noise=noise, methods=methods, sparsity=s, experiment="sweep",
                       gap_ip_shift=gap_ip_shift, ip_wobble=ip_wobble * k)
        df["test_acc"] -= 0.1 * k
        df["train_acc"] = df["test_acc"] + df["gap_acc"]
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def make_history(methods=METHODS + ("gmp",), seeds=SEEDS, epochs=5):
    rows = []
    for method in methods:
        for seed in seeds:
            for rep in T.REPRS:
                for epoch in range(epochs + 1):
                    gf = (2.0 if rep == "ip" else 1.0) * math.exp(-0.5 * epoch) * (1 + 0.05 * seed)
                    rows.append(dict(method=method, repr=rep, seed=seed, epoch=epoch, lr=0.1,
                                     # measured sparsity of the epoch: GMP ramps up, the others sit just off the target
                                     sparsity=(0.0 if method == "dense" else
                                               HEADLINE * min(1, epoch / 3) if method == "gmp" else HEADLINE - 1e-5),
                                     train_loss=1 / (epoch + 1),
                                     train_acc=0.5 + 0.05 * epoch, test_loss=1.1 / (epoch + 1),
                                     test_acc=0.48 + 0.05 * epoch, gap_acc=0.02, gap_loss=0.1, gf=gf,
                                     gf_shared=gf * (0.6 if rep == "ip" else 1.0),
                                     gf_fb=gf * 0.4 if rep == "ip" else 0.0))
    return pd.DataFrame(rows)


def make_trainability(methods=("random", "snip"), seeds=(0, 1)):
    hess, dens, gfl = [], [], []
    grid = np.linspace(-2, 30, 60)
    for method in methods:
        for seed in seeds:
            for rep in T.REPRS:
                for when, scale in (("init", 1.0), ("final", 4.0)):
                    for rank in (1, 2, 3):
                        hess.append(dict(method=method, repr=rep, seed=seed, when=when, kind="eigenvalue", rank=rank,
                                         value=scale * (10 - 2 * rank) * (0.8 if rep == "ip" else 1.0)))
                    hess.append(dict(method=method, repr=rep, seed=seed, when=when, kind="trace", rank=np.nan,
                                     value=scale * 40 * (0.9 if rep == "ip" else 1.0)))
                    centre = scale * (0.7 if rep == "ip" else 1.0)
                    d = np.exp(-0.5 * ((grid - centre) / 1.5) ** 2) + 1e-4
                    dens += [dict(method=method, repr=rep, seed=seed, when=when, grid=g, density=v)
                             for g, v in zip(grid, d)]
                    for i, layer in enumerate(LAYERS):
                        gfl.append(dict(method=method, repr=rep, seed=seed, when=when, layer=layer,
                                        gf=(1.5 if rep == "ip" else 1.0) * 10.0 ** (-i / 2)))
    return pd.DataFrame(hess), pd.DataFrame(dens), pd.DataFrame(gfl)


def make_filters(methods=("random", "snip"), seeds=(0, 1)):
    rng = np.random.default_rng(0)
    filt, dens = [], []
    for method in methods:
        for seed in seeds:
            for rep in T.REPRS:
                for o in range(4):
                    keep = rng.choice(9, size=2, replace=False)
                    for idx in range(9):
                        value = rng.normal() if (rep == "ip" or idx in keep) else 0.0
                        filt.append(dict(method=method, repr=rep, seed=seed, layer="layer1.0.conv1", out_channel=o,
                                         in_channel=0, row=idx // 3, col=idx % 3, value=value))
                for i, layer in enumerate(LAYERS[:-1]):
                    dens.append(dict(method=method, repr=rep, seed=seed, layer=layer,
                                     density=(0.95 if rep == "ip" else 0.2) + 0.01 * i))
    return pd.DataFrame(filt), pd.DataFrame(dens)


def make_theorem1(all_pass=True, methods=("random", "snip"), sparsities=(0.9, 0.98)):
    """(checks, one_step, gf_masks) as the theorem1 stage writes them."""
    checks, steps, gf_masks = [], [], []
    etas = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    for method in methods:
        for s in sparsities:
            gf_sp, gf_ip = 1.0 + s, 1.6 + s
            gf_masks.append(dict(method=method, sparsity=s, seed=0, gf_sp=gf_sp, gf_ip=gf_ip))
            checks += [dict(check="a_grad_equality", method=method, sparsity=s, seed=0, value=1e-12, reference=0.0,
                            passed=True, detail=""),
                       dict(check="b_gf", method=method, sparsity=s, seed=0, value=gf_ip, reference=gf_sp,
                            passed=True, detail=""),
                       dict(check="fd_grad_F", method=method, sparsity=s, seed=0, value=1e-7, reference=0.0,
                            passed=True, detail="")]
            for eta in etas:
                steps.append(dict(method=method, sparsity=s, seed=0, eta=eta, loss_sp=2.3 - eta * gf_sp + 0.5 * eta ** 2,
                                  loss_ip=2.3 - eta * gf_ip + 2.0 * eta ** 2, pred_sp=2.3 - eta * gf_sp,
                                  pred_ip=2.3 - eta * gf_ip))
    checks.append(dict(check="d_expressivity", method="random", sparsity=0.9, seed=0, value=1.0, reference=1.0,
                       passed=all_pass, detail=""))
    return pd.DataFrame(checks), pd.DataFrame(steps), pd.DataFrame(gf_masks)


def make_ablation():
    frames = []
    for variant in ("fb_init=spatial", "fb_init=dct", "fb_init=random_orthogonal", "share=layer", "share=network",
                    "fair_budget"):
        df = make_runs(ip_shift=0.03, methods=("snip",), drop={("snip", "sp")})
        df["variant"] = variant
        frames.append(df)
    sp = make_runs(methods=("snip",), drop={("snip", "ip")})
    sp["variant"] = "sp"
    frames.append(sp)
    dense = make_runs(methods=("dense",))       # the aggregate stage adds the dense runs as 'dense-<repr>'
    dense["variant"] = "dense-" + dense["repr"]
    frames.append(dense)
    return pd.concat(frames, ignore_index=True)


COSTS = pd.DataFrame([dict(model="resnet32", width=16, dense_params=464154, fb_overhead_params=2511,
                           fb_overhead_percent=100 * 2511 / 464154),
                      dict(model="resnet50", width=64, dense_params=25557032, fb_overhead_params=1296,
                           fb_overhead_percent=100 * 1296 / 25557032)])

META = {"dataset": "fashion_mnist", "model": "resnet20", "width": 8, "epochs": 5, "seeds": list(SEEDS),
        "train_subset": 4000, "sparsity": HEADLINE, "hardware": {"cpu": "test cpu", "cores": 2},
        "wall_time_seconds": 3723.0, "torch_version": "2.x",
        "params": {"interspace": {"fb_init": "spatial", "share": "layer"}, "model": {"name": "resnet20"}}}


def make_controls(seeds=(0, 1, 2)) -> pd.DataFrame:
    """Both controls for snip (and the shuffle one for synflow): SP and IP, three seeds."""
    rows = []
    for s in seeds:
        w = 0.002 * (s - 1)
        for method in ("snip", "synflow"):
            for repr_, gain in (("sp", 0.0), ("ip", 0.03)):
                for shuffled in (False, True):
                    rows.append({"control": "shuffle", "method": method, "repr": repr_, "seed": s, "sparsity": HEADLINE,
                                 "shuffled": shuffled, "test_acc": 0.8 + gain - 0.01 * shuffled + w})
        for repr_, gain in (("sp", 0.0), ("ip", 0.02)):
            for scale, d in ((0.5, -0.01), (1.0, 0.0), (2.0, -0.02)):
                rows.append({"control": "lr", "method": "snip", "repr": repr_, "seed": s, "sparsity": HEADLINE,
                             "shuffled": False, "lr_scale": scale, "val_acc": 0.8 + gain + d + w,
                             "test_acc": 0.8 + gain + d + 2 * w, "val_samples": 5000})
    return pd.DataFrame(rows)


def make_axis(ip_shift=0.04, eq_shift=0.02, growth=0.0, noise=0.004, ip_wobble=0.0005, seeds=SEEDS, head=1,
              methods=("snip",), published=("rigl", "gmp"), published_factor=4, dense_factors=(12,),
              factors=(1, 4, 12), steps_per_epoch=468):
    """The training-length table as the aggregate stage writes it: ``methods`` at every length (``factors`` ×
    ``head`` epochs, the first the headline's runs), ``published`` at the headline's length and at
    ``published_factor`` × ``head``, dense at the headline's length and at ``dense_factors`` × ``head``.  IP and
    IP_eq lead SP by ``ip_shift`` and ``eq_shift`` plus ``growth`` per epoch beyond the headline's; seed 0's IP
    (seed 1's IP_eq) wobbles by ``ip_wobble`` times the length's rank + 1, so the differences and their change
    with the length have a spread."""
    plan = [(m, f) for m in methods for f in factors] + [(m, f) for m in published for f in (1, published_factor)] \
        + [("dense", f) for f in (1, *dense_factors)]
    ranks = {f: i for i, f in enumerate(sorted({f for _, f in plan}))}
    frames = []
    for method, factor in plan:
        epochs, wobble = head * factor, ip_wobble * (ranks[factor] + 1)
        extra = growth * (epochs - head)
        df = make_runs(ip_shift=ip_shift + extra, noise=noise, methods=(method,), seeds=seeds, ip_wobble=wobble,
                       experiment="axis")
        if method != "dense":
            eq = df[df["repr"] == "sp"].assign(repr=T.EQUAL_STORAGE)
            eq["test_acc"] += eq_shift + extra + wobble * (eq["seed"] == 1)
            df = pd.concat([df, eq], ignore_index=True)
        df["test_acc"] += 0.002 * factor          # longer training: higher accuracy
        df["epochs"], df["steps"] = epochs, steps_per_epoch * epochs
        updates = {"rigl": 17 if factor == 1 else 14, "gmp": 31 if factor == 1 else 25}
        df["mask_updates"] = updates.get(method, 0)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def make_tables(summary=None, sweep=None, checks_pass=True, meta=None, **overrides) -> T.Tables:
    hess, dens, gfl = make_trainability()
    filt, fd = make_filters()
    checks, steps, gf_masks = make_theorem1(checks_pass)
    frames = dict(summary=make_runs() if summary is None else summary,
                  sweep=make_sweep() if sweep is None else sweep, history=make_history(), hessian=hess, density=dens,
                  gf_layers=gfl, filters=filt, filter_density=fd, checks=checks, one_step=steps, gf_masks=gf_masks,
                  ablation=make_ablation(), costs_reference=COSTS, controls=make_controls(),
                  axis=make_axis(head=META["epochs"]))
    frames.update(overrides)
    return T.Tables.from_frames(meta=META if meta is None else meta, **frames)


def claim(tables, cid):
    return V.CLAIM_FUNCTIONS[cid](Evidence.from_tables(tables))


# --------------------------------------------------------------------------- the rule

def test_combine():
    assert S.combine([S.SUPPORTED, S.SUPPORTED]) == S.SUPPORTED
    assert S.combine([S.SUPPORTED, S.INCONCLUSIVE]) == S.INCONCLUSIVE
    assert S.combine([S.SUPPORTED, S.NOT_SUPPORTED, S.INCONCLUSIVE]) == S.NOT_SUPPORTED
    assert S.combine([S.SUPPORTED, S.NOT_TESTED]) == S.INCONCLUSIVE
    assert S.combine([]) == S.NOT_TESTED


# --------------------------------------------------------------------------- tables

def test_missing_files_give_empty_frames_with_schema(tmp_path):
    t = T.load_tables(tmp_path)
    for name, (_, columns) in T.SCHEMAS.items():
        frame = getattr(t, name)
        assert frame.empty and list(frame.columns)[:len(columns)] == columns
        assert t.present[name] is False


def test_loader_adds_missing_columns_and_reads_booleans(tmp_path):
    (tmp_path / "theorem1").mkdir()
    pd.DataFrame({"check": ["b_gf", "b_gf"], "passed": ["True", "false"]}).to_csv(
        tmp_path / "theorem1" / "checks.csv", index=False)
    checks = T.load_table(tmp_path, "checks")
    assert list(checks["passed"]) == [True, False]
    assert checks["value"].isna().all() and "reference" in checks


def test_paired_difference_is_ip_minus_sp_and_never_pairs_a_missing_run():
    runs = make_runs(ip_shift=0.05, drop={("snip", "ip")})
    pairs = T.paired(T.at_sparsity(runs, HEADLINE), "test_acc")
    assert "snip" not in set(pairs["method"])
    random = pairs[pairs["method"] == "random"].sort_values("seed")
    expected = [0.05 + 0.0005, 0.05, 0.05]
    assert random["diff"].to_numpy() == pytest.approx(expected)
    assert (random["test_acc_ip"] - random["test_acc_sp"]).to_numpy() == pytest.approx(expected)
    # dense runs (sparsity 0) pair too
    assert set(pairs["method"]) == {"dense", "random", "lt"}
    dup = pd.concat([runs, runs.iloc[:1]])
    with pytest.raises(ValueError):
        T.paired(dup, "test_acc")


# --------------------------------------------------------------------------- verdicts follow the data

@pytest.mark.parametrize("shift, wobble, expected", [(0.05, 0.0005, S.SUPPORTED), (-0.05, 0.0005, S.NOT_SUPPORTED),
                                                     (0.001, 0.02, S.INCONCLUSIVE)])
def test_c1_and_c8_flip_with_the_data(shift, wobble, expected):
    t = make_tables(summary=make_runs(ip_shift=shift, ip_wobble=wobble))
    c1 = claim(t, "C1")
    assert c1.verdict == expected
    assert {p.label for p in c1.parts} == {"random", "snip", "lt"}     # dense is not a pruning method
    assert all(p.verdict == expected for p in c1.parts)
    assert claim(t, "C8").verdict == expected


def test_c1_one_method_sp_better_makes_it_not_supported():
    runs = make_runs(ip_shift=0.05)
    snip_ip = (runs["method"] == "snip") & (runs["repr"] == "ip")
    runs.loc[snip_ip, "test_acc"] -= 0.1
    result = claim(make_tables(summary=runs), "C1")
    assert result.verdict == S.NOT_SUPPORTED
    assert {p.label: p.verdict for p in result.parts} == {"random": S.SUPPORTED, "snip": S.NOT_SUPPORTED,
                                                          "lt": S.SUPPORTED}


def test_c1_missing_ip_run_is_reported_missing_not_zero():
    t = make_tables(summary=make_runs(ip_shift=0.05, drop={("snip", "ip")}))
    result = claim(t, "C1")
    snip = [p for p in result.parts if p.label == "snip"][0]
    assert snip.verdict == S.NOT_TESTED and "IP missing" in snip.note
    assert result.verdict == S.INCONCLUSIVE       # cannot claim "every method" with one missing
    table = T.accuracy_table(t.summary)
    row = table[table["method"] == "snip"].iloc[0]
    assert row["ip_n"] == 0 and math.isnan(row["ip_mean"])
    text = A.headline_table(Evidence.from_tables(t))
    snip_line = [line for line in text.splitlines() if line.startswith("| snip |")][0]
    assert snip_line.split("|")[3].strip() == "missing"


@pytest.mark.parametrize("adv_low, adv_high, wobble, expected", [(0.0, 0.06, 0.0005, S.SUPPORTED),
                                                                 (0.06, 0.0, 0.0005, S.NOT_SUPPORTED),
                                                                 (0.03, 0.035, 0.01, S.INCONCLUSIVE)])
def test_c2_flips_with_the_trend(adv_low, adv_high, wobble, expected):
    result = claim(make_tables(sweep=make_sweep(adv_low, adv_high, ip_wobble=wobble)), "C2")
    assert result.verdict == expected
    # seed 0's wobble at the highest of 4 sparsities is 3 × wobble, averaged over 3 seeds
    assert result.numbers["random.adv_high_mean"] == pytest.approx(adv_high + wobble)
    assert result.numbers["random.sparsity_high"] == 0.99 and result.numbers["random.sparsity_low"] == 0.9


def test_c2_reads_both_ends_over_the_same_seeds():
    """The headline sparsity has more seeds than the sweep: the advantages C2 prints at the two ends, and
    their change, are over the seeds that have both ends (a seed only at one end would shift its mean)."""
    sweep = make_sweep(0.0, 0.06, ip_wobble=0.0)
    extra = make_runs(ip_shift=0.5, noise=0.003, methods=("random", "snip"), sparsity=0.99, experiment="sweep",
                      seeds=(7,))
    result = claim(make_tables(sweep=pd.concat([sweep, extra], ignore_index=True)), "C2")
    assert result.numbers["random.adv_high_mean"] == pytest.approx(0.06)
    assert result.numbers["random.change_mean"] == pytest.approx(0.06)
    random = [p for p in result.parts if p.label == "random"][0]
    assert random.comparison.a.n == random.comparison.b.n == random.comparison.diff.n == len(SEEDS)


def test_c3_not_tested_with_one_dataset_and_tested_with_two():
    assert claim(make_tables(), "C3").verdict == S.NOT_TESTED
    easy = make_runs(ip_shift=0.01, noise=0.002)
    easy["dataset"] = "cifar10"
    hard = make_runs(ip_shift=0.06, noise=0.002)
    hard["test_acc"] -= 0.3
    hard["dataset"] = "imagenet"
    result = claim(make_tables(summary=pd.concat([easy, hard], ignore_index=True)), "C3")
    assert result.verdict == S.SUPPORTED and "imagenet" in result.explanation


def test_c4_runtime_and_paper_overhead():
    result = claim(make_tables(summary=make_runs(step_ratio=1.03)), "C4")
    runtime = [p for p in result.parts if p.label == "runtime IP/SP"][0]
    assert runtime.verdict == S.SUPPORTED
    assert runtime.numbers["step_ratio_median"] == pytest.approx(1.03, abs=0.01)
    by_label = {p.label.split(" ")[0]: p.verdict for p in result.parts}
    assert by_label["resnet32"] == S.NOT_SUPPORTED and by_label["resnet50"] == S.SUPPORTED
    assert result.verdict == S.NOT_SUPPORTED
    slow = claim(make_tables(summary=make_runs(step_ratio=1.5),
                             costs_reference=COSTS[COSTS["model"] == "resnet50"]), "C4")
    assert [p.verdict for p in slow.parts] == [S.NOT_SUPPORTED, S.SUPPORTED]
    fast = claim(make_tables(costs_reference=COSTS[COSTS["model"] == "resnet50"]), "C4")
    assert fast.verdict == S.SUPPORTED


def test_c5_c6_c7_follow_the_data():
    t = make_tables()
    assert claim(t, "C5").verdict == S.SUPPORTED
    c6 = claim(t, "C6")
    assert c6.verdict == S.SUPPORTED
    # the history's per-epoch measured sparsity (GMP ramp, off-target by 1e-5) must not drop any run
    assert {p.label for p in c6.parts if p.label.endswith(" GF")} == {f"{m} GF" for m in
                                                                      ("random", "snip", "lt", "gmp")}
    random_train = [p for p in c6.parts if p.label == "random GF"][0]
    assert random_train.comparison.a.n == 3 and random_train.comparison.b.n == 3
    assert claim(t, "C7").verdict == S.SUPPORTED
    runs = make_runs()
    # C5 is decided by the participation ratio: IP filters that are non-zero everywhere but carry
    # their energy in fewer entries than SP's go against the claim
    runs["participation_ratio"] = np.where(runs["repr"] == "ip", 0.2, 0.4) + 0.01 * runs["seed"]
    c5 = claim(make_tables(summary=runs), "C5")
    assert c5.verdict == S.NOT_SUPPORTED and "non-zero filter entries" in c5.explanation
    runs["train_loss"] = np.where(runs["repr"] == "ip", 0.5, 0.3) + 0.01 * runs["seed"]   # IP trains worse
    c6 = claim(make_tables(summary=runs), "C6")
    assert c6.verdict == S.NOT_SUPPORTED
    assert {p.verdict for p in c6.parts if p.label.endswith(" loss")} == {S.NOT_SUPPORTED}
    # GF at initialisation is Theorem 1's identity (C9), no part of C6: lowering it changes nothing
    runs = make_runs()
    runs["gf_init"] = np.where(runs["repr"] == "ip", 0.5, 1.0) + 0.01 * runs["seed"]
    assert claim(make_tables(summary=runs), "C6").verdict == claim(make_tables(), "C6").verdict
    assert claim(make_tables(sweep=make_sweep(gap_ip_shift=+0.03)), "C7").verdict == S.NOT_SUPPORTED


def test_c6_says_what_its_mean_over_training_averages():
    """GF is logged at each epoch's end: five epochs give a mean of five, one epoch the value at the end."""
    assert "(5 epoch ends)" in claim(make_tables(), "C6").summary
    one = make_history(epochs=1)
    assert "one epoch here" in claim(make_tables(history=one), "C6").summary
    assert "one epoch here" in claim(make_tables(history=one[one["epoch"] == 1]), "C6").summary


def test_c9_checks_and_one_step_range():
    assert claim(make_tables(), "C9").verdict == S.SUPPORTED
    failed = claim(make_tables(checks_pass=False), "C9")
    assert failed.verdict == S.NOT_SUPPORTED and "d_expressivity: 0/1 passed" in failed.explanation
    ranges = C.one_step_ranges(make_theorem1()[1])
    # L_IP <= L_SP  <=>  eta (gf_ip - gf_sp) >= 1.5 eta^2  <=>  eta <= 0.4: holds at 1e-4..1e-1, fails at 1
    assert (ranges["holds_up_to"] == 0.1).all() and (ranges["n_holds"] == 4).all()
    assert claim(make_tables(checks=make_theorem1()[0].iloc[0:0]), "C9").verdict == S.NOT_TESTED


def test_everything_missing_gives_not_tested():
    empty = T.Tables()
    for result in V.all_verdicts(Evidence.from_tables(empty)):
        assert result.verdict == S.NOT_TESTED, result.claim_id


# --------------------------------------------------------------------------- figures

FIGURE_CALLS = {
    "accuracy": lambda t, p: Fg.fig_accuracy(t.summary, p, HEADLINE),
    "sweep": lambda t, p: Fg.fig_sweep(t.sweep, p, t.summary),
    "filters": lambda t, p: Fg.fig_filters(t.filters, t.filter_density, p, t.summary, sparsity=HEADLINE),
    "gradient_flow": lambda t, p: Fg.fig_gradient_flow(t.history, t.gf_layers, p),
    "hessian": lambda t, p: Fg.fig_hessian(t.hessian, t.density, p),
    "generalisation": lambda t, p: Fg.fig_generalisation(t.sweep, p),
    "theorem1": lambda t, p: Fg.fig_theorem1(t.checks, t.one_step, p, gf_masks=t.gf_masks),
    "ablation": lambda t, p: Fg.fig_ablation(t.ablation, t.summary, p),
    "costs": lambda t, p: Fg.fig_costs(t.summary, t.costs_reference, p, HEADLINE),
    "shuffle": lambda t, p: Fg.fig_shuffle(t.controls, p),
    "lr": lambda t, p: Fg.fig_lr(t.controls, p),
    "axis": lambda t, p: Fg.fig_axis(t.axis, p, t.meta, HEADLINE),
    "storage": lambda t, p: Fg.fig_storage(t.sweep, t.summary, p),
}


def test_every_figure_function_survives_empty_tables(tmp_path):
    t = T.Tables()
    assert set(FIGURE_CALLS) == set(Fg.FIGURES)
    for name, call in FIGURE_CALLS.items():
        drawn = call(t, tmp_path / name)
        png, pdf = drawn.paths
        assert png.suffix == ".png" and png.stat().st_size > 2000, name
        assert pdf.suffix == ".pdf" and pdf.stat().st_size > 1000, name
        texts = [x.get_text() for fig_or_sub in [drawn.figure, *drawn.figure.subfigs]
                 for ax in fig_or_sub.axes for x in ax.texts]
        assert any(s.startswith("no data") for s in texts), name


def test_accuracy_figure_does_not_draw_a_missing_run_as_zero(tmp_path):
    runs = make_runs(drop={("snip", "ip")})
    drawn = Fg.fig_accuracy(runs, tmp_path / "acc", HEADLINE, chance=0.1)
    ax = drawn.figure.axes[0]                 # the absolute accuracies: one row per method, x = accuracy
    methods = T.ordered_methods(runs["method"].unique())
    snip_row = -methods.index("snip")
    ip_points = [c.get_offsets() for c in ax.collections if isinstance(c, matplotlib.collections.PathCollection)
                 and np.allclose(c.get_facecolor()[0][:3], matplotlib.colors.to_rgb(COLORS["ip"]))]
    ip_rows = np.concatenate(ip_points)[:, 1]
    assert not np.any(np.abs(ip_rows - snip_row) < 0.4)     # no IP point in the snip row
    points = np.concatenate([c.get_offsets() for c in ax.collections
                             if isinstance(c, matplotlib.collections.PathCollection)])
    assert min(points[:, 0]) > 50          # no point at zero anywhere
    assert "IP missing" in [x.get_text() for x in ax.texts]


def test_entry_points_draw_every_figure_and_the_report_from_a_results_folder(tmp_path):
    """Synthetic tables written as CSV -> every figure function (through draw_all) and the report."""
    results = tmp_path / "results"
    t = make_tables()
    for name, (rel, _) in T.SCHEMAS.items():
        path = results / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        getattr(t, name).to_csv(path, index=False)
    (results / "meta.json").write_text(json.dumps(META))
    out = tmp_path / "paper"
    figs = out / R.FIGURE_DIR
    assert Fg.main(["--results", str(results), "--out", str(figs)]) == 0
    for stem in Fg.FIGURES.values():
        assert (figs / f"{stem}.png").stat().st_size > 20000, stem
        assert (figs / f"{stem}.pdf").stat().st_size > 5000, stem
    assert R.main(["--results", str(results), "--out", str(out), "--presets", str(tmp_path / "none")]) == 0
    text = (out / "REPORT.md").read_text()
    assert "![C1 evidence: fig1_accuracy](figures/fig1_accuracy.png)" in text
    reloaded = T.load_tables(results)
    verdicts = [[r.verdict for r in V.all_verdicts(Evidence.from_tables(x))] for x in (reloaded, t)]
    assert verdicts[0] == verdicts[1]


# --------------------------------------------------------------------------- report

def test_report_has_every_claim_with_a_verdict(tmp_path):
    text = R.build_report(make_tables(), tmp_path)
    claim_rows = [line for line in text.splitlines() if re.match(r"\| C\d \|", line)]
    assert [row.split("|")[1].strip() for row in claim_rows] == [f"C{i}" for i in range(1, 10)]
    for row in claim_rows:
        assert any(f"**{v}**" in row for v in S.VERDICTS), row
    for i in range(1, 10):
        assert re.search(rf"^## C{i}: .*\n\n\*\*Verdict: ({'|'.join(S.VERDICTS)})\.\*\*", text, re.M)
    assert "arXiv:2203.07808" in text and "cp presets/<name>.yaml params.yaml && dvc repro" in text
    assert "1 h 02 min" in text                     # wall time 3723 s from meta.json
    assert "interspace.fb_init`): spatial" in text
    assert "| training set | a fixed subset of 4000 images |" in text
    meta = {**META, "params": {**META["params"], "sweep": {"seeds": [0, 1]}, "ablation": {"seeds": list(SEEDS)}}}
    other = R.build_report(make_tables(meta=meta), tmp_path)
    assert "| seeds of the sweep | 0, 1 |" in other and "seeds of the ablation" not in other   # same as main: no row
    assert "Hessian spectra" not in other and "mask-shuffle control" not in other   # not in the snapshot: no row
    meta = {**META, "params": {**META["params"], "trainability": {"hessian_methods": ["dense", "snip"],
                                                                  "hessian_reprs": None, "seeds": [0]},
                               "controls": {"shuffle": {"methods": ["snip"]}, "lr": {"methods": []}}}}
    subset = R.build_report(make_tables(meta=meta), tmp_path)
    assert re.search(r"\| Hessian spectra \(to save time: [^|]*\| dense, snip × every representation × 0 \|", subset)
    assert "| mask-shuffle control, methods | snip |" in subset
    assert "| learning-rate control, methods | none (not run) |" in subset


def test_report_says_a_null_subset_is_the_full_split(tmp_path):
    """``data.train_subset: null`` (the default) trains on the whole split: the setting table says so."""
    meta = {**META, "params": {**META["params"], "data": {"train_subset": None, "test_subset": None}}}
    meta.pop("train_subset")
    text = R.build_report(make_tables(meta=meta), tmp_path)
    assert "| training set | the full split |" in text and "| test set | the full split |" in text
    assert "(`data.train_subset`): null" in text
    bare = {k: v for k, v in meta.items() if k != "params"}       # no params snapshot: unknown, not "full"
    assert "| training set | missing |" in R.build_report(make_tables(meta=bare), tmp_path)


def top_table(text: str) -> list[list[str]]:
    """The cells of the report's opening table (the first table, below the answer), header and rule left out."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(A.TABLE_HEADER))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("| "):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_report_accuracy_table_numbers_are_the_data_means(tmp_path):
    runs = make_runs(ip_shift=0.037, noise=0.0061)
    text = R.build_report(make_tables(summary=runs), tmp_path)
    rows = top_table(text)
    assert [r[0] for r in rows] == [m for m in METHODS if m != "dense"]     # C1's parts: the sparse methods
    for method, sp_cell, ip_cell, diff_cell, stored_cell in rows:
        for rep, cell in (("sp", sp_cell), ("ip", ip_cell)):
            vals = runs.loc[(runs["method"] == method) & (runs["repr"] == rep), "test_acc"]
            m = re.fullmatch(r"([\d.]+) ± ([\d.]+)", cell)          # n is said only where it is not every seed
            assert m, cell
            assert float(m.group(1)) == pytest.approx(100 * vals.mean(), abs=0.005)
            assert float(m.group(2)) == pytest.approx(100 * vals.std(ddof=1), abs=0.005)
        diff = T.paired(runs[runs["method"] == method], "test_acc")["diff"]
        low, high = scipy_stats.t.interval(0.95, len(diff) - 1, loc=diff.mean(),
                                           scale=diff.std(ddof=1) / len(diff) ** 0.5)
        assert diff_cell == f"{100 * diff.mean():+.2f} [{100 * low:+.2f}, {100 * high:+.2f}] supported"
        stored = runs[runs["method"] == method].groupby("repr")["stored_params"].mean()
        assert stored_cell == f"{stored['sp']:,.0f} / {stored['ip']:,.0f}"
    # the table's numbers are not repeated in the claims table; C1's section (appendix) gives each part's
    c1_row = [line for line in text.splitlines() if line.startswith("| C1 |")][0]
    random_diff = 100 * T.paired(runs[runs["method"] == "random"], "test_acc")["diff"].mean()
    assert f"{random_diff:+.2f}" not in c1_row
    c1 = text.split("## C1: ")[1].split("\n## ")[0]
    assert f"paired IP−SP {random_diff:+.2f} pp [95 % CI" in c1
    dense = runs[(runs["method"] == "dense") & (runs["repr"] == "sp")]["test_acc"].mean()
    assert f"dense test accuracy {100 * dense:.2f} %" in text.splitlines()[2]       # the regime line


def test_report_numbers_change_with_the_data(tmp_path):
    """No number is fixed in the text: two data sets give different numbers in the claims and accuracy parts."""
    a = R.build_report(make_tables(summary=make_runs(ip_shift=0.05)), tmp_path)
    b = R.build_report(make_tables(summary=make_runs(ip_shift=0.02)), tmp_path)
    ip_cells = lambda txt: [row[2] for row in top_table(txt)]  # noqa: E731
    assert all(x != y for x, y in zip(ip_cells(a), ip_cells(b)))


def test_report_on_empty_results_says_missing(tmp_path):
    text = R.build_report(T.Tables(), tmp_path)
    claim_rows = [line for line in text.splitlines() if re.match(r"\| C\d \|", line)]
    assert len(claim_rows) == 9 and all("| **not tested here**" in row for row in claim_rows)
    assert "missing" in text and "nan" not in text.lower().replace("financ", "")


def test_report_says_why_an_ablation_variant_is_missing(tmp_path):
    t = make_tables()
    reason = "sparsity 0.98 leaves 1357 entries, fewer than the 1539 filter-basis entries"
    extra = pd.DataFrame([{"experiment": "ablation", "variant": "fair_budget", "method": "snip", "repr": "ip",
                           "seed": s, "sparsity": 0.98, "infeasible": reason} for s in (0, 1)])
    t.ablation = pd.concat([t.ablation[t.ablation["variant"] != "fair_budget"], extra], ignore_index=True)
    line = next(row for row in R.build_report(t, tmp_path).splitlines() if "| fair_budget |" in row)
    assert f"infeasible: {reason}" in line and "| missing |" in line


def test_gf_scatter_takes_the_stages_verdict_not_a_raw_comparison():
    # a disconnected net: GF_IP equals GF_SP up to round-off, which the theorem1 stage counts as passed
    gf_masks = pd.DataFrame({"method": ["snip", "snip"], "sparsity": [0.995, 0.9], "seed": [0, 0],
                             "gf_ip": [0.0078428525035197, 1.0], "gf_sp": [0.0078428525035198, 2.0]})
    checks = pd.DataFrame({"check": ["gradient_flow", "gradient_flow"], "method": ["snip", "snip"],
                           "sparsity": [0.995, 0.9], "seed": [0, 0], "passed": [True, False]})
    assert _gf_points(checks, gf_masks).set_index("sparsity")["passed"].to_dict() == {0.995: True, 0.9: False}
    # without the stage's checks: the same round-off tolerance
    fallback = _gf_points(pd.DataFrame(), gf_masks).set_index("sparsity")["passed"].to_dict()
    assert fallback == {0.995: True, 0.9: False}


# --------------------------------------------------------------------------- gf_rewind, ip_eq, disconnected, share

def test_c6_has_no_at_init_part_and_keeps_a_method_that_starts_at_its_rewind_point():
    runs = make_runs()
    lt = runs["method"] == "lt"
    runs.loc[lt, "gf_rewind"] = runs.loc[lt, "gf_init"]
    runs.loc[lt, "gf_init"] = np.nan
    result = claim(make_tables(summary=runs), "C6")
    labels = {p.label for p in result.parts}
    assert "lt GF" in labels and "lt loss" in labels and not any("init" in label for label in labels)
    assert "checked in C9" in result.summary
    assert list(T.starts_at_rewind(T.normalise_table("summary", runs)).groupby(runs["method"]).any().items()) == \
        [("dense", False), ("lt", True), ("random", False), ("snip", False)]


def equal_storage_runs(eq_shift=0.03):
    runs = make_runs()
    eq = runs[runs["repr"] == "ip"].assign(repr=T.EQUAL_STORAGE)
    eq["test_acc"] = eq["test_acc"] - 0.05 + eq_shift
    eq["stored_params"] = runs.loc[runs["repr"] == "sp", "stored_params"].to_numpy()
    return pd.concat([runs, eq], ignore_index=True)


def test_equal_storage_is_a_second_set_of_parts_in_c1_and_c4(tmp_path):
    t = make_tables(summary=equal_storage_runs(eq_shift=-0.03))
    c1 = claim(t, "C1")
    groups = list(c1.group_verdicts)
    assert len(groups) == 2 and "paper's accounting" in groups[0] and "equal storage" in groups[1]
    assert c1.group_verdicts[groups[0]] == S.SUPPORTED and c1.group_verdicts[groups[1]] == S.NOT_SUPPORTED
    assert c1.verdict == S.NOT_SUPPORTED and len(c1.parts) == 6        # 3 methods × 2 accountings
    assert {p.comparison.decision.holm_m for p in c1.parts} == {3}     # one family per accounting
    c4 = claim(t, "C4")
    assert {p.label for p in c4.parts if p.group.startswith("runtime")} == {"runtime IP/SP", "runtime IP_eq/SP"}
    assert c4.group_verdicts["parameters, equal storage: IP_eq stores ≤ SP"] == S.SUPPORTED
    text = R.build_report(t, tmp_path)
    header = next(line for line in text.splitlines() if line.startswith("| method | SP | IP |"))
    assert header.startswith("| method | SP | IP | IP−SP | IP_eq | IP_eq−SP |")
    plain = R.build_report(make_tables(), tmp_path)
    assert "- **Equal storage** (IP_eq vs SP: FB entries charged to IP's budget): not run (no IP_eq runs)." in plain
    assert "IP_eq vs SP (equal storage): not run" in plain


def test_c1_overall_takes_holm_over_the_parts_of_both_accountings():
    """One IP_eq part below SP at t = 9 with 3 pairs: Holm over its accounting's 3 parts (98.33 %, t_crit 7.6)
    shows it below, so that accounting is not supported; over all 6 parts of the claim (99.17 %, t_crit 10.9) it
    is not shown, so the claim overall, "under every accounting", is inconclusive, not "not supported"."""
    a = 0.03 / 9 * math.sqrt(3)                          # sd of the strong part's differences: t = 9
    spread = {"random": (0.01, -0.01, 0.002), "snip": (0.012, -0.008, -0.003), "grasp": (-a, 0.0, a)}
    rows = []
    for method, wiggle in spread.items():
        for seed in SEEDS:
            sp = 0.8 + 0.01 * seed
            rows += [dict(method=method, repr="sp", seed=seed, sparsity=HEADLINE, test_acc=sp),
                     dict(method=method, repr="ip", seed=seed, sparsity=HEADLINE,
                          test_acc=sp + (0.003 - wiggle[seed] if method != "grasp" else 0.01 * (seed - 1))),
                     dict(method=method, repr=T.EQUAL_STORAGE, seed=seed, sparsity=HEADLINE,
                          test_acc=sp + (wiggle[seed] - 0.03 if method == "grasp" else wiggle[seed]))]
    ev = Evidence.from_tables(T.Tables.from_frames(meta={"sparsity": HEADLINE}, summary=pd.DataFrame(rows)))
    c1 = [r for r in V.all_verdicts(ev) if r.claim_id == "C1"][0]
    eq = [g for g in c1.group_verdicts if "equal storage" in g][0]
    assert c1.group_verdicts[eq] == S.NOT_SUPPORTED
    assert [p.verdict for p in c1.parts if p.label == "grasp (equal storage)"] == [S.NOT_SUPPORTED]
    assert c1.verdict == S.INCONCLUSIVE and "Holm over the 6 parts" in c1.summary


def test_c4_reads_a_costs_table_without_share_as_layer_and_names_the_failing_part():
    costs = pd.concat([COSTS.assign(share="layer"), COSTS.assign(share="network", fb_overhead_params=81,
                                                                 fb_overhead_percent=100 * 81 / COSTS["dense_params"])])
    result = claim(make_tables(costs_reference=costs), "C4")
    by_label = {p.label: p.verdict for p in result.parts}
    assert by_label["resnet32 (width 16), share=layer"] == S.NOT_SUPPORTED
    assert by_label["resnet32 (width 16), share=network"] == S.NOT_SUPPORTED
    assert by_label["resnet50 (width 64), share=network"] == S.SUPPORTED
    assert result.group_verdicts["runtime"] == S.SUPPORTED
    old = claim(make_tables(), "C4")          # COSTS has no share column
    assert {p.label for p in old.parts if "resnet" in p.label} == {"resnet32 (width 16), share=layer",
                                                                  "resnet50 (width 64), share=layer"}


def test_fig1_draws_a_disconnected_run_hollow_and_names_it(tmp_path):
    runs = make_runs()
    runs["disconnected"] = (runs["method"] == "snip") & (runs["repr"] == "ip") & (runs["seed"] == 2)
    drawn = Fg.fig_accuracy(runs, tmp_path / "acc", HEADLINE)
    ax = drawn.figure.axes[0]
    hollow = [c for c in ax.collections if isinstance(c, matplotlib.collections.PathCollection)
              and len(c.get_facecolors()) == 0]         # facecolors "none": an outline only
    assert len(hollow) == 1 and len(hollow[0].get_offsets()) == 1
    legend_texts = [x.get_text() for x in drawn.figure.legends[0].get_texts()]
    assert any(x.startswith("disconnected") for x in legend_texts)


def test_spectral_density_axis_shows_the_bulk_not_the_tails(tmp_path):
    hess, dens, _ = make_trainability()
    dens.loc[dens.index[::7], "density"] = 1e-300
    drawn = Fg.fig_hessian(hess, dens, tmp_path / "h")
    density_axes = [ax for ax in drawn.figure.axes if "spectral density" in ax.get_title()]
    low, high = density_axes[0].get_ylim()
    assert low == pytest.approx(high / 2 * 1e-6, rel=1e-6)


def test_the_spectral_density_summary_is_its_first_moment_and_lowest_reach():
    from analysis.claims.trainability import spectrum_summary
    grid = np.linspace(-4.0, 4.0, 801)
    two_bumps = np.exp(-(grid + 2.0) ** 2 / 0.02) + 3 * np.exp(-(grid - 1.0) ** 2 / 0.02)   # weights 1 : 3
    mean, lowest = spectrum_summary(grid, two_bumps)
    assert mean == pytest.approx((-2.0 + 3 * 1.0) / 4, abs=1e-3)
    assert -2.5 < lowest < -2.0          # where the left bump falls below 1e-3 of the peak


def test_an_interval_end_near_zero_keeps_the_digits_that_show_its_side():
    """A verdict turns on the side of 0 an interval's end lies on: +0.0013 pp prints as +0.001, not +0.00."""
    from analysis.formatting import Scale
    pp = Scale(100.0, " pp", 2)
    assert pp.interval((0.000013, 0.009)) == "[+0.001, +0.90]"
    assert pp.interval((-0.0000004, 0.0)) == "[-0.00004, +0.00]"
    assert pp.interval((0.012, 0.05)) == "[+1.20, +5.00]"
    assert Scale(1.0, "", 2, sci=True).interval((1e-5, 2e-5)) == "[1.00e-05, 2.00e-05]"


def test_the_headline_says_which_runs_lost_a_layer_and_which_are_disconnected():
    runs = make_runs()
    runs.loc[(runs["method"] == "snip") & (runs["repr"] == "sp") & (runs["seed"] == 1), "collapsed_layers"] = 2
    runs["disconnected"] = False
    runs.loc[(runs["method"] == "snip") & (runs["repr"] == "sp") & (runs["seed"] == 1), "disconnected"] = True
    note = A.collapse_note(Evidence.from_tables(make_tables(summary=runs)).headline.frame)
    assert "snip SP 1 of 3 runs (2 layers; 1 disconnected)" in note and "Disconnected runs" in note
    assert note.endswith(": 1.")
    assert "collapse (a prunable layer left with no kept entry): none." in A.collapse_note(make_runs())


def test_an_ablation_variant_under_two_names_is_one_member_of_the_holm_family():
    """The main setting is the reference of the FB-init and the FB-sharing groups: the same runs, one comparison."""
    from analysis.ablations import ablation_comparisons
    frames = []
    for variant, shift in (("fb_init=spatial", 0.03), ("share=layer", 0.03), ("fb_init=dct", 0.01),
                           ("share=network", -0.02)):
        df = make_runs(ip_shift=shift, methods=("snip",), drop={("snip", "sp")})
        frames.append(df.assign(variant=variant))
    frames.append(make_runs(methods=("snip",), drop={("snip", "ip")}).assign(variant="sp"))
    out = ablation_comparisons(pd.concat(frames, ignore_index=True), 0.05)
    assert len(out) == 4
    assert {c.decision.holm_m for c in out["comparison"]} == {3}
    same = out.set_index("variant")["comparison"]
    assert same["fb_init=spatial"].decision == same["share=layer"].decision
