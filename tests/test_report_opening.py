"""The report a reader gets at a glance: the answer in at most 8 lines above one table, the body before
the appendix within 150 lines on a study-like table set, every number of the table once in the body,
labels that say what a schedule or a grid edge explains, a verdict that names the one part it turns
on, the ablation's main-setting arms as references (never a second member of its Holm family), and
the sweep's collapsed layers reported like the headline's."""
from __future__ import annotations

import re
import types

import pandas as pd
import pytest
import torch

from analysis import answer as A
from analysis import report as R
from analysis import stats as S
from analysis import tables as T
from analysis import training_length as L
from analysis import verdicts as V
from analysis.ablations import REFERENCE, ablation_comparisons, main_arms
from analysis.claims.parts import Part, turns_on
from analysis.claims.schedules import schedules, squeezed
from analysis.evidence import Evidence
from test_analysis import make_axis, make_controls, make_runs, make_sweep, make_tables, top_table
from test_claims_extra import lr_table

SEEDS5 = (0, 1, 2, 3, 4)
SPARSE = ("random", "snip", "grasp", "synflow", "lt", "rigl", "gmp", "oneshot")
STEPS = 468

#: the default study's params snapshot, as meta.json has it (1 epoch of 468 steps, squeezed DST/GMP schedules)
PARAMS = {"interspace": {"fb_init": "spatial", "share": "layer"}, "model": {"name": "resnet20", "width": 16},
          "data": {"name": "fashion_mnist", "train_subset": None, "test_subset": None},
          "train": {"epochs": 1, "batch_size": 128},
          "prune": {"dst": {"interval": 20, "alpha": 0.3, "stop_fraction": 0.75},
                    "gmp": {"start_fraction": 0.1, "end_fraction": 0.75, "interval": 10},
                    "lt": {"rewind_step": 23}},
          "axis": {"epochs": [4, 12], "seeds": [0, 1, 2], "methods": ["snip"], "dense_epochs": [12],
                   "published": {"epochs": 4, "methods": ["rigl", "gmp"],
                                 "prune": {"rigl": {"interval": 100, "alpha": 0.3, "stop_fraction": 0.75},
                                           "gmp": {"start_fraction": 0.1, "end_fraction": 0.75, "interval": 50}}}},
          "sweep": {"seeds": [0, 1, 2]}, "ablation": {"seeds": [0, 1, 2]}}
META = {"dataset": "fashion_mnist", "model": "resnet20", "width": 16, "epochs": 1, "seeds": list(SEEDS5),
        "sparsity": 0.98, "hardware": {"cpu": "test cpu"}, "params": PARAMS}


def study_runs(rigl_eq=-0.05) -> pd.DataFrame:
    """Main runs as the study has them: dense and 8 sparse methods, SP, IP and IP_eq, 5 seeds, 468 steps; IP_eq
    of rigl ``rigl_eq`` below SP, of the others a little above; RigL and GMP with their recorded updates."""
    runs = make_runs(methods=("dense", *SPARSE), seeds=SEEDS5, ip_shift=0.03)
    rank = runs["method"].map({m: i for i, m in enumerate(SPARSE)}).fillna(0)
    runs.loc[runs["repr"] == "ip", "test_acc"] += 0.003 * rank      # each method its own advantage
    eq = runs[(runs["repr"] == "sp") & (runs["method"] != "dense")].assign(repr=T.EQUAL_STORAGE)
    eq["test_acc"] += [rigl_eq if m == "rigl" else 0.01 + 0.002 * SPARSE.index(m) + 0.004 * (s % 2)
                       for m, s in zip(eq["method"], eq["seed"])]
    runs = pd.concat([runs, eq], ignore_index=True)
    runs["steps"] = STEPS
    runs["mask_updates"] = runs["method"].map({"rigl": L.dst_updates(STEPS, 20, 0.75),
                                               "gmp": L.gmp_steps(STEPS, 10, 0.1, 0.75)})
    return runs


