"""The baselines' sanity checks flag what disagrees with the literature's ranking, and only that."""
import pandas as pd

from analysis import tables as T
from analysis.evidence import Evidence
from analysis.sanity import checks

SP_MEANS = {"dense": 0.88, "random": 0.80, "snip": 0.805, "grasp": 0.795, "synflow": 0.80, "lt": 0.83,
            "rigl": 0.82, "gmp": 0.84}


def _evidence(means=SP_MEANS, gf_init=5.0, disconnected=()):
    rows = [{"method": m, "repr": r, "seed": s, "sparsity": 0.0 if m == "dense" else 0.98,
             "test_acc": acc + 0.02 * (r == "ip") + 0.001 * s, "gf_init": gf_init if m == "dense" else 1.0,
             "disconnected": (m, r) in disconnected}
            for m, acc in means.items() for r in ("sp", "ip") for s in range(3)]
    return Evidence.from_tables(T.Tables.from_frames(meta={"dataset": "fashion_mnist", "sparsity": 0.98},
                                                     summary=pd.DataFrame(rows)))


def _by_label(found):
    return {c.expectation.split(" (")[0]: c.agrees for c in found}


def test_a_literature_like_ranking_agrees_everywhere():
    assert all(c.agrees for c in checks(_evidence()))


def test_gmp_below_snip_and_a_method_at_chance_are_flagged():
    means = {**SP_MEANS, "gmp": 0.78, "grasp": 0.11}
    got = _by_label(checks(_evidence(means)))
    assert got["SP: GMP at or above the best score-based pruning-at-initialisation method"] is False
    assert got["no connected run's method at chance"] is False
    assert got["SP: SNIP, GraSP, SynFlow close to random ERK"] is False
    assert got["SP: RigL at or above random ERK"] is True


def test_a_disconnected_method_at_chance_is_not_flagged_and_a_huge_gf_is():
    means = {**SP_MEANS, "synflow": 0.10}
    found = _by_label(checks(_evidence(means, gf_init=1e4, disconnected={("synflow", "sp"), ("synflow", "ip")})))
    assert found["no connected run's method at chance"] is True
    assert found["gradient flow of the dense network at initialisation within 0.1-100"] is False


def test_missing_methods_are_missing_not_agreeing():
    means = {k: v for k, v in SP_MEANS.items() if k not in ("gmp", "lt")}
    got = _by_label(checks(_evidence(means)))
    assert got["SP: GMP at or above the best score-based pruning-at-initialisation method"] is None


def test_the_section_points_to_the_readme_only_when_something_disagrees():
    from pathlib import Path

    from analysis.report import sanity_section
    from analysis.sanity import README_SECTION
    flagged = sanity_section(_evidence({**SP_MEANS, "gmp": 0.78}))
    assert "1 of 6 disagree" in flagged and README_SECTION in flagged
    assert README_SECTION not in sanity_section(_evidence())
    readme = Path(__file__).resolve().parents[1] / "README.md"
    assert f"### {README_SECTION}\n" in readme.read_text()          # the section the report names exists
