"""BN during measurement and BN recalibration (STUDY_SPEC section 3).

References are written from the definitions with plain autograd / plain BN arithmetic
and share no code with ip.metrics.batchnorm.
"""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ip.interspace import to_interspace
from ip.masks import MaskEnforcer, masks_from_scores, prunable_parameters
from ip.metrics import (DEFAULT_BN_MODE, HessianOperator, full_gradient, gradient_flow, hessian_summary,
                        recalibrate_bn, subset_loss, trainable_coordinates)
from ip.metrics.batchnorm import bn_context, resolve_bn_mode
from ip.models import get_model


def data(n, seed, hw=8, channels=1, classes=10):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, hw, hw, generator=g), torch.randint(0, classes, (n,), generator=g)


def bn_layers(model):
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def snapshot(model):
    """Everything a measurement could touch: parameters, buffers, flags, BN momenta."""
    return {
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "buffers": {n: b.clone() for n, b in model.named_buffers()},
        "flags": {n: m.training for n, m in model.named_modules()},
        "momentum": {n: m.momentum for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)},
    }


def assert_same_tensors(before, after):
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), name


def perturb_running_stats(model, seed=0):
    """Non-default running statistics, so that a reset to (0, 1) would be noticed."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in bn_layers(model):
            bn.running_mean.copy_(torch.randn(bn.running_mean.shape, generator=g) + 3.0)
            bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=g) * 4 + 2.0)
            bn.num_batches_tracked.fill_(11)


def tiny_ip_pruned(seed=0):
    torch.manual_seed(seed)
    net = to_interspace(get_model("resnet20", 10, 1, 4), fb_init="dct")
    g = torch.Generator().manual_seed(seed + 1)
    scores = {n: torch.rand(p.shape, generator=g) for n, p in prunable_parameters(net).items()}
    masks = masks_from_scores(scores, 0.7)
    MaskEnforcer(net, masks).remove()
    return net, masks


def test_mode_names_and_aliases():
    assert DEFAULT_BN_MODE == "batch"
    assert [resolve_bn_mode(m) for m in ("batch", "train", "running", "eval")] == ["batch", "batch", "running",
                                                                                   "running"]
    with pytest.raises(ValueError, match="bn_mode"):
        resolve_bn_mode("batch_stats")
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with pytest.raises(ValueError):
        with bn_context(net, "training"):
            pass


def test_dense_resnet20_gf_at_init_is_moderate_in_batch_mode_and_matches_autograd():
    """Batch statistics at init: GF ~ 10, stable across seeds (running stats give 1e3..1e4)."""
    x, y = data(64, seed=100, hw=28)
    totals = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        model = get_model("resnet20", 10, 1, 8)
        gf = gradient_flow(model, [(x, y)], bn_mode="batch")
        assert gf["bn_mode"] == "batch"
        assert math.isfinite(gf["total"])
        # independent: one training-step gradient over every parameter, buffers restored by hand
        saved = {n: b.clone() for n, b in model.named_buffers()}
        model.train()
        params = list(model.parameters())
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), params)
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(saved[n])
        by_hand = sum(float(g.double().pow(2).sum()) for g in grads)
        assert gf["total"] == pytest.approx(by_hand, rel=1e-6)
        totals.append(gf["total"])
    assert max(totals) / min(totals) < 10, totals


def small_ip_bn_net(seed=0):
    """Two interspace convs with BN, the second in a nested block: small enough for many HVPs."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                        nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU()),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 10))
    return to_interspace(net, fb_init="dct")


def set_flags(net, flags, nested):
    net.train(flags == "train")
    if flags == "mixed":  # a model-level restore (model.train(was_training)) would lose this
        nested.train()


@pytest.mark.parametrize("flags", ["eval", "train", "mixed"])
def test_measuring_in_batch_mode_leaves_the_model_unchanged(flags):
    batches = [data(6, seed=1), data(4, seed=2)]
    net, masks = tiny_ip_pruned()
    perturb_running_stats(net)
    set_flags(net, flags, net.layer2)
    before = snapshot(net)
    gradient_flow(net, batches, masks, bn_mode="batch")
    full_gradient(net, batches, trainable_coordinates(net, masks), bn_mode="train")
    subset_loss(net, batches, bn_mode="batch")
    after = snapshot(net)
    assert_same_tensors(before["params"], after["params"])
    assert_same_tensors(before["buffers"], after["buffers"])
    assert before["flags"] == after["flags"]
    # Hessian-vector products (double backward) on a smaller net
    small = small_ip_bn_net()
    perturb_running_stats(small)
    set_flags(small, flags, small[3])
    before = snapshot(small)
    op = HessianOperator(small, batches, bn_mode="batch")
    op.matvec(np.random.default_rng(0).standard_normal(op.dim))
    summary = hessian_summary(small, batches, top_k=1, tol=0.5, trace_probes=2, slq_probes=1, lanczos_steps=2,
                              bn_mode="batch")
    assert summary["bn_mode"] == "batch" and summary["hvps"] > 3
    after = snapshot(small)
    assert_same_tensors(before["params"], after["params"])
    assert_same_tensors(before["buffers"], after["buffers"])
    assert before["flags"] == after["flags"]


