"""The study's evidence (analysis.evidence): derived once per report, read by every claim, and its
seed pairs leave out and count the pairs that contain a disconnected run."""
from __future__ import annotations

import pytest

from analysis import report as R
from analysis import stats as S
from analysis import tables as T
from analysis import verdicts as V
from analysis.evidence import Evidence
from test_analysis import HEADLINE, equal_storage_runs, make_runs, make_tables


def test_the_report_derives_the_evidence_once_and_every_claim_reads_that_one(tmp_path, monkeypatch):
    derivations, received = [], {}
    headline_sparsity = T.headline_sparsity
    monkeypatch.setattr(T, "headline_sparsity", lambda t: derivations.append(t) or headline_sparsity(t))

    def reading(cid, claim):
        def read(ev):
            received[cid] = ev
            return claim(ev)
        return read

    for cid, claim in list(V.CLAIM_FUNCTIONS.items()):
        monkeypatch.setitem(V.CLAIM_FUNCTIONS, cid, reading(cid, claim))
    tables = make_tables()
    text = R.build_report(tables, tmp_path)
    assert len(derivations) == 1 and derivations[0] is tables
    assert sorted(received) == sorted(V.CLAIM_FUNCTIONS) and len({id(ev) for ev in received.values()}) == 1
    ev = received["C1"]
    assert isinstance(ev, Evidence) and ev.tables is tables and ev.sparsity == HEADLINE
    assert "## C9:" in text


def test_the_evidence_holds_what_the_claims_share():
    ev = Evidence.from_tables(make_tables(summary=make_runs(methods=("dense", "snip", "lt"))))
    assert ev.sparsity == HEADLINE and ev.methods == ("snip", "lt")
    assert set(ev.headline.frame["sparsity"]) == {0.0, HEADLINE}          # the dense runs stay in
    assert ev.reprs == ("sp", "ip") and ev.accountings == ("ip",) and not ev.has_equal_storage
    assert ev.alpha == 0.05 and ev.scale.factor == 100
    eq = Evidence.from_tables(make_tables(summary=equal_storage_runs()))
    assert eq.accountings == ("ip", T.EQUAL_STORAGE) and eq.has_equal_storage


def test_the_evidence_pairs_leave_out_and_count_disconnected_pairs():
    runs = equal_storage_runs()
    ip_seed0 = (runs["method"] == "snip") & (runs["repr"] == "ip") & (runs["seed"] == 0)
    eq_seed1 = (runs["method"] == "snip") & (runs["repr"] == T.EQUAL_STORAGE) & (runs["seed"] == 1)
    runs["disconnected"] = ip_seed0 | eq_seed1
    ev = Evidence.from_tables(make_tables(summary=runs))
    pairs = ev.headline.pairs("snip", "test_acc")
    assert pairs.excluded_disconnected == 1 and list(pairs.connected["seed"]) == [1, 2]
    sp = runs[(runs["method"] == "snip") & (runs["repr"] == "sp")].set_index("seed")["test_acc"]
    ip = runs[(runs["method"] == "snip") & (runs["repr"] == "ip")].set_index("seed")["test_acc"]
    assert list(pairs.diffs) == pytest.approx(list((ip - sp)[[1, 2]]))
    assert ev.headline.pairs("snip", "test_acc") is pairs                  # derived once, then kept
    # each pair of representations counts its own disconnected pairs; the other methods lose none
    eq_pairs = ev.headline.pairs("snip", "test_acc", against=T.EQUAL_STORAGE)
    assert eq_pairs.excluded_disconnected == 1 and list(eq_pairs.connected["seed"]) == [0, 2]
    assert ev.headline.pairs("random", "test_acc").excluded_disconnected == 0
    c = ev.headline.comparison("snip", "test_acc")
    assert c.diff.n == 2 and c.a.n == 2 and c.b.n == 2 and c.excluded_disconnected == 1
    # C1 decides on those pairs and says how many were left out, under each accounting
    c1 = V.CLAIM_FUNCTIONS["C1"](ev)
    snip = {p.group: p for p in c1.parts if p.label.startswith("snip")}
    assert [p.numbers["excluded_disconnected"] for p in snip.values()] == [1, 1]
    assert all(p.numbers["n_pairs"] == 2 for p in snip.values())
    assert all("1 pair excluded: disconnected" in p.note for p in snip.values())


def test_pairs_name_the_representation_that_has_no_run():
    runs = make_runs(drop=(("snip", "ip"),))
    ev = Evidence.from_tables(make_tables(summary=runs))
    assert ev.headline.pairs("snip", "test_acc").missing == ("ip",)
    assert ev.headline.pairs("random", "test_acc").missing == ()
    assert S.Pairs.of(runs.iloc[0:0], "test_acc").connected.empty
