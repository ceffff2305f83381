"""The methods that start by training dense (lottery tickets, one-shot pruning) take that
training from the dense run of the same seed and representation (`ip.pruning.DenseRun`) in
the pipeline; their masks, start weights and trained metrics are exactly those of training
it again."""
from __future__ import annotations

import math

import pytest
import torch

from ip.experiment import DenseRun, KeepState, RunSpec, build_model, compute_masks, initial_state, is_timing, train_run
from ip.pruning import find_masks
from ip.train import TrainConfig
from test_measurement import synthetic_data

REWIND = 3   # inside the first epoch (4 steps an epoch)


def spec(method: str, repr_: str, **options) -> RunSpec:
    return RunSpec(method=method, repr=repr_, seed=0, sparsity=0.9, width=4, options=options or None,
                   train=TrainConfig(epochs=2, batch_size=64, lr=0.05, bn_recalibration_batches=2),
                   gf_every_epoch=True)


def dense_run(repr_: str, data) -> DenseRun:
    """The dense run as the pipeline makes it: per-epoch evaluation and gradient flow, and
    its weights kept after the rewind step."""
    s = spec("dense", repr_)
    model = build_model(s, initial_state("resnet20", 4, 10, 1, 0), 10, 1)
    masks, _ = compute_masks(s, model, data)
    keep = KeepState(REWIND)
    train_run(s, model, masks, data, step_end=keep)
    assert keep.state is not None
    return DenseRun(model.state_dict(), REWIND, keep.state)


def comparable(record: dict) -> dict:
    """A metrics record without wall times, NaN (a quantity a run does not have) as None."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items() if not is_timing(k)}


def trained(s: RunSpec, data, dense: DenseRun | None):
    model = build_model(s, initial_state("resnet20", 4, 10, 1, 0), 10, 1)
    masks, start = compute_masks(s, model, data, dense_run=dense)
    model.load_state_dict(start)
    metrics, history, final = train_run(s, model, masks, data)
    return masks, start, comparable(metrics), [comparable(r) for r in history]


@pytest.mark.parametrize("repr_", ["sp", "ip"])
@pytest.mark.parametrize("method, options", [("lt", {"rounds": 2, "rewind_step": REWIND}), ("oneshot", {})])
def test_reusing_the_dense_run_gives_what_training_it_again_gives(method, options, repr_):
    data = synthetic_data()
    s = spec(method, repr_, **options)
    masks_a, start_a, metrics_a, history_a = trained(s, data, None)
    masks_b, start_b, metrics_b, history_b = trained(s, data, dense_run(repr_, data))
    assert masks_a.keys() == masks_b.keys()
    assert all(torch.equal(masks_a[k], masks_b[k]) for k in masks_a)
    params = [k for k in start_a if "running" not in k and "num_batches" not in k]
    assert all(torch.equal(start_a[k], start_b[k]) for k in params)
    assert metrics_a == metrics_b
    assert history_a == history_b


def test_a_dense_run_kept_at_another_step_is_refused():
    data = synthetic_data()
    s = spec("lt", "sp", rounds=1, rewind_step=REWIND + 1)
    model = build_model(s, initial_state("resnet20", 4, 10, 1, 0), 10, 1)
    with pytest.raises(ValueError, match=f"after step {REWIND}, but the rewind point is step {REWIND + 1}"):
        compute_masks(s, model, data, dense_run=dense_run("sp", data))


def test_dense_run_is_only_for_methods_that_start_dense():
    model = build_model(spec("snip", "sp"), initial_state("resnet20", 4, 10, 1, 0), 10, 1)
    with pytest.raises(ValueError, match="snip does not start from a dense run"):
        find_masks("snip", model, 0.9, batches=[(torch.zeros(2, 1, 12, 12), torch.zeros(2, dtype=torch.long))],
                   dense_run=DenseRun({}, 0, {}))