def study_ablation(summary: pd.DataFrame, variants=("fb_init=dct", "fb_init=random_orthogonal", "share=network",
                                                   "share=network,fair_budget")) -> pd.DataFrame:
    """The ablation table as the aggregate stage writes it: the variants' own runs, and the main runs of seeds
    0-2 under the names of the arms they are (SP, the main setting twice, fair_budget = IP_eq, dense)."""
    main = summary[summary["seed"].isin([0, 1, 2])]
    snip = main[main["method"] == "snip"]
    frames = [snip[snip["repr"] == "sp"].assign(variant="sp"),
              snip[snip["repr"] == "ip"].assign(variant="fb_init=spatial"),
              snip[snip["repr"] == "ip"].assign(variant="share=layer"),
              snip[snip["repr"] == T.EQUAL_STORAGE].assign(variant="fair_budget", repr="ip"),
              main[main["method"] == "dense"].assign(variant=lambda d: "dense-" + d["repr"])]
    for k, variant in enumerate(variants):
        own = snip[snip["repr"] == "ip"].assign(variant=variant)
        own["test_acc"] = own["test_acc"] + 0.002 * (k + 1) + 0.001 * own["seed"]
        own["train_loss"] = own["train_loss"] + 0.01
        frames.append(own)
    return pd.concat(frames, ignore_index=True).assign(experiment="ablation")


def study_sweep() -> pd.DataFrame:
    sweep = make_sweep(methods=("snip",), sparsities=(0.9, 0.95, 0.98, 0.99, 0.995))
    eq = sweep[sweep["repr"] == "sp"].assign(repr=T.EQUAL_STORAGE)
    eq["test_acc"] += 0.005
    sweep = pd.concat([sweep, eq], ignore_index=True)
    sweep["steps"] = STEPS
    at = lambda s, rep: (sweep["sparsity"] == s) & (sweep["repr"] == rep)  # noqa: E731
    sweep.loc[at(0.99, "sp") & (sweep["seed"] == 1), "collapsed_layers"] = 4
    sweep.loc[at(0.99, T.EQUAL_STORAGE), "collapsed_layers"] = sweep.loc[at(0.99, T.EQUAL_STORAGE), "seed"] + 6
    sweep.loc[at(0.995, "ip"), "collapsed_layers"] = 6
    return sweep


def study_tables(**overrides) -> T.Tables:
    summary = overrides.pop("summary", study_runs())
    controls = pd.concat([make_controls()[lambda d: d["control"] == "shuffle"],
                          lr_table({"sp": 4.0, "ip": 1.0})], ignore_index=True)
    frames = dict(summary=summary, sweep=study_sweep(), ablation=study_ablation(summary), controls=controls,
                  axis=make_axis(head=1))
    frames.update(overrides)
    return make_tables(meta=META, **frames)


def body_of(text: str) -> str:
    return text.split(R.APPENDIX_TITLE)[0]


# --------------------------------------------------------------------------- the opening and the body's length