def test_batch_and_running_modes_measure_different_losses():
    """The mode reaches BN: with perturbed running statistics the two losses differ; aliases agree."""
    net, masks = tiny_ip_pruned()
    perturb_running_stats(net)
    batches = [data(8, seed=3)]
    batch = gradient_flow(net, batches, masks, bn_mode="batch")
    running = gradient_flow(net, batches, masks, bn_mode="running")
    assert batch["loss"] != pytest.approx(running["loss"], rel=1e-2)
    assert gradient_flow(net, batches, masks, bn_mode="train")["total"] == batch["total"]
    assert gradient_flow(net, batches, masks, bn_mode="eval")["total"] == running["total"]
    assert running["bn_mode"] == "running"
    with bn_context(net, "batch"):
        with torch.no_grad():
            expected = float(F.cross_entropy(net(batches[0][0]), batches[0][1]))
    assert batch["loss"] == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------------------------------
# recalibration

def test_recalibrate_bn_changes_only_running_statistics():
    net, _ = tiny_ip_pruned()
    perturb_running_stats(net)
    net.eval()
    net.layer1.train()
    net.bn1.momentum = 0.3  # a non-default momentum must survive the cumulative pass
    before = snapshot(net)
    batches = [data(8, seed=s) for s in (5, 6, 7)]
    used = recalibrate_bn(net, iter(batches))  # any iterable, read once
    assert used == 3
    after = snapshot(net)
    assert_same_tensors(before["params"], after["params"])
    assert before["flags"] == after["flags"]
    assert before["momentum"] == after["momentum"] and net.bn1.momentum == 0.3
    for bn in bn_layers(net):
        assert int(bn.num_batches_tracked) == 3
        assert not torch.allclose(bn.running_mean, torch.full_like(bn.running_mean, 3.0), atol=1.0)
    changed = {n for n in before["buffers"] if not torch.equal(before["buffers"][n], after["buffers"][n])}
    assert changed == {n for n in before["buffers"] if n.rsplit(".", 1)[1] in
                       ("running_mean", "running_var", "num_batches_tracked")}
    # cumulative averaging: bn1 sees conv1(x) directly, so its statistics are plain averages
    with torch.no_grad():
        features = [net.conv1(x) for x, _ in batches]
    means = torch.stack([f.mean(dim=(0, 2, 3)) for f in features])
    variances = torch.stack([f.transpose(0, 1).reshape(f.shape[1], -1).var(dim=1, unbiased=True) for f in features])
    assert torch.allclose(net.bn1.running_mean, means.mean(0), rtol=1e-5, atol=1e-6)
    assert torch.allclose(net.bn1.running_var, variances.mean(0), rtol=1e-5, atol=1e-6)


def test_recalibrate_bn_batch_limit_inputs_and_empty():
    net, _ = tiny_ip_pruned()
    perturb_running_stats(net)
    tensors = [data(8, seed=s)[0] for s in (8, 9, 10)]  # bare input tensors are batches too
    assert recalibrate_bn(net, tensors, num_batches=2) == 2
    assert all(int(bn.num_batches_tracked) == 2 for bn in bn_layers(net))
    with torch.no_grad():
        two = torch.stack([net.conv1(x).mean(dim=(0, 2, 3)) for x in tensors[:2]]).mean(0)
    assert torch.allclose(net.bn1.running_mean, two, rtol=1e-5, atol=1e-6)
    before = snapshot(net)
    with pytest.raises(ValueError):
        recalibrate_bn(net, [])
    assert_same_tensors(before["buffers"], snapshot(net)["buffers"])


def test_recalibrated_eval_logits_match_batch_statistics():
    """One big batch: running statistics = its statistics (up to n/(n-1) in the variance)."""
    torch.manual_seed(0)
    net = get_model("resnet20", 10, 1, 4)
    perturb_running_stats(net)
    x, y = data(512, seed=11)
    with bn_context(net, "batch"), torch.no_grad():
        batch_logits = net(x)
    net.eval()
    with torch.no_grad():
        stale_logits = net(x)
    assert recalibrate_bn(net, [(x, y)]) == 1
    assert not net.training
    with torch.no_grad():
        eval_logits = net(x)
    scale = float(batch_logits.abs().max())
    assert float((eval_logits - batch_logits).abs().max()) < 0.02 * scale
    assert float((stale_logits - batch_logits).abs().max()) > 0.2 * scale  # the check can tell


def test_recalibrate_bn_without_bn_is_a_no_op():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    before = copy.deepcopy(net.state_dict())
    assert recalibrate_bn(net, [torch.randn(3, 4)]) == 0
    assert_same_tensors(before, net.state_dict())
