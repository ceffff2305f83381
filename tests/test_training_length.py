"""Claim C10 and the training-length axis on synthetic axis tables: the verdict follows the rule at
the longest length, the change with the length is labelled as the data has it, the methods with
their schedules as published are no parts, a missing axis table is "not tested here", and the
report's section and figure read their numbers from the tables and meta.json."""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from analysis import figures as Fg
from analysis import report as R
from analysis import stats as S
from analysis import tables as T
from analysis import training_length as L
from analysis.evidence import Evidence
from analysis.length_section import TITLE
from test_analysis import HEADLINE, META, SEEDS, claim, make_axis, make_tables

#: the default study's settings as meta.json's params snapshot has them (1-epoch headline of 468 steps)
PARAMS = {**META["params"], "train": {"epochs": 1, "batch_size": 128},
          "prune": {"dst": {"interval": 20, "alpha": 0.3, "stop_fraction": 0.75},
                    "gmp": {"start_fraction": 0.1, "end_fraction": 0.75, "interval": 10}},
          "axis": {"epochs": [4, 12], "seeds": list(SEEDS), "methods": ["snip"], "dense_epochs": [12],
                   "published": {"epochs": 4, "methods": ["rigl", "gmp"],
                                 "prune": {"rigl": {"interval": 100, "alpha": 0.3, "stop_fraction": 0.75},
                                           "gmp": {"start_fraction": 0.1, "end_fraction": 0.75, "interval": 50}}}}}
AXIS_META = {**META, "epochs": 1, "params": PARAMS}


def axis_tables(meta=None, **axis) -> T.Tables:
    return make_tables(meta=AXIS_META if meta is None else meta, axis=make_axis(**axis))


def c10(**axis):
    return claim(axis_tables(**axis), "C10")


def label_of(cell: str) -> str:
    """What a difference cell says after its n: '+2.04 pp [...] (n=3; supported)' -> 'supported'."""
    return cell.rsplit("; ", 1)[1].removesuffix(")")


def section(text: str) -> str:
    return text.split(TITLE)[1].split("\n## ")[0]


# --------------------------------------------------------------------------- the verdict

@pytest.mark.parametrize("ip_shift, eq_shift, wobble, expected", [
    (0.04, 0.02, 0.0005, S.SUPPORTED), (-0.04, -0.02, 0.0005, S.NOT_SUPPORTED), (0.001, 0.001, 0.02, S.INCONCLUSIVE)])
def test_c10_follows_the_rule_at_the_longest_length(ip_shift, eq_shift, wobble, expected):
    result = c10(ip_shift=ip_shift, eq_shift=eq_shift, ip_wobble=wobble)
    assert result.verdict == expected
    assert result.numbers["epochs_longest"] == 12
    assert {p.label: p.verdict for p in result.parts} == {"snip": expected, "snip (equal storage)": expected}
    # one family over the parts of both accountings, each accounting's parts a set of its own (as C1)
    assert len(result.group_verdicts) == 2 and set(result.group_verdicts.values()) == {expected}
    snip = next(p for p in result.parts if p.label == "snip")
    # seed 0's IP wobble at the third length is 3 × wobble, averaged over 3 seeds
    assert snip.comparison.diff.mean == pytest.approx(ip_shift + wobble)
    assert snip.comparison.diff.n == len(SEEDS) and "after 12 epochs" in snip.note


def test_c10_is_not_tested_with_one_seed_or_without_a_longer_run():
    one = c10(seeds=(0,))
    assert one.verdict == S.NOT_TESTED and one.summary.startswith("Not tested here: no part has 2 or more")
    short = make_axis()
    short = short[(short["epochs"] == 1) | (short["method"] == "dense")]
    result = claim(make_tables(meta=AXIS_META, axis=short), "C10")
    assert result.verdict == S.NOT_TESTED and "no sparse run longer than the headline's 1 epoch" in result.explanation


def test_a_missing_axis_table_is_not_tested_here_without_errors(tmp_path):
    results = tmp_path / "results"
    t = axis_tables()
    for name, (rel, _) in T.SCHEMAS.items():
        if name == "axis":
            continue
        path = results / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        getattr(t, name).to_csv(path, index=False)
    (results / "meta.json").write_text(json.dumps(AXIS_META))
    loaded = T.load_tables(results)
    assert loaded.axis.empty and loaded.present["axis"] is False
    result = claim(loaded, "C10")
    assert result.verdict == S.NOT_TESTED and "no sparse runs of the training-length axis" in result.explanation
    text = R.build_report(loaded, tmp_path / "out")
    assert "missing (no runs of the training-length axis" in section(text)
    assert "| C10 |" in text and "## C10: " in text
    drawn = Fg.fig_axis(loaded.axis, tmp_path / "fig", loaded.meta, HEADLINE)
    assert any(x.get_text().startswith("no data") for ax in drawn.figure.axes for x in ax.texts)


# --------------------------------------------------------------------------- the change with the length