def test_the_answer_takes_at_most_8_lines_above_the_one_table(tmp_path):
    text = R.build_report(study_tables(), tmp_path)
    lines = text.splitlines()
    table = next(i for i, line in enumerate(lines) if line.startswith("|"))
    assert lines[table].startswith(A.TABLE_HEADER) and table <= 8
    opening = lines[:table]
    regime = next(line for line in opening if line.startswith("- **Regime**"))
    dense = study_runs().query("method == 'dense' and repr == 'sp'")["test_acc"].mean()
    for words in ("fashion_mnist", "resnet20 (width 16)", f"1 epoch = {STEPS} steps per run",
                  f"dense test accuracy {100 * dense:.2f} %", "5 paired seeds (0–4)", "sparsity 0.98"):
        assert words in regime, words
    # each accounting as what its parts show, and the part C1's verdict there turns on
    sparsity_line = next(line for line in opening if line.startswith("- **Equal sparsity**"))
    assert "IP higher for every method (8 of 8)" in sparsity_line and "**supported**" in sparsity_line
    storage_line = next(line for line in opening if line.startswith("- **Equal storage**"))
    assert "IP_eq higher for 7 of 8 methods, lower for rigl† (after Holm)" in storage_line
    assert "C1 under this accounting: **not supported**, on rigl† alone." in storage_line
    # the caveats: the squeezed schedules with the numbers the rule gives, and the grid edge of K2
    caveats = next(line for line in opening if line.startswith("- **Caveats**"))
    assert f"rigl {L.dst_updates(STEPS, 20, 0.75)} mask updates, one every 20 steps" in caveats
    assert f"gmp {L.gmp_steps(STEPS, 10, 0.1, 0.75)} pruning steps, one every 10 steps" in caveats
    assert 'rigl, gmp with their schedules as published at 4 epochs: see "Training length"' in caveats
    assert "‡ a choice on an edge of its grid, not bracketed" in caveats
    assert "K2 snip‡: SP chose ×4, the top of the grid 0.25–4" in caveats and "snip†" not in caveats
    # the run's length is said once, in the regime line
    assert "\n".join(opening).count(f"{STEPS} steps") == 1
    assert re.search(r"^- \*\*Claims\*\* .*C1", text, re.M)


@pytest.mark.parametrize("growth, label", [(0.004, L.GROWS), (-0.003, L.SHRINKS), (0.0, L.HOLDS)])
def test_the_caveats_say_what_longer_training_does_to_the_advantage(tmp_path, growth, label):
    text = R.build_report(study_tables(axis=make_axis(head=1, growth=growth, eq_shift=0.04)), tmp_path)
    caveats = next(line for line in text.splitlines() if line.startswith("- **Caveats**"))
    both = {L.GROWS: "the advantage grows at equal sparsity and at equal storage",
            L.SHRINKS: "the advantage shrinks at equal sparsity and at equal storage",
            L.HOLDS: "no change of the advantage detected at equal sparsity or at equal storage"}[label]
    assert ("Longer training (snip, seeds 0–2): after 12 epochs, C10 supported (equal sparsity: supported; equal "
            f'storage: supported); from 1 to 12 epochs, {both}: see "Training length"') in caveats
    # without the axis, C10 is not tested and the caveats say nothing of longer training
    bare = R.build_report(study_tables(axis=make_axis(head=1).iloc[:0]), tmp_path)
    assert "Longer training" not in next(line for line in bare.splitlines() if line.startswith("- **Caveats**"))


def test_the_claims_line_names_the_sets_of_parts_a_verdict_comes_from(tmp_path):
    """C1 not supported at equal storage alone (rigl's IP_eq below SP) is 'C1 (equal storage)' in the opening's
    claims by verdict, not a bare 'C1' that reads as IP losing under the paper's accounting too."""
    text = R.build_report(study_tables(), tmp_path)
    line = next(x for x in text.splitlines() if x.startswith("- **Claims**"))
    c1 = next(r for r in V.all_verdicts(Evidence.from_tables(study_tables())) if r.claim_id == "C1")
    assert c1.verdict == S.NOT_SUPPORTED and set(c1.group_verdicts.values()) == {S.SUPPORTED, S.NOT_SUPPORTED}
    assert re.search(r"not supported: [^;]*C1 \(equal storage\)", line)
    # a claim whose every set has its verdict is named bare
    assert re.search(r"(?<!not )supported: [^;]*C10[,;.]", line)


