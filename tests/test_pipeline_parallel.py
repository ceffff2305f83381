"""Stages that make many independent runs spread them over `train.workers` processes
(ip.parallel.run_jobs); the results must not depend on that."""
from __future__ import annotations

import json
import re

import pytest

import pins
from ip.experiment import is_timing
from ip.parallel import run_jobs
from test_scaling import needs_data, needs_dvc, project, python, tiny_params, write_params



def square_or_fail(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative input {x}")
    return x * x


def test_run_jobs_keeps_the_order_of_jobs_and_raises_a_failing_job():
    assert run_jobs(square_or_fail, [(i,) for i in range(5)], workers=1) == [0, 1, 4, 9, 16]
    assert run_jobs(square_or_fail, [(i,) for i in range(5)], workers=2) == [0, 1, 4, 9, 16]
    with pytest.raises(ValueError, match="negative input -3"):
        run_jobs(square_or_fail, [(1,), (-3,), (2,)], workers=2)


def test_progress_reports_each_finished_job_with_elapsed_time_and_time_left(capsys):
    assert run_jobs(square_or_fail, [(i,) for i in range(3)], workers=2, desc="train@x") == [0, 1, 4]
    out = capsys.readouterr()
    assert out.err == ""   # stderr stays for errors
    lines = out.out.strip().splitlines()   # not a terminal: one line per finished job
    assert [line.split(",")[0] for line in lines] == ["train@x: 1/3 runs", "train@x: 2/3 runs", "train@x: 3/3 runs"]
    assert all(re.search(r"\d\d:\d\d elapsed, (\d\d:\d\d|\d+:\d\d:\d\d) left$", line) for line in lines)
    assert lines[-1].endswith("00:00 left")
    run_jobs(square_or_fail, [(1,)], desc=None)
    assert capsys.readouterr().out == ""


@needs_data
@needs_dvc
def test_sweep_stage_gives_the_same_results_with_one_or_two_workers(tmp_path):
    params = tiny_params(**{"seeds": [0, 1], "sweep.methods": ["snip"], "sweep.sparsities": [0.9],
                            "methods": ["random"], "reprs": ["sp", "ip"], "train.workers": 1})
    repo = project(tmp_path / "proj", params)
    for stage in (["pipeline.prepare"], ["pipeline.init"]):
        python(stage, repo)
    outputs = {}
    for workers in (1, 2):
        params["train"]["workers"] = workers
        write_params(repo, params)
        python(["pipeline.sweep", "--sparsity", "0.9"], repo)
        rows = json.loads((repo / "results" / "sweep" / "s0.9.json").read_text())
        outputs[workers] = [{k: v for k, v in r.items() if not is_timing(k)} for r in rows]
    assert len(outputs[1]) == 4          # snip x 2 seeds x (sp, ip)
    assert [(r["seed"], r["repr"]) for r in outputs[1]] == [(0, "sp"), (0, "ip"), (1, "sp"), (1, "ip")]
    assert outputs[1] == outputs[2]


@needs_data
@needs_dvc
def test_train_stage_gives_the_same_runs_with_one_or_two_workers(tmp_path):
    """The runs of a train stage go to a pool of train.workers processes; each run uses
    train.threads // train.workers threads (1 here either way), wherever it runs."""
    import torch
    params = tiny_params(**{"seeds": [0, 1], "methods": ["rigl"], "reprs": ["sp", "ip"]})
    repo = project(tmp_path / "proj", params)
    for stage in (["pipeline.prepare"], ["pipeline.init"]):
        python(stage, repo)
    outputs = {}
    for workers in (1, 2):
        params["train"].update(workers=workers, threads=workers)
        write_params(repo, params)
        python(["pipeline.train", "--method", "rigl"], repo)
        runs = {}
        for rs in ("sp-s0", "sp-s1", "ip-s0", "ip-s1"):
            metrics = json.loads((repo / "results" / "runs" / "rigl" / rs / "metrics.json").read_text())
            state, _ = pins.run_file(repo / "results" / "models" / "rigl" / rs / "final.safetensors")
            runs[rs] = ({k: v for k, v in metrics.items() if not is_timing(k)}, state)
        outputs[workers] = runs
    for rs, (metrics, state) in outputs[1].items():
        assert outputs[2][rs][0] == metrics, rs
        assert all(torch.equal(state[k], outputs[2][rs][1][k]) for k in state), rs