@pytest.mark.parametrize("growth, label", [(0.004, L.GROWS), (-0.003, L.SHRINKS), (0.0, L.HOLDS)])
def test_the_change_from_the_shortest_to_the_longest_length_is_labelled(growth, label):
    result = c10(growth=growth, eq_shift=0.04)
    for against in ("ip", T.EQUAL_STORAGE):
        assert result.numbers[f"snip.{against}.trend"] == label
        assert result.numbers[f"snip.{against}.epochs_shortest"] == 1
        assert result.numbers[f"snip.{against}.epochs_longest"] == 12
    # per seed d_12 − d_1 = 11 × growth, plus seed 0's wobble growing from 1 to 3 × 0.0005
    assert result.numbers["snip.ip.change_mean"] == pytest.approx(11 * growth + 0.001 / 3)
    assert L.trend_phrase(label) in result.summary
    assert ("no change of the advantage detected" in result.summary) == (label == L.HOLDS)
    # the information never decides: a shrinking advantage still above 0 at 12 epochs is supported
    assert result.verdict == S.SUPPORTED


def test_the_trend_is_not_tested_below_two_seeds():
    runs = L.axis_runs(T.normalise_table("axis", make_axis(seeds=(0,))), AXIS_META, HEADLINE)
    assert L.trend(runs, "snip").label == L.TREND_NOT_TESTED


# --------------------------------------------------------------------------- the published schedules

def test_the_published_methods_are_no_parts_unless_they_reach_the_longest_length():
    result = c10()
    assert {p.label for p in result.parts} == {"snip", "snip (equal storage)"}
    assert result.numbers["rigl.ip.epochs_longest"] == 4          # information: 1 -> 4 epochs
    assert "length and schedule change together" in result.explanation
    longer = c10(published_factor=12)
    assert {p.label for p in longer.parts} == {f"{m}{s}" for m in ("snip", "rigl", "gmp")
                                               for s in ("", " (equal storage)")}


def test_the_schedule_counts_follow_the_methods_rules():
    assert L.dst_updates(468, 20, 0.75) == 17 and L.dst_updates(1872, 100, 0.75) == 14
    assert L.dst_updates(468, 100, 0.75) == 3
    assert L.gmp_steps(1872, 50, 0.1, 0.75) == 25 and L.gmp_steps(468, 50, 0.1, 0.75) == 7


# --------------------------------------------------------------------------- the report

def test_the_report_has_the_section_with_the_tables_numbers(tmp_path):
    t = axis_tables(ip_shift=0.037, eq_shift=0.012, growth=0.002)
    text = R.build_report(t, tmp_path)
    part = section(text)
    rows = {int(line.split("|")[1]): [c.strip() for c in line.strip("|").split("|")]
            for line in part.split("at every length:")[1].split("\n\n")[1].splitlines()[2:]}
    assert sorted(rows) == [1, 4, 12]
    runs = L.axis_runs(t.axis, AXIS_META, HEADLINE)
    for epochs, cells in rows.items():
        assert cells[1] == str(468 * epochs)                       # steps, as the runs recorded them
        at = runs[(runs["method"] == "snip") & (runs["epochs"] == epochs)]
        sp = at.loc[at["repr"] == "sp", "test_acc"]
        assert cells[2].startswith(f"{100 * sp.mean():.2f} ± ")
        d = L.pairs_at(runs, "snip", epochs).diffs
        assert cells[5].startswith(f"{100 * d.mean():+.2f} pp [95 % CI ") and cells[5].endswith("supported)")
    # the headline's rows are C1's runs (of fewer seeds, perhaps): C1's label of them, never a label of their own
    c1 = claim(t, "C1")
    snip_c1 = next(p for p in c1.parts if p.label == "snip")
    assert label_of(rows[1][5]) == f"reference: C1 decides these runs on seeds 0–2: {snip_c1.verdict}"
    assert all("reference" not in rows[e][5] for e in (4, 12))
    change = (L.pairs_at(runs, "snip", 12).connected.set_index("seed")["diff"]
              - L.pairs_at(runs, "snip", 1).connected.set_index("seed")["diff"]).mean()
    assert f"snip IP−SP from 1 to 12 epochs: change {100 * change:+.2f} pp" in part and "the advantage grows" in part
    # (b) at 4 epochs: C1's DST and during-training parts beside SNIP's, and why the headline's schedules differ
    published = part.split("### At 4 epochs: the schedules as published")[1]
    assert "| rigl (as published) | DST | 14 |" in published and "| gmp (as published) | during training | 25 |" \
        in published and "| snip | PaI | – |" in published
    assert "Why the 1-epoch headline uses other schedules: in its 468 steps, RigL's published ΔT = 100 steps" \
        in published and "leaves room for 3 mask updates" in published and "room for 7 pruning steps" in published
    assert "RigL updates every 20 steps until 75 % (17 updates recorded; as published at 4 epochs: 14 updates " \
        "recorded)" in published
    assert "at 4 epochs (1872 steps)" in published
    # (c) dense at 1 and 12 epochs, IP−SP there, and the gain with the length
    dense = part.split("### Dense networks")[1]
    assert [line.split("|")[1].strip() for line in dense.splitlines() if line.startswith("| 1") or
            line.startswith("| 12")] == ["1", "12"]
    gain = runs[(runs["method"] == "dense") & (runs["repr"] == "sp")].pivot_table(index="seed", columns="epochs",
                                                                                   values="test_acc")
    assert f"SP {100 * (gain[12] - gain[1]).mean():+.2f} pp" in dense
    c8 = claim(t, "C8")
    assert f"reference: C8 decides these runs on seeds 0–2: {c8.verdict})" in dense
    # C10 is with the other claims: the claims table, the opening's claims by verdict and its own section
    row = next(line for line in text.splitlines() if line.startswith("| C10 |"))
    assert "IP's advantage holds for longer training" in row and "| **supported** (" in row
    assert re.search(r"^- \*\*Claims\*\* .*(?<!not )supported: [^;]*C10", text, re.M)
    assert "## C10: IP's advantage holds for longer training" in text and "**Verdict: supported.**" in \
        text.split("## C10: ")[1]


