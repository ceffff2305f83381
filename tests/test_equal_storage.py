"""The third representation, ``ip_eq``: IP with its filter-basis entries charged to its budget,
so that it stores exactly as many numbers as SP at the same sparsity (STUDY_SPEC section 6)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ip.experiment import RunSpec, build_model, compute_masks, initial_state
from ip.interspace import basis_parameters
from ip.masks import cost_report, fb_overhead_params
from ip.train import TrainConfig
from study.params import validate
from test_measurement import synthetic_data

ROOT = Path(__file__).resolve().parents[1]


def spec(repr_: str, method: str = "snip", sparsity: float = 0.9) -> RunSpec:
    return RunSpec(method=method, repr=repr_, seed=0, sparsity=sparsity, width=4,
                   train=TrainConfig(epochs=1, batch_size=64), prune_batch_size=64)


def masks_and_costs(s: RunSpec, data):
    model = build_model(s, initial_state("resnet20", 4, 10, 1, 0), 10, 1)
    masks, _ = compute_masks(s, model, data)
    return model, masks, cost_report(model, masks, data.input_shape)


@pytest.mark.parametrize("method", ["snip", "random", "rigl"])
def test_ip_eq_stores_what_sp_stores_and_ip_stores_more(method):
    data = synthetic_data()
    _, _, sp = masks_and_costs(spec("sp", method), data)
    ip_model, _, ip = masks_and_costs(spec("ip", method), data)
    eq_model, _, eq = masks_and_costs(spec("ip_eq", method), data)
    fb = fb_overhead_params(eq_model)
    assert fb > 0 and basis_parameters(eq_model)                        # an interspace network, with its FBs
    assert ip["kept_params"] == sp["kept_params"]                        # the paper's accounting: equal sparsity
    assert ip["stored_params"] == sp["stored_params"] + fb                # ... and the FBs on top
    assert eq["kept_params"] == sp["kept_params"] - fb                   # equal storage: FBs paid from the budget
    assert eq["stored_params"] == sp["stored_params"]


def test_ip_eq_is_refused_when_the_fb_entries_alone_exceed_the_budget():
    from pipeline.common import budget_problem
    data = synthetic_data()
    init = initial_state("resnet20", 4, 10, 1, 0)
    assert budget_problem(spec("ip_eq", sparsity=0.9), init, data) is None
    assert budget_problem(spec("ip", sparsity=0.999), init, data) is None   # FBs as overhead: always feasible
    problem = budget_problem(spec("ip_eq", sparsity=0.999), init, data)
    assert problem and "fewer than the" in problem and "filter-basis entries" in problem


def test_dense_runs_have_no_equal_storage_twin():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["reprs"] = ["sp", "ip", "ip_eq"]
    p = validate(raw)
    assert p.reprs_of("dense") == ["sp", "ip"]
    assert p.reprs_of("snip") == ["sp", "ip", "ip_eq"]


def test_an_unknown_representation_is_refused():
    with pytest.raises(ValueError, match="repr must be one of"):
        spec("ip_fair")
