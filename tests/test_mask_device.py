"""Masks are scored on the training device (``train.device``) and handed back on the CPU.

A CPU-only machine cannot run a GPU, so the device is checked through a spy: the model is
moved to whatever ``resolve_device`` gives for the run's setting, and back to the CPU after;
and the masks equal, bit for bit, those of calling ``find_masks`` directly on the CPU."""
import copy

import pytest
import torch

import ip.experiment as experiment
from ip.experiment import PreparedData, RunSpec, build_model, compute_masks, make_train_fn, pruning_batches
from ip.models import get_model
from ip.pruning import find_masks, method_info
from ip.train import TrainConfig

METHOD_OPTIONS = {
    "random": None,
    "snip": None,
    "grasp": None,
    "synflow": {"rounds": 5},
    "lt": {"rounds": 2, "rewind_step": 4},   # epoch 1 of 4 steps
    "oneshot": None,
}


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g)
    xt, yt = torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g)
    return PreparedData(x, y, xt, yt, x[:16], y[:16], num_classes=10, eval_samples=16)


def spec_of(method, repr_="sp", device="cpu"):
    return RunSpec(method=method, repr=repr_, seed=0, sparsity=0.9, model="resnet20", width=4,
                   prune_batch_size=32, options=METHOD_OPTIONS[method],
                   train=TrainConfig(epochs=2, batch_size=16, lr=0.05, device=device))


def model_of(spec, data):
    torch.manual_seed(spec.seed)
    init = get_model(spec.model, data.num_classes, 1, spec.width).state_dict()
    return build_model(spec, init, data.num_classes, 1)


def direct_masks(spec, model, data):
    """find_masks called on the CPU with the arguments compute_masks gives it."""
    info = method_info(spec.method)
    return find_masks(spec.method, model, spec.sparsity,
                      batches=pruning_batches(spec, data) if info.needs_data else None,
                      scope=spec.scope, distribution=spec.distribution, fb_in_budget=spec.interspace.fb_in_budget,
                      generator=torch.Generator().manual_seed(40_009 + spec.seed),
                      train_fn=make_train_fn(spec, data) if info.needs_training else None,
                      options=spec.options, epochs=spec.train.epochs, input_shape=data.input_shape)


@pytest.mark.parametrize("repr_", ["sp", "ip"])
@pytest.mark.parametrize("method", list(METHOD_OPTIONS))
def test_masks_equal_the_cpu_path_bit_for_bit(method, repr_, data):
    spec = spec_of(method, repr_)
    model = model_of(spec, data)
    before = copy.deepcopy(model.state_dict())
    masks, start = compute_masks(spec, model, data)
    expected_masks, expected_start = direct_masks(spec, model_of(spec, data), data)
    assert masks.keys() == expected_masks.keys()
    for name, mask in masks.items():
        assert mask.device.type == "cpu" and mask.dtype == torch.bool
        assert torch.equal(mask, expected_masks[name]), name
    assert (start is None) == (expected_start is None)
    if start is not None:
        for key, value in start.items():
            assert value.device.type == "cpu" and torch.equal(value, expected_start[key]), key
    assert all(p.device.type == "cpu" for p in model.parameters())
    for key, value in model.state_dict().items():   # the model keeps its weights
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("setting", ["cpu", "auto"])
def test_scoring_runs_on_the_resolved_training_device(setting, data, monkeypatch):
    resolved = torch.device("cpu")   # stands for the training device; identity tells it from "cpu"
    asked = []

    def fake_resolve(name):
        asked.append(name)
        return resolved

    monkeypatch.setattr(experiment, "resolve_device", fake_resolve)
    spec = spec_of("snip", device=setting)
    model = model_of(spec, data)
    moves = []
    real_to = model.to

    def spy_to(*args, **kwargs):
        moves.append(args[0] if args else kwargs.get("device"))
        return real_to(*args, **kwargs)

    model.to = spy_to
    seen_by_scoring = []
    real_find = experiment.find_masks

    def spy_find(method, scored_model, *args, **kwargs):
        seen_by_scoring.append(len(moves))
        return real_find(method, scored_model, *args, **kwargs)

    monkeypatch.setattr(experiment, "find_masks", spy_find)
    masks, _ = compute_masks(spec, model, data)
    assert asked == [setting]
    assert moves[0] is resolved and seen_by_scoring == [1]   # moved before scoring began
    assert str(moves[-1]) == "cpu"                            # and handed back on the CPU
    assert all(m.device.type == "cpu" for m in masks.values())


def test_find_masks_returns_on_the_model_device_after_training_elsewhere(data):
    """A train_fn may leave the model on another device (the experiment's own moves it to
    the CPU); find_masks puts the model back and returns masks and state where it came."""
    spec = spec_of("lt")
    model = model_of(spec, data)
    where = next(model.parameters()).device
    masks, start = direct_masks(spec, model, data)
    assert all(m.device == where for m in masks.values())
    assert all(v.device == where for v in start.values() if isinstance(v, torch.Tensor))
    assert all(p.device == where for p in model.parameters())
