"""What the study measures is what the paper means (STUDY_SPEC section 3): evaluation after a
BN recalibration, a lottery ticket's schedule continued from its rewind step, disconnected
networks detected."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ip.connectivity import connectivity_report
from ip.data import PreparedData, fashion_mnist, fixed_subset
from ip.experiment import RunSpec, build_model, compute_masks, initial_state, train_run
from ip.metrics.batchnorm import preserved_state
from ip.pruning import find_masks
from ip.train import TrainConfig

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
needs_data = pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")


def synthetic_data(n: int = 256) -> PreparedData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 12, 12, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return PreparedData(x, y, x[:64], y[:64], x[:32], y[:32], num_classes=10, eval_samples=64)


def real_data(n_train: int, n_test: int) -> PreparedData:
    ds = fashion_mnist()
    idx, t_idx = fixed_subset(60_000, n_train, 0), fixed_subset(10_000, n_test, 2)
    return PreparedData(ds.x_train[idx], ds.y_train[idx], ds.x_test[t_idx], ds.y_test[t_idx], ds.x_train[idx[:64]],
                        ds.y_train[idx[:64]], num_classes=10, eval_samples=256)


def spec_of(method: str, epochs: int, **kw) -> RunSpec:
    return RunSpec(method=method, repr="sp", seed=0, sparsity=kw.pop("sparsity", 0.9), width=kw.pop("width", 4),
                   train=TrainConfig(epochs=epochs, batch_size=64, lr=0.05, **kw.pop("train", {})),
                   gf_every_epoch=False, **kw)


@pytest.mark.parametrize("rewind_step, epochs_trained", [(4, [2, 3]), (2, [1, 2, 3])])
def test_lottery_ticket_continues_the_schedule_from_its_rewind_step(rewind_step, epochs_trained):
    data = synthetic_data()   # 256 images in batches of 64: 4 steps an epoch
    dense_spec = spec_of("dense", epochs=3)
    lt_spec = spec_of("lt", epochs=3, options={"rounds": 1, "rewind_step": rewind_step})
    init = initial_state("resnet20", 4, 10, 1, 0)
    dense = build_model(dense_spec, init, 10, 1)
    _, dense_history, _ = train_run(dense_spec, dense, compute_masks(dense_spec, dense, data)[0], data)
    ticket = build_model(lt_spec, init, 10, 1)
    masks, start = compute_masks(lt_spec, ticket, data)
    ticket.load_state_dict(start)
    metrics, history, _ = train_run(lt_spec, ticket, masks, data)
    # the ticket trains the rest of the same schedule (from step 2: the last two batches of
    # epoch 1 on): the same learning rates as the uninterrupted run, not a restart from lr 0.1
    assert [r["epoch"] for r in history] == epochs_trained
    assert [r["lr"] for r in history] == [r["lr"] for r in dense_history[-len(epochs_trained):]]
    assert history[-1]["lr"] < dense_spec.train.lr
    # its gradient flow at the start is at the rewind point, not at initialisation
    assert metrics["gf_rewind"] > 0 and metrics["gf_init"] != metrics["gf_init"]
    assert metrics["start_step"] == rewind_step


def batch_statistics_accuracy(model: torch.nn.Module, data: PreparedData) -> float:
    """Accuracy with BN using each test batch's own statistics (the model is left unchanged)."""
    with preserved_state(model), torch.no_grad():
        model.train()
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in data.eval_batches("test", batch_size=500))
    return correct / data.x_test.shape[0]


@needs_data
def test_after_gmp_recalibrated_eval_accuracy_matches_batch_statistics():
    data = real_data(2048, 1000)
    spec = spec_of("gmp", epochs=3, sparsity=0.95, options={"start_fraction": 0.1, "end_fraction": 0.75,
                                                             "interval": 5})
    model = build_model(spec, initial_state("resnet20", 4, 10, 1, 0), 10, 1)
    metrics, _, _ = train_run(spec, model, compute_masks(spec, model, data)[0], data)
    assert metrics["test_acc"] > 0.3   # far from chance (0.1): the evaluation sees a trained network (0.45-0.6 seen)
    assert abs(metrics["test_acc"] - batch_statistics_accuracy(model, data)) <= 0.01


@needs_data
def test_snip_at_0995_on_resnet20_width8_is_detected_as_disconnected():
    ds = fashion_mnist()
    idx = fixed_subset(60_000, 256, 0)
    torch.manual_seed(0)
    model = build_model(spec_of("snip", 1, sparsity=0.995, width=8), initial_state("resnet20", 8, 10, 1, 0), 10, 1)
    masks, _ = find_masks("snip", model, 0.995, batches=[(ds.x_train[idx], ds.y_train[idx])])
    report = connectivity_report(model, masks, (1, 28, 28))
    assert report["disconnected"] and report["unconnected_outputs"] == 10
    dense_report = connectivity_report(model, None, (1, 28, 28))
    assert not dense_report["disconnected"] and dense_report["unconnected_outputs"] == 0