def test_c2_says_at_which_sweep_points_runs_lost_a_layer():
    """A slope is read with the points that carry it: the point where every IP_eq run lost a layer says so."""
    c2 = next(r for r in V.all_verdicts(Evidence.from_tables(study_tables())) if r.claim_id == "C2")
    eq = next(p for p in c2.parts if p.label == "snip (equal storage)")
    assert "s=0.99 " in eq.note and "a layer lost: IP_eq 3 of 3 runs, SP 1 of 3 runs)" in eq.note
    ip = next(p for p in c2.parts if p.label == "snip")
    assert "a layer lost: IP 3 of 3 runs)" in ip.note                        # at 0.995, SP kept every layer
    assert "s=0.9 " in ip.note and ip.note.split("s=0.9 ")[1].split(")")[0].count("a layer lost") == 0


def test_the_body_before_the_appendix_is_at_most_150_lines_on_a_study_like_table_set(tmp_path):
    text = R.build_report(study_tables(), tmp_path)
    body = body_of(text)
    assert R.APPENDIX_TITLE in text and len(body.splitlines()) <= 150
    # the per-claim detail, the rule, the choices and the re-run instructions are in the appendix
    appendix = text.split(R.APPENDIX_TITLE)[1]
    for heading in ["## How a verdict is decided", "## Setting", "## Our choices", "## How to re-run",
                    *(f"## C{i}: " for i in range(1, 11)), "## K1: ", "## K2: "]:
        assert heading in appendix and heading not in body, heading
    for section in ("## Claims", "## Training length", "## Ablations", "## Controls"):
        assert section in body


def test_every_difference_of_the_table_appears_once_in_the_body(tmp_path):
    text = R.build_report(study_tables(), tmp_path)
    body = body_of(text)
    rows = top_table(text)
    assert [r[0] for r in rows] == list(SPARSE)
    for row in rows:
        for cell in (row[3], row[5]):             # IP−SP and IP_eq−SP: mean [low, high] label
            numbers = cell.split(" [")[0] + " [" + cell.split(" [")[1].split("]")[0] + "]"
            assert body.count(numbers) == 1, numbers
    # the claims table does not repeat them: C1's row points to the table
    c1_row = next(line for line in body.splitlines() if line.startswith("| C1 |"))
    assert "the table at the top" in c1_row and not re.search(r"[+-]\d+\.\d\d \[", c1_row)


# --------------------------------------------------------------------------- labels that say what the evidence says

def test_a_schedule_squeezed_into_the_run_is_said_next_to_its_numbers(tmp_path):
    t = study_tables()
    found = squeezed(t.meta, t.summary)
    assert sorted(found) == ["gmp", "rigl"]
    assert found["rigl"].by_rule == found["rigl"].recorded == L.dst_updates(STEPS, 20, 0.75)
    assert found["gmp"].by_rule == L.gmp_steps(STEPS, 10, 0.1, 0.75)
    text = R.build_report(t, tmp_path)
    rigl = next(r for r in top_table(text) if r[0] == "rigl")
    assert rigl[3].endswith("†") and rigl[5].endswith("not supported†")
    assert not any(cell.endswith("†") for r in top_table(text) if r[0] not in ("rigl", "gmp") for cell in r)
    c1 = next(r for r in V.all_verdicts(Evidence.from_tables(t)) if r.claim_id == "C1")
    assert {p.label.split(" ")[0] for p in c1.parts if p.caveat} == {"rigl", "gmp"}
    assert "schedule squeezed into the 1-epoch run's 468 steps: 17 mask updates, one every 20 steps" in \
        next(p for p in c1.parts if p.label == "rigl").note
    # the setting row computes the count by the rule and says what the runs recorded
    assert "| gmp pruning steps per run | 31 (one every 10 steps from 10 % to 75 % of 468" in text
    # at the method's own default spacing the schedule is not squeezed: no caveat, no mark
    params = {**PARAMS, "prune": {**PARAMS["prune"], "dst": {"interval": 100, "stop_fraction": 0.75},
                                  "gmp": {"interval": 100, "start_fraction": 0.1, "end_fraction": 0.75}}}
    assert not squeezed({"params": params}, study_runs())
    assert schedules({"params": params}, study_runs())["rigl"].by_rule == L.dst_updates(STEPS, 100, 0.75)
    plain = R.build_report(make_tables(meta={**META, "params": params}, summary=study_runs(), sweep=study_sweep()),
                           tmp_path)
    caveats = next(line for line in plain.splitlines() if line.startswith("- **Caveats**"))
    assert "†" not in caveats and "squeezed" not in caveats
    assert not any("†" in cell for r in top_table(plain) for cell in r)


