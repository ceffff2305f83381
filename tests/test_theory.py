"""Theorem 1 (formalisation of STUDY_SPEC section 4) on small networks in float64."""
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from ip.interspace import dct_basis
from ip.masks import masks_from_scores, prunable_parameters
from ip.theory import (basis_with_first_filter, check_gradient_equality, expressivity_check, fd_check_fb_gradient,
                       gradient_flow_comparison, interspace_twin, one_step_losses, run_theorem1,
                       trainable_vs_frozen_fb)


class SmoothNet(nn.Module):
    """conv 3x3 + BN + tanh, conv 3x3 + tanh, mean pool, linear: a smooth loss, so Taylor remainders are clean."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(3)
        self.conv2 = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        out = torch.tanh(self.bn1(self.conv1(x)))
        out = torch.tanh(self.conv2(out)).mean(dim=(2, 3))
        return self.fc(out)


def random_masks(model, sparsity, seed=0):
    gen = torch.Generator().manual_seed(seed)
    scores = {n: torch.rand(p.shape, generator=gen) for n, p in prunable_parameters(model).items()}
    return masks_from_scores(scores, sparsity)


def make_batches(seed=0, n=12, size=6):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, size, size, generator=gen)
    y = torch.randint(0, 3, (n,), generator=gen)
    return [(x[:8], y[:8]), (x[8:], y[8:])]


@pytest.fixture
def smooth_twins():
    torch.manual_seed(0)
    net = SmoothNet()
    masks = random_masks(net, 0.6)
    sp, ip, ip_masks = interspace_twin(net, masks)
    return net, masks, sp, ip, ip_masks, make_batches()


@pytest.fixture
def resnet_twins(tiny_resnet):
    masks = random_masks(tiny_resnet, 0.7)
    batches = [(torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))]
    sp, ip, ip_masks = interspace_twin(tiny_resnet, masks)
    return tiny_resnet, masks, sp, ip, ip_masks, batches


def test_twins_are_copies_with_lambda_equal_w(resnet_twins):
    original, masks, sp, ip, ip_masks, _ = resnet_twins
    assert original.conv1.weight.dtype == torch.float32  # the caller's model is untouched
    assert sp.conv1.weight.dtype == torch.float64
    for name, mask in masks.items():
        w = prunable_parameters(sp)[name]
        assert torch.all(w[~mask] == 0)
    lam = ip.layer1[0].conv1.parametrizations.weight.original
    assert torch.equal(lam, sp.layer1[0].conv1.weight)
    assert set(ip_masks) == set(prunable_parameters(ip))


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_a_masked_gradients_are_equal(resnet_twins, bn_mode):
    _, masks, sp, ip, ip_masks, batches = resnet_twins
    result = check_gradient_equality(sp, ip, masks, ip_masks, batches, bn_mode=bn_mode)
    assert result["max_abs_grad"] > 1e-4
    assert result["max_abs_diff"] <= 1e-10 and result["max_abs_diff_other"] <= 1e-10
    assert result["loss_sp"] == pytest.approx(result["loss_ip"], abs=1e-12)
    assert result["holds"] and len(result["per_layer"]) == 22  # 19 3x3 convs, 2 shortcuts, fc


def test_a_detects_a_different_network(resnet_twins):
    _, masks, sp, ip, ip_masks, batches = resnet_twins
    with torch.no_grad():  # a non-identity FB breaks the twin property: gradients must differ
        ip.layer1[0].conv1.parametrizations.weight[0].fb.basis.copy_(dct_basis(3))
    result = check_gradient_equality(sp, ip, masks, ip_masks, batches)
    assert result["max_abs_diff"] > 1e-6 and not result["holds"]


def test_b_gradient_flow_ip_at_least_sp(resnet_twins):
    _, masks, sp, ip, ip_masks, batches = resnet_twins
    gf = gradient_flow_comparison(sp, ip, masks, ip_masks, batches)
    assert gf["gf_ip_shared"] == pytest.approx(gf["gf_sp_shared"], rel=1e-12)
    assert gf["gf_fb"] > 0
    assert gf["difference"] == pytest.approx(gf["gf_fb"], rel=1e-8)
    assert gf["gf_ip"] > gf["gf_sp"] and gf["holds"] and gf["strict"]
    assert sum(gf["fb_per_layer"].values()) == pytest.approx(gf["gf_fb"], rel=1e-12)


def test_b_not_strict_when_fb_gradient_vanishes(smooth_twins):
    net, _, _, _, _, batches = smooth_twins
    # prune every 3x3 weight: W = lambda F^T = 0 whatever F, so grad_F = sum (dL/dW)^T lambda = 0
    masks = {n: torch.zeros_like(p, dtype=torch.bool) if p.dim() == 4 else torch.ones_like(p, dtype=torch.bool)
             for n, p in prunable_parameters(net).items()}
    sp, ip, ip_masks = interspace_twin(net, masks)
    gf = gradient_flow_comparison(sp, ip, masks, ip_masks, batches)
    assert gf["gf_fb"] == 0.0
    assert gf["gf_ip"] == pytest.approx(gf["gf_sp"], rel=1e-12)
    assert gf["holds"] and not gf["strict"]


def test_c_one_step_first_order_and_ordering(smooth_twins):
    _, masks, sp, ip, ip_masks, batches = smooth_twins
    etas = [1e-3, 5e-4, 2.5e-4]
    result = one_step_losses(sp, ip, masks, ip_masks, batches, etas)
    table = result["table"]
    assert result["gf_ip"] > result["gf_sp"] > 0
    for variant in ("sp", "ip"):
        remainders = [r[f"remainder_{variant}"] for r in table]
        # first-order prediction error is O(eta^2): halving eta divides it by ~4
        for big, small in zip(remainders, remainders[1:]):
            assert 3.6 < big / small < 4.4
        # and is small compared with the first-order change itself
        assert abs(remainders[0]) < 0.1 * etas[0] * result[f"gf_{variant}"]
    # IP's extra eta * ||grad_F||^2 descent dominates the O(eta^2) terms at small eta
    assert all(r["ip_le_sp"] for r in table)
    assert result["ip_le_sp"]["max_eta_contiguous"] == max(etas)
    gap = table[-1]["loss_sp"] - table[-1]["loss_ip"]
    assert gap == pytest.approx(etas[-1] * (result["gf_ip"] - result["gf_sp"]), rel=0.05)


def test_c_leaves_models_unchanged(smooth_twins):
    _, masks, sp, ip, ip_masks, batches = smooth_twins
    before = {k: v.clone() for k, v in ip.state_dict().items()}
    one_step_losses(sp, ip, masks, ip_masks, batches, [0.1])
    assert all(torch.equal(before[k], v) for k, v in ip.state_dict().items())


def test_d_expressivity(resnet_twins):
    _, masks, sp, ip, ip_masks, batches = resnet_twins
    result = expressivity_check(sp, ip, batches, basis="dct")
    sp_in_ip = result["sp_in_ip"]
    assert sp_in_ip["max_abs_output_diff"] <= 1e-12
    assert sp_in_ip["nonzeros_sp"] == sp_in_ip["nonzeros_ip"] > 0
    converse = result["ip_not_in_sp"]
    assert converse["spatial_nonzeros"][0] == 9  # the DCT's constant filter: one coefficient, 9 taps
    assert converse["distance_to_1_sparse"][0] == pytest.approx(math.sqrt(8 / 9), rel=1e-12)
    assert converse["holds"] and result["any_filter"]["holds"] and result["holds"]
    # an IP net with a non-identity FB and masked lambda is not the SP net: the check must notice
    _, ip_dct, _ = interspace_twin(resnet_twins[0], masks, fb_init="dct")
    assert not expressivity_check(sp, ip_dct, batches)["sp_in_ip"]["holds"]


def test_d_one_coefficient_realises_any_filter():
    target = torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    basis = basis_with_first_filter(target)
    assert torch.allclose(basis[:, 0].reshape(3, 3), target, atol=1e-14)
    assert torch.linalg.matrix_rank(basis) == 9
    assert (target != 0).sum() == 9  # dense, while an SP filter with one weight has one tap


def test_e_finite_differences_of_fb_gradient(resnet_twins):
    _, _, _, ip, ip_masks, batches = resnet_twins
    result = fd_check_fb_gradient(ip, ip_masks, batches, bn_mode="train", entries_per_fb=3,
                                  generator=torch.Generator().manual_seed(0))
    assert result["num_checked"] == 19 * 3
    assert result["max_abs_grad"] > 1e-4
    assert result["max_rel_error"] < 1e-6


def test_e_fd_detects_a_wrong_gradient(smooth_twins):
    _, _, _, ip, ip_masks, batches = smooth_twins
    ok = fd_check_fb_gradient(ip, ip_masks, batches)
    assert ok["max_rel_error"] < 1e-6
    # doubling the loss only in the autograd pass must show as an O(1) discrepancy
    calls = {"n": 0}

    def loss_fn(out, y):
        calls["n"] += 1
        scale = 2.0 if torch.is_grad_enabled() else 1.0
        return scale * nn.functional.cross_entropy(out, y)

    bad = fd_check_fb_gradient(ip, ip_masks, batches, loss_fn=loss_fn)
    assert 0.3 < bad["max_rel_error"] < 0.7 and calls["n"] > 0


def test_general_fb_trainable_vs_frozen(smooth_twins):
    net, masks, *_, batches = smooth_twins
    _, ip, ip_masks = interspace_twin(net, masks, fb_init="random_orthogonal",
                                      generator=torch.Generator().manual_seed(0))
    result = trainable_vs_frozen_fb(ip, ip_masks, batches, etas=[1e-3])
    assert result["gf_fb"] > 0
    assert result["difference"] == pytest.approx(result["gf_fb"], rel=1e-8)
    assert result["holds"] and result["table"][0]["trainable_le_frozen"]


def test_run_theorem1_returns_tidy_json(smooth_twins):
    net, masks, *_, batches = smooth_twins
    out = run_theorem1(net, masks, batches, etas=[1e-3, 1e-2], fd_entries_per_fb=2)
    json.dumps(out)
    holds = out["summary"]["holds"]
    assert set(holds) == {"gradient_equality", "gradient_flow", "expressivity", "fd_grad_fb", "general_fb"}
    assert all(holds.values())
    rows = out["rows"]
    assert all(set(r) == {"check", "variant", "eta", "quantity", "value"} for r in rows)
    one_step = [r for r in rows if r["check"] == "one_step" and r["quantity"] == "loss"]
    assert sorted({r["eta"] for r in one_step}) == [1e-3, 1e-2] and {r["variant"] for r in one_step} == {"sp", "ip"}
    gf = {r["variant"]: r["value"] for r in rows if r["check"] == "gradient_flow" and r["quantity"] == "gf_total"}
    assert gf["ip"] > gf["sp"]
    assert np.isfinite([r["value"] for r in rows if r["value"] is not None]).all()


def kinked_net(x: torch.Tensor):
    """conv 1->1 3x3 (taps -1 and +1 in its first row, F = I) and ReLU, in interspace form, with
    input ``x`` of shape (1, 1, 3, 4) and the loss sum of outputs: (net, masks, batches, loss_fn)."""
    from ip.interspace import to_interspace
    from ip.masks import dense_masks

    net = nn.Sequential(nn.Conv2d(1, 1, 3, bias=False), nn.ReLU()).double()
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].weight[0, 0, 0, 0] = -1.0
        net[0].weight[0, 0, 0, 1] = 1.0
    net = to_interspace(net)
    return net, dense_masks(net), [(x, torch.zeros(1, dtype=torch.long))], lambda out, y: out.sum()


def test_e_fd_leaves_out_relu_kinks_and_counts_them():
    """A pre-activation exactly at zero makes the loss non-differentiable in F: the FD check
    must count such entries instead of reporting a false gradient error."""
    x = torch.ones(1, 1, 3, 4, dtype=torch.float64)
    x[0, 0, 0, 2] = 5.0  # first output pixel: -1 + 1 = 0 exactly (a kink); second: -1 + 5 = 4
    net, masks, batches, loss_fn = kinked_net(x)
    checked = fd_check_fb_gradient(net, masks, batches, loss_fn=loss_fn)
    assert checked["num_nondifferentiable"] > 0
    assert checked["num_checked"] > 0 and checked["max_rel_error"] < 1e-8
    ignored = fd_check_fb_gradient(net, masks, batches, loss_fn=loss_fn, kink_rtol=float("inf"))
    assert ignored["num_nondifferentiable"] == 0 and ignored["max_rel_error"] > 0.1


def test_e_fd_sets_aside_every_kink_that_could_fail_it():
    """A kink whose one-sided slopes differ by a small fraction of the gradient scale still
    puts the central difference half that gap away from autograd; the check must set it
    aside rather than report it as a gradient error, and a coarser threshold must not."""
    from ip.theory import FD_RTOL

    small = 1e-4
    x = torch.full((1, 1, 3, 4), small, dtype=torch.float64)
    x[..., 2:] = 1.0  # first output pixel: -small + small = 0 exactly, on its kink; second: 1 - small > 0
    net, masks, batches, loss_fn = kinked_net(x)
    result = fd_check_fb_gradient(net, masks, batches, loss_fn=loss_fn)
    gap = small / result["max_abs_grad"]  # one-sided slopes of the small-input taps differ by this much
    assert 2 * FD_RTOL < gap < 1e-3
    assert result["rtol"] == FD_RTOL and result["kink_rtol"] == 2 * FD_RTOL
    assert result["num_nondifferentiable"] > 0 and result["num_checked"] > 0
    assert result["max_rel_error"] < 1e-8 and result["holds"]
    assert result["max_kink_rel_error"] < 1e-8  # autograd takes ReLU'(0) = 0: the backward side
    coarse = fd_check_fb_gradient(net, masks, batches, loss_fn=loss_fn, kink_rtol=1e-3)
    assert coarse["max_rel_error"] == pytest.approx(gap / 2, rel=1e-3) and not coarse["holds"]


def test_e_fd_fails_a_wrong_gradient_at_the_entries_it_sets_aside():
    """Here every FB entry that moves the filter straddles the kink and is set aside, and the
    entries compared have zero gradient: doubling the gradient only in the autograd pass leaves
    those at zero error, and only autograd's distance from both one-sided slopes at the entries
    set aside can show it."""
    x = torch.full((1, 1, 3, 4), 1e-4, dtype=torch.float64)
    x[..., 2:] = 1.0
    net, masks, batches, _ = kinked_net(x)

    def doubled(out, y):
        return (2.0 if torch.is_grad_enabled() else 1.0) * out.sum()

    right = fd_check_fb_gradient(net, masks, batches, loss_fn=lambda out, y: out.sum())
    wrong = fd_check_fb_gradient(net, masks, batches, loss_fn=doubled)
    assert right["holds"] and right["max_kink_rel_error"] < 1e-8
    assert wrong["num_nondifferentiable"] == right["num_nondifferentiable"] > 0
    assert wrong["num_checked"] > 0 and wrong["max_rel_error"] < 1e-8   # the compared entries see nothing
    assert wrong["max_kink_rel_error"] > 0.1 and not wrong["holds"]
