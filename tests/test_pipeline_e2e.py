"""End to end: the real dvc.yaml on temporary copies of the project with the pinned tiny
study's params (tests/pins.py), run the way the study is run across machines.

`dvc repro dense` runs the first stages in one repository, whose outputs and dvc.lock are
committed; `dvc repro` in a clone of it (a new machine: no DVC cache, no prepared data)
continues at the first unfinished stage and reproduces the pinned results; in a clone of
that commit `dvc repro` trains nothing and leaves git clean; and `dvc exp run -S
sparsity=0.99` would re-run exactly what depends on the headline sparsity."""
import json
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

import pins
from pipeline.plan import stages_to_run

from test_scaling import dvc, needs_data, needs_dvc, run
from test_scaling import project as make_project

pytestmark = [pytest.mark.slow, needs_data, needs_dvc]


def ran(out) -> list[str]:
    """The stages a `dvc repro` (or a dry run) ran, in order."""
    return re.findall(r"Running stage '([^']+)'", out.stdout + out.stderr)


def commit_all(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", message], repo)


def clone(src: Path, dest: Path) -> Path:
    run(["git", "clone", "-q", str(src), str(dest)], src.parent)
    return dest


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """``first``: `dvc repro dense` (prepare, init, dense), committed; ``second``: a clone of it
    where `dvc repro` ran the rest, committed."""
    root = tmp_path_factory.mktemp("study")
    first = make_project(root / "first", pins.pinned_params())
    started = dvc("repro", "dense", cwd=first, timeout=900)
    commit_all(first, "the study's first stages")
    second = clone(first, root / "second")
    resumed = dvc("repro", cwd=second, timeout=900)
    commit_all(second, "the rest of the study")
    return SimpleNamespace(first=first, second=second, started=ran(started), resumed=ran(resumed))


@pytest.fixture(scope="module")
def project(study):
    """The whole tiny study, committed."""
    return study.second


def test_a_clone_continues_at_the_first_unfinished_stage(study):
    assert study.started == ["prepare", "init", "dense"]
    # the prepared data is not in git: the clone rebuilds it, bit for bit, and nothing after it re-runs
    assert study.resumed[0] == "prepare" and not {"init", "dense"} & set(study.resumed)
    assert {"train@snip", "train@rigl", "trainability", "aggregate", "report"} <= set(study.resumed)


def test_a_clone_of_the_committed_study_trains_nothing(study, tmp_path):
    third = clone(study.second, tmp_path / "third")
    # before: only the prepared data is missing (every stage that reads it names it, nothing else)
    status = json.loads(dvc("status", "--json", cwd=third).stdout)
    changes = {path for entries in status.values() for entry in entries if isinstance(entry, dict)
               for change in entry.values() for path in change}
    assert status and changes == {"data/prepared.pt"}, status
    assert stages_to_run(repo_dir=str(third)) == ["prepare"]   # what make repro announces
    assert ran(dvc("repro", cwd=third)) == ["prepare"]
    assert run(["git", "status", "--porcelain"], third).stdout == ""
    assert ran(dvc("repro", cwd=third)) == []
    assert "up to date" in dvc("status", cwd=third).stdout


def test_repro_writes_every_result(project):
    dest = project
    summary = pd.read_csv(dest / "results" / "summary.csv")
    assert len(summary) == 3 * 2 * 1  # (dense and the 2 methods) x reprs x seeds
    assert set(summary["repr"]) == {"sp", "ip"}
    sparse = summary[summary["method"] != "dense"]
    assert sparse["sparsity_actual"].between(0.899, 0.901).all()
    assert (summary[summary["method"] == "dense"]["sparsity_actual"] == 0).all()
    assert summary["test_acc"].between(0.0, 1.0).all()
    for rel in ("history.csv", "sweep.csv", "ablation.csv", "filters.csv", "costs_reference.csv", "controls.csv",
                "trainability/hessian.csv", "theorem1/checks.csv", "theorem1/one_step.csv"):
        assert (dest / "results" / rel).stat().st_size > 0, rel
    sweep = pd.read_csv(dest / "results" / "sweep.csv")
    assert set(sweep["sparsity"]) == {0.5, 0.9}
    report = (dest / "paper_figures" / "REPORT.md").read_text()
    for claim in [f"C{i}" for i in range(1, 10)] + ["K1", "K2"]:
        assert claim in report
    # the controls: the shuffled runs beside their main-run pairs, the lr runs with a validation accuracy
    controls = pd.read_csv(dest / "results" / "controls.csv")
    shuffle = controls[controls["control"] == "shuffle"]
    assert shuffle.groupby("shuffled").size().to_dict() == {False: 2, True: 2}
    assert (shuffle.loc[shuffle["shuffled"], "moved_share"] > 0).all()
    lr = controls[controls["control"] == "lr"]
    # the grid 0.5, 1 grew once beyond the edge a representation chose (max_growth: 1)
    scales = sorted(set(lr["lr_scale"]))
    assert {0.5, 1.0} < set(scales) <= {0.25, 0.5, 1.0, 2.0} and len(lr) == 2 * len(scales)
    assert lr["val_acc"].between(0.0, 1.0).all()
    axis = pd.read_csv(dest / "results" / "axis.csv")
    assert set(axis["epochs"]) == {1, 2} and {"dense", "snip", "rigl"} == set(axis["method"])
    assert (dest / "paper_figures" / "figures" / "fig1_accuracy.png").stat().st_size > 10_000
    # every stage process left its timings; a train stage's include its training steps
    profiles = {p.stem: json.loads(p.read_text()) for p in (dest / "results" / "profile").glob("*.json")}
    assert {"prepare", "init", "train-dense", "train-snip", "train-rigl", "trainability", "aggregate",
            "controls-shuffle-snip", "controls-lr-snip"} <= set(profiles)
    phases = profiles["train-snip"]["phases"]
    assert phases["run_steps"] > 0 and phases["mask_scoring"] > 0 and profiles["train-snip"]["startup_seconds"] > 0
    metrics = json.loads((dest / "results" / "metrics.json").read_text())
    assert set(metrics) == {"dense", "snip", "rigl"} and "test_acc_ip" in metrics["snip"]


# The tiny study's results, pinned (tests/pins.py says how they are compared and why that
# holds on any machine).  A change that is meant to change results regenerates them:
#   IP_UPDATE_PINNED=1 pytest tests/test_pipeline_e2e.py
PINNED = pins.PINNED


def _summary_rows(path: Path) -> dict[str, dict]:
    import csv
    rows = {}
    for row in csv.DictReader(path.read_text().splitlines()):
        rows[f"{row['experiment']}-{row['method']}-{row['repr']}-s{row['seed']}-{row['sparsity']}"] = {
            key: pins.typed(value) for key, value in row.items()}
    return rows


def _run_name(run_dir: Path) -> str:
    """results/{runs,models}/<method>/<repr>-s<seed> -> <method>-<repr>-s<seed>"""
    return f"{run_dir.parent.name}-{run_dir.name}"


def _mask_digests(dest: Path) -> dict[str, dict[str, str]]:
    out = {}
    for path in sorted((dest / "results" / "models").glob("*/*/start.safetensors")):
        out[_run_name(path.parent)] = {"masks_sha256": pins.mask_digest(pins.run_file(path)[1]),
                                       "final_masks_sha256": pins.mask_digest(pins.run_file(path.parent / "final.safetensors")[1])}
    return out


def _structure(dest: Path) -> dict[str, list[str]]:
    """The stages dvc.lock records and the files the study wrote (results/, paper_figures/; the
    stages' timing records in results/profile/ aside)."""
    lock = yaml.safe_load((dest / "dvc.lock").read_text())
    files = sorted(str(p.relative_to(dest)) for top in ("results", "paper_figures") for p in (dest / top).rglob("*")
                   if p.is_file() and not p.relative_to(dest).parts[1] == "profile"   # timings, not results
                   and p.name != ".gitkeep")                                            # the project's, not the study's
    return {"stages": sorted(lock["stages"]), "files": files}


def test_tiny_study_reproduces_its_pinned_results(project):
    """Runs before the tests that change the study (dvc exp run), on the first repro's results."""
    dest = project
    runs = sorted((dest / "results" / "runs").glob("*/*/metrics.json"))
    if os.environ.get("IP_UPDATE_PINNED") == "1":
        shutil.rmtree(PINNED, ignore_errors=True)
        (PINNED / "runs").mkdir(parents=True)
        shutil.copyfile(dest / "results" / "summary.csv", PINNED / "summary.csv")
        for path in runs:
            shutil.copyfile(path, PINNED / "runs" / f"{_run_name(path.parent)}.json")
        (PINNED / "masks.json").write_text(json.dumps(_mask_digests(dest), indent=2, sort_keys=True) + "\n")
        (PINNED / "structure.json").write_text(json.dumps(_structure(dest), indent=2) + "\n")
    # integers and structure: exact
    assert _structure(dest) == json.loads((PINNED / "structure.json").read_text())
    assert _mask_digests(dest) == json.loads((PINNED / "masks.json").read_text())
    assert [_run_name(p.parent) for p in runs] == sorted(p.stem for p in (PINNED / "runs").glob("*.json"))
    # numbers out of training: within the tolerance of tests/pins.py
    for path in runs:
        got = json.loads(path.read_text())
        name = _run_name(path.parent)
        assert pins.differences(got, json.loads((PINNED / "runs" / f"{name}.json").read_text())) == [], name
    got, pinned = _summary_rows(dest / "results" / "summary.csv"), _summary_rows(PINNED / "summary.csv")
    assert sorted(got) == sorted(pinned)
    for key in pinned:
        assert pins.differences(got[key], pinned[key]) == [], key


#: the stages that depend on the headline sparsity (docs/study.md lists the default study's)
SPARSITY_STAGES = {"train@snip", "train@rigl", "axis@2-0", "ablation", "shuffle@snip", "lr_control@snip", "trainability",
                   "theorem1", "aggregate", "figures", "report"}


def test_another_sparsity_reruns_exactly_what_depends_on_it(project):
    """`dvc exp run -S sparsity=0.99` is `dvc repro` with that params.yaml in a copy of the
    workspace: its dry run here lists the stages (the experiment queue of tests/test_scaling.py
    runs such experiments for real and checks their sparsity), and make repro announces them."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    (project / "params.yaml").write_text(yaml.safe_dump({**params, "sparsity": 0.99}, sort_keys=False))
    try:
        # dense runs keep every entry whatever the sparsity; the sweep has its own sparsities.
        # A dry run stops at aggregate: it cannot know that aggregate's tables will change
        dry = set(ran(dvc("repro", "--dry", cwd=project)))
        assert dry == SPARSITY_STAGES - {"figures", "report"}, dry
        assert set(stages_to_run(repo_dir=str(project))) == SPARSITY_STAGES
    finally:
        run(["git", "checkout", "params.yaml"], project)
