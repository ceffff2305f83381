"""Empty lists switch off the sweep, the ablation and the controls: no stage of theirs is
defined or run, and aggregate, figures and the report are written without them."""
import re

import pandas as pd
import pytest

from test_scaling import dvc, needs_data, needs_dvc, project, tiny_params


@pytest.mark.slow
@needs_data
@needs_dvc
def test_a_study_without_sweep_ablation_and_controls_runs_to_its_report(tmp_path):
    params = tiny_params(**{"methods": ["random"], "reprs": ["sp", "ip"], "sweep.sparsities": [],
                            "ablation.fb_inits": [], "ablation.shares": [], "controls.shuffle.methods": [],
                            "controls.lr.methods": [], "trainability.hessian_methods": ["dense"],
                            "theorem1.general_fb_init": None})
    repo = project(tmp_path / "proj", params)
    stages = dvc("stage", "list", "--name-only", cwd=repo).stdout.split()
    assert not [s for s in stages if s.startswith(("sweep@", "shuffle@", "lr_control@"))], stages
    out = dvc("repro", cwd=repo, timeout=600)
    ran = re.findall(r"Running stage '([^']+)'", out.stdout + out.stderr)
    assert ran[0] == "prepare" and ran[-2:] == ["figures", "report"] and "aggregate" in ran
    assert "ablation: 0/" not in out.stdout and (repo / "results" / "ablation" / "runs.json").read_text().strip() == "[]"
    for table in ("sweep", "ablation", "controls"):
        assert pd.read_csv(repo / "results" / f"{table}.csv").empty, table
    summary = pd.read_csv(repo / "results" / "summary.csv")
    assert set(summary["method"]) == {"dense", "random"}
    report = (repo / "paper_figures" / "REPORT.md").read_text()
    assert "C1" in report and "K1" in report
    assert "| sweep: switched off | `sweep.sparsities: []` in params.yaml |" in report
    assert "controls: switched off" in report and "Missing" not in report   # off is not missing
