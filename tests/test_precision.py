"""Training precision (fp32 / bf16 autocast) and memory format (channels_last) of the Trainer,
and the GPU check's behaviour on a machine without CUDA."""
import copy
import os
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest
import torch
import yaml

from ip.data import TensorLoader
from ip.interspace import to_interspace
from ip.masks import prunable_parameters
from ip.models import get_model
from ip.pruning import find_masks
from ip.train import TrainConfig, Trainer, autocast_context

ROOT = Path(__file__).resolve().parents[1]


def tiny(representation="sp"):
    torch.manual_seed(0)
    model = get_model("resnet20", num_classes=10, in_channels=1, width=4)
    return to_interspace(model) if representation == "ip" else model


def loader(seed=0):
    g = torch.Generator().manual_seed(123)
    x, y = torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g)
    return TensorLoader(x, y, batch_size=16, seed=seed, augment=False)


def train(model, masks, epochs=2, **cfg):
    trainer = Trainer(model, masks, loader(), TrainConfig(epochs=epochs, batch_size=16, lr=0.05, **cfg))
    trainer.fit()
    return trainer


def random_masks(model):
    return find_masks("random", model, 0.9, generator=torch.Generator().manual_seed(3))[0]


def small_ip():
    """A two-conv IP net: what the compile tests need (W = lambda F^T, BN, ReLU, masks) in a graph
    that compiles in seconds on a fresh machine, unlike ResNet-20's."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1, bias=False), torch.nn.BatchNorm2d(8),
                              torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1, bias=False),
                              torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 10))
    return to_interspace(net)


def assert_same_function_and_masked(reference, model, trainer):
    """``model`` (trained by ``trainer``) has ``reference``'s floats to round-off, and zeros at
    every pruned entry."""
    for (name, a), b in zip(reference.state_dict().items(), model.state_dict().values()):
        if a.is_floating_point():
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=name)
    params = prunable_parameters(model)
    for name, mask in trainer.masks.items():
        assert torch.all(params[name][~mask] == 0), name


def test_defaults_are_fp32_contiguous_and_strict():
    cfg = TrainConfig()
    assert cfg.precision == "fp32" and cfg.channels_last is False and cfg.compile is False
    with pytest.raises(pydantic.ValidationError):
        TrainConfig(precision="fp16")
    with pytest.raises(pydantic.ValidationError):
        TrainConfig(channels_last=1)     # strict: no int-as-bool


def test_params_yaml_and_presets_name_both_settings():
    for path in [ROOT / "params.yaml", *sorted((ROOT / "presets").glob("*.yaml"))]:
        train = yaml.safe_load(path.read_text())["train"]
        assert train["precision"] in ("fp32", "bf16") and isinstance(train["channels_last"], bool), path


def test_fp32_context_does_nothing():
    assert not torch.is_autocast_enabled("cpu")
    with autocast_context(torch.device("cpu"), "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast_context(torch.device("cpu"), "bf16"):
        assert torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError):
        autocast_context(torch.device("cpu"), "fp16")


def test_explicit_fp32_trains_bit_for_bit_like_the_default():
    default = tiny()
    masks = random_masks(default)
    explicit = copy.deepcopy(default)
    train(default, masks)
    train(explicit, masks, precision="fp32", channels_last=False)
    for (name, a), b in zip(default.state_dict().items(), explicit.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("representation", ["sp", "ip"])
def test_bf16_autocasts_forward_but_keeps_fp32_weights_and_optimizer(representation):
    model = tiny(representation)
    masks = random_masks(model)
    logits_dtypes = []
    model.fc.register_forward_hook(lambda module, inputs, output: logits_dtypes.append(output.dtype))
    trainer = train(model, masks, precision="bf16")
    assert logits_dtypes and all(d == torch.bfloat16 for d in logits_dtypes)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    for state in trainer.optimizer.state.values():
        assert state["momentum_buffer"].dtype == torch.float32
    params = prunable_parameters(model)
    for name, mask in trainer.masks.items():
        assert torch.all(params[name][~mask] == 0), name
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # evaluation outside the Trainer is plain fp32
    logits_dtypes.clear()
    model.eval()
    with torch.no_grad():
        model(torch.randn(4, 1, 8, 8))
    assert logits_dtypes == [torch.float32]


@pytest.mark.parametrize("representation", ["sp", "ip"])
def test_channels_last_trains_the_same_function(representation):
    contiguous = tiny(representation)
    masks = random_masks(contiguous)
    channels_last = copy.deepcopy(contiguous)
    inputs_seen = []
    channels_last.conv1.register_forward_pre_hook(lambda module, inputs: inputs_seen.append(inputs[0]))
    # one epoch (two steps): this tiny BN net amplifies round-off chaotically over more steps
    train(contiguous, masks, epochs=1)
    trainer = train(channels_last, masks, epochs=1, channels_last=True)
    assert inputs_seen and all(x.is_contiguous(memory_format=torch.channels_last) for x in inputs_seen)
    four_d = [p for p in channels_last.parameters() if p.dim() == 4]
    assert four_d and all(p.is_contiguous(memory_format=torch.channels_last) for p in four_d)
    assert trainer.optimizer.param_groups[0]["params"][0] is next(channels_last.parameters())
    # another memory layout changes the order of float sums only
    assert_same_function_and_masked(contiguous, channels_last, trainer)


def test_compiled_training_step_trains_the_same_function():
    """train.compile runs the step through torch.compile (IP: W = lambda F^T inside the graph);
    the masks stay enforced by the eager hooks, and the trained weights match the eager run's
    to round-off (fused kernels change the order of float sums only)."""
    eager = small_ip()
    masks = random_masks(eager)
    compiled = copy.deepcopy(eager)
    train(eager, masks, epochs=1)
    trainer = train(compiled, masks, epochs=1, compile=True)
    assert trainer.train_module is not compiled and trainer.model is compiled   # checkpoints keep plain keys
    assert trainer.train_module._orig_mod is compiled
    assert_same_function_and_masked(eager, compiled, trainer)


def test_compiled_training_step_keeps_rigl_updates_working():
    """RigL reads the dense gradients that the enforcer's eager hooks keep; under compile they
    still arrive, the masks move, and every layer keeps its count."""
    from ip.pruning import make_train_hook
    model = small_ip()
    masks, _ = find_masks("rigl", model, 0.9)
    start = {n: m.clone() for n, m in masks.items()}

    def factory(m, enforcer, total_steps, optimizer):
        return make_train_hook("rigl", m, masks, enforcer, total_steps=total_steps, sparsity=0.9,
                               options={"interval": 1}, optimizer=optimizer)

    trainer = Trainer(model, masks, loader(), TrainConfig(epochs=2, batch_size=16, lr=0.05, compile=True),
                      hook_factory=factory, keep_dense_grad=True)
    trainer.fit()
    final = trainer.masks
    assert {n: int(m.sum()) for n, m in final.items()} == {n: int(m.sum()) for n, m in start.items()}
    assert any(not torch.equal(final[n], start[n]) for n in start)     # the updates regrew entries
    params = prunable_parameters(model)
    for name, mask in final.items():
        assert torch.all(params[name][~mask] == 0), name


def test_checkpoint_of_a_bf16_channels_last_run_resumes(tmp_path):
    def make(checkpoint):
        model = tiny("ip")
        return model, Trainer(model, random_masks(model), loader(),
                              TrainConfig(epochs=2, batch_size=16, lr=0.05, precision="bf16", channels_last=True),
                              checkpoint=checkpoint)

    whole_model, whole = make(None)
    whole.fit()
    part_model, part = make(tmp_path / "run.pt")
    part.fit(end_epoch=1)
    resumed_model, resumed = make(tmp_path / "run.pt")
    resumed.fit()
    for (name, a), b in zip(whole_model.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.equal(a, b), name


def test_gpu_check_without_cuda_says_so_and_succeeds():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and "no CUDA" in lines[0]


# -- fp64: the network and its data in float64 (the pinned study's precision) -------------------

def _prepared(n=64):
    from ip.data import PreparedData
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)
    return PreparedData(x, y, x[:32].clone(), y[:32].clone(), x[:16].clone(), y[:16].clone(), num_classes=10,
                        eval_samples=32)


@pytest.mark.parametrize("repr_", ["sp", "ip"])
def test_fp64_runs_hold_network_and_data_in_float64_from_the_same_initial_values(repr_):
    from ip.experiment import RunSpec, build_model, initial_state, run_data, run_experiment
    spec = RunSpec("snip", repr_, 0, 0.5, width=4, train=TrainConfig(epochs=1, batch_size=16, precision="fp64"),
                   prune_batch_size=16, augment=False)
    init = initial_state("resnet20", 4, 10, 1, 0)
    model = build_model(spec, init, 10, 1)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    # the same initial values as fp32 (held exactly in double precision)
    fp32 = build_model(RunSpec("snip", repr_, 0, 0.5, width=4), init, 10, 1)
    assert all(torch.equal(a.double(), b) for a, b in zip(fp32.state_dict().values(), model.state_dict().values())
               if a.is_floating_point())
    data = _prepared()
    cast = run_data(spec, data)
    assert cast.x_train.dtype == cast.x_test.dtype == cast.x_metric.dtype == torch.float64
    assert run_data(spec, data) is cast and data.x_train.dtype == torch.float32   # one copy, the original kept
    metrics, _ = run_experiment(spec, init, data)
    assert 0.0 <= metrics["test_acc"] <= 1.0 and metrics["kept_params"] > 0


def test_fp64_is_refused_for_streamed_images():
    from ip.data import StreamedData
    data = StreamedData("tiny_imagenet", "/nowhere", [], [], [], [], torch.zeros(1, 3, 8, 8), torch.zeros(1),
                        num_classes=2, image_size=8)
    assert data.astype(torch.float32) is data
    with pytest.raises(ValueError, match="fp64 needs an in-memory dataset"):
        data.astype(torch.float64)


@pytest.mark.parametrize("fb_init", ["spatial", "dct"])
def test_channels_last_ip_builds_its_weight_in_channels_last(fb_init):
    """W = lambda F^T comes out in the model's memory format, equal to the contiguous W, with the
    same gradients: each conv then needs no layout conversion."""
    torch.manual_seed(0)
    model = to_interspace(get_model("resnet20", num_classes=10, in_channels=1, width=4), fb_init=fb_init)
    conv = model.layer1[0].conv1
    plain_w = conv.weight.detach().clone()
    model.to(memory_format=torch.channels_last)
    w = conv.weight
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    assert torch.allclose(w, plain_w, atol=1e-6)
    w.sum().backward()
    coef = conv.parametrizations.weight.original
    fb = conv.parametrizations.weight[0].fb.basis
    # d(sum W)/d lambda[o, n, i] = sum_m F[m, n]: the same for every filter
    assert torch.allclose(coef.grad, fb.sum(0).reshape(1, 1, 3, 3).expand_as(coef), atol=1e-6)


def test_final_evaluation_reusing_the_last_epochs_recalibration_and_gf_changes_no_result(monkeypatch):
    """The last epoch's record is taken on the final weights and masks; reusing its BN
    recalibration and gradient flow gives exactly the metrics of recomputing them."""
    import ip.experiment as experiment
    from ip.experiment import RunSpec, initial_state, is_timing, run_experiment
    spec = RunSpec("rigl", "ip", 0, 0.5, width=4, train=TrainConfig(epochs=2, batch_size=16), augment=False,
                   options={"interval": 1})
    init = initial_state("resnet20", 4, 10, 1, 0)
    calls = []
    recalibrate = experiment.recalibrate
    monkeypatch.setattr(experiment, "recalibrate", lambda *a: calls.append(1) or recalibrate(*a))
    reused, _ = run_experiment(spec, init, _prepared())
    assert len(calls) == 2   # once per epoch, none after training
    call = experiment.EpochEvaluator.__call__

    def forgetful(self, *args):
        record = call(self, *args)
        self.last_epoch = None   # as if the last epoch had not been measured here
        return record
    monkeypatch.setattr(experiment.EpochEvaluator, "__call__", forgetful)
    recomputed, _ = run_experiment(spec, init, _prepared())
    assert len(calls) == 2 + 3
    def results(metrics):   # bit for bit (same process), NaN as None so that it compares equal
        return {k: None if isinstance(v, float) and v != v else v for k, v in metrics.items() if not is_timing(k)}
    assert results(reused) == results(recomputed)
