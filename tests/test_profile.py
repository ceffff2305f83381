"""The stage-time profile: records summed per stage kind (benchmarks/pipeline_profile.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import pipeline_profile  # noqa: E402


def record(stage, startup, total, processes=1, **phases):
    return {"stage": stage, "args": [], "startup_seconds": startup, "total_seconds": total, "phases": phases,
            "processes": processes}


def test_profile_sums_phases_per_stage_kind_and_keeps_the_rest_as_other():
    table = pipeline_profile.profile_table([
        record("train", 2.0, 20.0, loading=1.0, run_steps=12.0, run_evaluation=1.5, run_gradient_flow=0.5,
               writing=0.25, train_run=15.0),
        record("train", 3.0, 30.0, loading=1.0, run_steps=20.0, run_recalibration=1.0, writing=0.5),
        record("masks", 2.5, 4.0, loading=0.5, mask_scoring=0.75),
    ])
    train, masks = table["train"], table["masks"]
    assert train["stages"] == 2 and train["total"] == 50.0
    assert train["start-up"] == 5.0 and train["loading"] == 2.0 and train["training steps"] == 32.0
    assert train["evaluation and metrics"] == 3.0 and train["writing"] == 0.75
    assert train["other"] == pytest.approx(50.0 - (5.0 + 2.0 + 32.0 + 3.0 + 0.75))
    assert masks["mask scoring"] == 0.75 and masks["other"] == pytest.approx(4.0 - 3.75)


def test_a_stage_of_two_worker_processes_has_twice_its_wall_time_to_account_for():
    table = pipeline_profile.profile_table([record("train", 2.0, 10.0, processes=2, run_steps=15.0, loading=1.0)])
    train = table["train"]
    assert train["total"] == 10.0 and train["capacity"] == 20.0
    assert train["other"] == pytest.approx(20.0 - (2.0 + 15.0 + 1.0))


def test_profile_without_records_is_a_one_line_error(tmp_path):
    with pytest.raises(SystemExit, match="no stage records"):
        pipeline_profile.main(["--profile", str(tmp_path)])


def test_cpu_model_reads_the_model_name_and_falls_back_to_platform(tmp_path):
    from pipeline.common import cpu_model

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\n\n"
                    "processor\t: 1\nmodel name\t: AMD EPYC 9R14\n")
    assert cpu_model(info) == "AMD EPYC 9R14"
    assert cpu_model(tmp_path / "absent") and cpu_model(tmp_path / "absent") != "AMD EPYC 9R14"


def test_the_report_names_the_cpus_that_ran_the_stages_not_the_one_that_aggregates(tmp_path, monkeypatch):
    import json

    from pipeline import aggregate
    from pipeline.common import cpu_model
    from study.params import load_params

    p = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    monkeypatch.setattr(aggregate, "PROFILE_DIR", tmp_path)
    assert aggregate.stage_cpus(aggregate.stage_profiles(p)) == cpu_model()   # no records: this machine
    for name, cpu in (("train-snip", "CPU B"), ("train-rigl", "CPU A"), ("sweep-0.9", "CPU B"),
                      ("not-a-stage", "CPU C")):
        (tmp_path / f"{name}.json").write_text(json.dumps({**record("train", 1.0, 2.0), "cpu": cpu}))
    (tmp_path / "init.json").write_text(json.dumps(record("init", 1.0, 3.0)))   # a record from before "cpu"
    profiles = aggregate.stage_profiles(p)
    assert aggregate.stage_cpus(profiles) == "CPU A; CPU B"
    assert aggregate.stage_wall_seconds(profiles) == {"init": 3.0, "train-snip": 2.0, "train-rigl": 2.0,
                                                      "sweep-0.9": 2.0}