def test_the_schedule_sentence_reads_its_numbers_from_the_params(tmp_path):
    params = json.loads(json.dumps(PARAMS))
    params["axis"]["published"]["prune"]["rigl"]["interval"] = 50
    params["prune"]["dst"]["interval"] = 25
    text = section(R.build_report(axis_tables(meta={**AXIS_META, "params": params}), tmp_path))
    assert "ΔT = 50 steps" in text and f"room for {L.dst_updates(468, 50, 0.75)} mask updates" in text
    assert "RigL updates every 25 steps" in text
    # GMP's spacing at 4 epochs is this study's, not the paper's: the sentence says so
    assert ("GMP's cubic schedule as published, from 10 % to 75 % of training (Zhu & Gupta 2018), at the spacing of "
            "the 4-epoch runs (a pruning step every 50 steps: this study's choice, not the paper's) leaves room for "
            f"{L.gmp_steps(468, 50, 0.1, 0.75)} pruning steps") in text
    bare = {k: v for k, v in AXIS_META.items() if k != "params"}
    assert "uses other schedules" not in section(R.build_report(axis_tables(meta=bare), tmp_path))


# --------------------------------------------------------------------------- the figure

def test_the_figure_has_a_panel_per_method_one_y_scale_and_says_which_schedule(tmp_path):
    axis = make_axis()
    gmp_pairs = (axis["method"] == "gmp") & (axis["repr"] != "sp")
    drawn = Fg.fig_axis(axis[~gmp_pairs], tmp_path / "axis", AXIS_META, HEADLINE).figure
    panels = [ax for ax in drawn.axes if ax.get_visible()]
    assert [ax.get_title().split(" ")[0] for ax in panels] == ["snip", "rigl", "gmp", "dense"]
    rigl = panels[1].get_title()
    assert "1 epoch: the headline's squeezed schedule" in rigl and "4 epochs: the schedule as published" in rigl
    assert any(x.get_text().startswith("no data") for x in panels[2].texts)      # gmp: no SP/IP pairs
    drawn_panels = [panels[i] for i in (0, 1, 3)]
    assert len({ax.get_ylim() for ax in drawn_panels}) == 1
    assert list(panels[0].get_xticks()) == [1, 4, 12]
    assert any(line.get_ydata()[0] == 0 for line in panels[0].lines if len(set(line.get_ydata())) == 1)
    # the lines of a method whose schedule changes between its lengths are dotted, the others solid
    styles = {i: {line.get_linestyle() for line in panels[i].lines       # the mean lines: not the zero line, not
                  if len(set(line.get_ydata())) > 1 and line.get_linestyle() != "None"} for i in (0, 1)}   # caps
    assert styles == {0: {"-"}, 1: {":"}}
    assert any("the schedule changes" in t.get_text() for t in drawn.legends[0].get_texts())
    assert Fg.CLAIM_FIGURES["C10"] == (Fg.FIGURES["axis"],) == ("fig12_training_length",)


def test_the_axis_reads_a_headline_row_without_epochs_as_the_headlines_length():
    axis = make_axis()
    axis.loc[axis["epochs"] == 1, "epochs"] = float("nan")
    runs = L.axis_runs(T.normalise_table("axis", axis), AXIS_META, HEADLINE)
    assert L.lengths(runs, "snip") == [1, 4, 12]
    ev = Evidence.from_tables(make_tables(meta=AXIS_META, axis=axis))
    assert isinstance(ev.tables.axis, pd.DataFrame) and claim(ev.tables, "C10").verdict == S.SUPPORTED


def test_the_figure_title_counts_the_seeds_of_each_length():
    from analysis.plots.axis import seeds_per_length
    runs = make_axis()
    assert seeds_per_length(runs) == "3 paired seeds"
    short = runs[~((runs["epochs"] == 12) & (runs["seed"] == 2))]
    assert seeds_per_length(short) == "3 paired seeds (2 at 12 epochs)"
