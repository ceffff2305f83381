"""make repro's announcement (pipeline/plan.py): which record a stage's estimate comes from,
how it is scaled, and what is printed.  Which stages it lists is checked on a real
repository in tests/test_pipeline_e2e.py."""
import json
import shlex
from pathlib import Path

from pipeline.plan import SHAPES, estimate, plan, probe_seconds, record_name
from study.params import validate

import pins

ROOT = Path(__file__).resolve().parents[1]


def test_record_names_follow_the_stage_processes():
    assert [record_name(s) for s in ("prepare", "dense", "train@snip", "sweep@0.9", "shuffle@snip",
                                     "lr_control@snip", "axis@4-0", "trainability")] == [
        "prepare", "train-dense", "train-snip", "sweep-0.9", "controls-shuffle-snip", "controls-lr-snip",
        "axis-4-0", "trainability"]


def test_every_stage_of_the_study_finds_the_record_its_process_writes():
    """``record_name`` of each stage of dvc.yaml is the name its process gives its profile
    (pipeline.common._write_profile: the module, then the arguments that are not options)."""
    from dvc.repo import Repo
    with Repo(str(ROOT)) as repo:
        stages = {getattr(s, "name", None) or s.addressing: s.cmd for s in repo.index.stages}
    assert "axis_dense@12-0" in stages and "axis@12-0" in stages
    for name, cmd in stages.items():
        words = shlex.split(cmd)
        assert words[:2] == ["python", "-m"] and words[2].startswith(("pipeline.", "analysis.")), (name, cmd)
        if not words[2].startswith("pipeline."):
            continue                                  # figures and report write no record
        expected = "-".join([words[2].rsplit(".", 1)[-1], *(w for w in words[3:] if not w.startswith("--"))])
        assert record_name(name) == expected, (name, cmd)


def test_estimates_scale_a_record_by_the_probe(tmp_path):
    (tmp_path / "train-snip.json").write_text(json.dumps({"total_seconds": 1000.0, "probe_seconds": 0.5,
                                                          "cpu": "Some CPU"}))
    (tmp_path / "init.json").write_text(json.dumps({"total_seconds": 30.0, "cpu": "Some CPU"}))
    assert estimate("train@snip", 0.25, tmp_path) == (500.0, "record of Some CPU, x0.50")
    assert estimate("train@snip", None, tmp_path) == (1000.0, "record of Some CPU, unscaled")
    assert estimate("init", 0.25, tmp_path) == (30.0, "record of Some CPU, unscaled")   # an older record
    assert estimate("train@rigl", 0.25, tmp_path) == (None, "no record")
    (tmp_path / "train-rigl.json").write_text("{truncated")
    assert estimate("train@rigl", 0.25, tmp_path) == (None, "no record")
    lines = plan(["init", "train@snip", "train@rigl"], 0.25, tmp_path)
    assert lines[0].startswith("dvc repro will run 3 stage(s)")
    assert "0:08:20" in lines[2] and "?" in lines[3]
    assert lines[-1].split()[:2] == ["total", "0:08:50"] and "1 stage(s) without a record" in lines[-1]
    assert plan([], 0.25, tmp_path) == ["dvc repro: every stage is up to date, nothing to run"]


def test_a_matrix_stage_without_a_record_takes_its_siblings_mean(tmp_path):
    for seed, seconds, then in ((0, 3000.0, 0.5), (1, 2000.0, 0.25)):   # each scaled by its own probe
        (tmp_path / f"axis-12-{seed}.json").write_text(json.dumps({"total_seconds": seconds, "probe_seconds": then,
                                                                   "cpu": "Some CPU"}))
    (tmp_path / "axis-4-0.json").write_text(json.dumps({"total_seconds": 99.0, "probe_seconds": 0.5}))
    (tmp_path / "axis-12-0-x.json").write_text(json.dumps({"total_seconds": 99.0, "probe_seconds": 0.5}))
    seconds, why = estimate("axis@12-2", 0.25, tmp_path)
    assert seconds == 1750.0
    assert why == "mean of axis-12-0 (record of Some CPU, x0.50), axis-12-1 (record of Some CPU, x1.00)"
    assert estimate("axis@12-0", 0.25, tmp_path) == (1500.0, "record of Some CPU, x0.50")   # its own
    assert estimate("axis_dense@12-0", 0.25, tmp_path) == (None, "no record")   # another stage's records
    assert estimate("axis@24-0", 0.25, tmp_path) == (None, "no record")        # another length
    (tmp_path / "train-snip.json").write_text(json.dumps({"total_seconds": 10.0}))
    assert estimate("train@rigl", 0.25, tmp_path) == (None, "no record")       # methods are not siblings


def test_the_probe_times_a_training_step_of_the_studys_model():
    p = validate(pins.pinned_params())
    assert set(SHAPES) >= {"fashion_mnist", "cifar10", "imagenet"}
    seconds = probe_seconds(p, steps=2, warmup=1)
    assert 0.0 < seconds < 5.0   # a width-4 ResNet-20 step on 64 images: milliseconds


def test_a_repository_another_dvc_holds_gets_one_line_saying_so(monkeypatch, capsys):
    import pipeline.plan as plan_module
    from dvc.lock import LockError

    def busy(targets):
        raise LockError("'/x/results/runs/rigl' is busy, it is being blocked by:\n  (PID 7): dvc repro train@rigl\n"
                        "  (PID 7): dvc repro train@rigl\n\nIf there are no processes with such PIDs, ...")
    monkeypatch.setattr(plan_module, "stages_to_run", busy)
    monkeypatch.chdir(ROOT)
    try:
        plan_module.main(["--no-probe"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("main returned although the repository was busy")
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: '/x/results/runs/rigl' is busy")
    assert err.count("(PID 7): dvc repro train@rigl") == 1 and ".dvc/tmp/rwlock" in err
