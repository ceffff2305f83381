"""Adding a pruning method is one module in ip/pruning/ with one registered function and its
options model: params.yaml validates its section, and the stages run it, with no other file
touched.  The toy method keeps the entries of largest |theta| ** power, power being its option."""
from __future__ import annotations

import json

import pytest

from test_scaling import needs_data, needs_dvc, project, python, tiny_params, write_params

TOY_METHOD = '''
from pydantic import Field

from .pai import magnitude_scores
from .registry import MethodOptions, register_method, select_top


class ToyOptions(MethodOptions):
    power: float = Field(1.0, gt=0.0, description="scores are |theta| ** power")


@register_method("toy", "pai", "largest |theta| ** power (a test method)", options=ToyOptions)
def _toy(model, req):
    scores = {n: s ** req.options.power for n, s in magnitude_scores(model).items()}
    return select_top(scores, req.keep_total, req.scope), None
'''


@pytest.mark.slow
@needs_data
@needs_dvc
def test_a_method_in_one_new_module_runs_through_the_stages(tmp_path):
    params = tiny_params(**{"methods": ["toy"], "reprs": ["sp", "ip"], "sparsity": 0.9})
    params["prune"]["toy"] = {"power": 2.0}
    repo = project(tmp_path / "proj", params, commit=False)
    (repo / "ip" / "pruning" / "toy.py").write_text(TOY_METHOD)
    python(["pipeline.prepare"], repo)
    python(["pipeline.init"], repo)
    python(["pipeline.train", "--method", "toy"], repo)
    metrics = json.loads((repo / "results" / "runs" / "toy" / "ip-s0" / "metrics.json").read_text())
    assert metrics["method"] == "toy" and abs(metrics["sparsity_actual"] - 0.9) < 1e-3
    # its option is validated like every other key
    params["prune"]["toy"] = {"power": -1.0}
    write_params(repo, params)
    proc = python(["pipeline.train", "--method", "toy"], repo, check=False)
    assert proc.returncode == 2 and "prune.toy.power: -1.0 must be above 0.0" in proc.stderr