def test_the_gmp_count_of_the_rule_is_what_the_hook_does():
    """31, not 30: the rule the report computes with is the one ip/pruning/gradual.py applies (at step 47 the
    cubic schedule is still at 0 and prunes nothing; then every 10 steps to 347, and 351)."""
    from ip.masks import MaskEnforcer
    from ip.models import get_model
    from ip.pruning import find_masks, make_train_hook
    torch.manual_seed(0)
    # the study's network: at its size every step of the rule changes the mask (a tiny one reaches the budget
    # by rounding one step early)
    model = get_model("resnet20", num_classes=10, in_channels=1, width=16)
    options = {"start_fraction": 0.1, "end_fraction": 0.75, "interval": 10}
    masks, _ = find_masks("gmp", model, 0.98, options=options)
    enforcer = MaskEnforcer(model, masks)
    hook = make_train_hook("gmp", model, masks, enforcer, total_steps=STEPS, sparsity=0.98, options=options)
    for step in range(1, STEPS + 1):          # the trainer calls the hook after steps 1..468
        hook.after_step(step)
    assert len(hook.history) == L.gmp_steps(STEPS, 10, 0.1, 0.75) == 31
    assert hook.history[0]["step"] == 57 and hook.history[-1]["step"] == 351


def test_a_verdict_names_the_one_part_it_turns_on():
    parts = [Part("a", S.SUPPORTED), Part("b", S.INCONCLUSIVE), Part("c", S.SUPPORTED)]
    assert turns_on(parts, S.INCONCLUSIVE).label == "b"
    assert turns_on(parts + [Part("d", S.INCONCLUSIVE)], S.INCONCLUSIVE) is None
    assert turns_on(parts + [Part("d", S.NOT_SUPPORTED)], S.NOT_SUPPORTED).label == "d"
    assert turns_on([Part("a", S.SUPPORTED)], S.SUPPORTED) is None
    result = next(r for r in V.all_verdicts(Evidence.from_tables(study_tables())) if r.claim_id == "C1")
    cell = R._verdict_cell(result)
    assert cell.startswith(f"**{result.verdict}**") and "equal storage: not supported, on rigl† alone" in cell


# --------------------------------------------------------------------------- the ablation's references

def test_the_ablation_counts_a_main_setting_once_and_as_a_reference(tmp_path):
    t = study_tables()
    ab = T.normalise_table("ablation", t.ablation)
    arms = main_arms(ab, t.summary)
    assert arms == {("snip", "fb_init=spatial"): "ip", ("snip", "share=layer"): "ip",
                    ("snip", "fair_budget"): T.EQUAL_STORAGE, ("dense", "dense-ip"): "ip"}
    out = ablation_comparisons(ab, 0.05, summary=t.summary).set_index("variant")
    members = out[out["verdict"] != REFERENCE]
    assert sorted(members.index) == ["fb_init=dct", "fb_init=random_orthogonal", "share=network",
                                     "share=network,fair_budget"]
    assert {c.decision.holm_m for c in members["comparison"]} == {4}          # the family: the variants only
    refs = out[out["verdict"] == REFERENCE]
    assert sorted(refs.index) == sorted(v for _, v in arms) and all(c.decision is None for c in refs["comparison"])
    # each variant beside its reference, paired over seeds: the main IP runs, or the main IP_eq runs
    assert members.loc["share=network,fair_budget", "reference_repr"] == T.EQUAL_STORAGE
    assert members.loc["fb_init=dct", "reference_repr"] == "ip"
    dct = ab[ab["variant"] == "fb_init=dct"].set_index("seed")["test_acc"]
    main_ip = ab[ab["variant"] == "fb_init=spatial"].set_index("seed")["test_acc"]
    assert members.loc["fb_init=dct", "vs_reference"].diff.mean == pytest.approx((dct - main_ip).mean())
    # the report: one reference row per set of main runs, C1's verdict on every main seed, no dense duplicate
    section = R.build_report(t, tmp_path).split("## Ablations")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| snip |") or line.startswith("| dense |")]
    assert len(rows) == 2 + 4
    c1 = next(r for r in V.all_verdicts(Evidence.from_tables(t)) if r.claim_id == "C1")
    eq_verdict = next(p.verdict for p in c1.parts if p.label == "snip (equal storage)")
    fair = next(line for line in rows if "fair_budget: the main IP_eq runs (reference)" in line)
    assert f"reference: C1 decides these runs on seeds 0–4: {eq_verdict}" in fair
    assert "fb_init=spatial, share=layer: the main IP runs (reference)" in section
    assert "the 4 testable variants are one Holm family" in section and "The dense runs are C8's" in section
    assert not any(line.startswith("| dense |") for line in rows)


# --------------------------------------------------------------------------- layer collapse in the sweep

def test_the_sweeps_collapsed_layers_are_reported_like_the_headlines(tmp_path):
    t = study_tables()
    text = R.build_report(t, tmp_path)
    note = next(line for line in body_of(text).splitlines() if line.startswith("Layer collapse"))
    assert ("in the sweep, snip at s=0.99: SP 1 of 3 runs (4 layers), IP_eq 3 of 3 runs (6–8 layers); "
            "snip at s=0.995: IP 3 of 3 runs (6 layers)") in note
    assert "Disconnected runs (no path from input to output; left out of every comparison): 0 (sweep: 0)." in note
    c2 = next(r for r in V.all_verdicts(Evidence.from_tables(t)) if r.claim_id == "C2")
    assert "snip at s=0.99: SP 1 of 3 runs (4 layers), IP_eq 3 of 3 runs (6–8 layers)" in c2.summary
    # the headline sparsity's rows of the sweep are the main runs: reported once, with the headline's
    sweep = study_sweep()
    sweep.loc[(sweep["sparsity"] == 0.98) & (sweep["repr"] == "sp"), "collapsed_layers"] = 2
    assert "s=0.98" not in A.collapse_note(study_runs(), sweep, 0.98)


# --------------------------------------------------------------------------- the storage view

def test_the_storage_view_is_read_in_c2s_appendix_section_and_works_without_its_module(tmp_path, monkeypatch):
    t = study_tables()
    fake = types.ModuleType("analysis.plots.storage")
    fake.storage_view_sentence = lambda sweep, summary: f"Storage view: {len(sweep)} sweep runs read."
    monkeypatch.setattr(R, "storage_module", lambda: fake)
    text = R.build_report(t, tmp_path)
    body, appendix = body_of(text), text.split(R.APPENDIX_TITLE)[1]
    # not in the body (its numbers would repeat the table's): Fig. 1 follows the table and its notes directly,
    # and the claims table links the figure beside C2
    assert "Storage view" not in body
    assert body.index("Layer collapse") < body.index("fig1_accuracy") < body.index("## Claims")
    c2_row = next(line for line in body.splitlines() if line.startswith("| C2 |"))
    assert "[fig13_storage](figures/fig13_storage.png)" in c2_row
    c2 = appendix.split("## C2: ")[1].split("\n## ")[0]
    assert f"Storage view: {len(t.sweep)} sweep runs read." in c2
    monkeypatch.setattr(R, "storage_module", lambda: None)                  # not written yet: nothing, no error
    assert "Storage view" not in R.build_report(t, tmp_path)
    monkeypatch.setattr(R, "storage_module", lambda: types.ModuleType("analysis.plots.storage"))
    assert "Storage view" not in R.build_report(t, tmp_path)
