"""Gradient flow, trainable coordinates and generalisation metrics."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ip.interspace import dct_basis, to_interspace
from ip.masks import MaskEnforcer, masks_from_scores, prunable_parameters
from ip.metrics import evaluate, generalisation_gaps, gradient_flow, trainable_coordinates


def mse(out, target):
    return F.mse_loss(out.reshape(-1), target)


def random_masks(model, sparsity, seed=0):
    gen = torch.Generator().manual_seed(seed)
    scores = {n: torch.rand(p.shape, generator=gen) for n, p in prunable_parameters(model).items()}
    return masks_from_scores(scores, sparsity)


def test_gf_of_linear_model_by_hand():
    """L = mean_i (w.x_i + b - y_i)^2 over two unequal batches; one weight pruned."""
    torch.manual_seed(0)
    net = nn.Linear(3, 1).double()
    masks = {"weight": torch.tensor([[True, False, True]])}
    with torch.no_grad():
        net.weight.mul_(masks["weight"])
    x = torch.randn(4, 3, dtype=torch.float64)
    y = torch.randn(4, dtype=torch.float64)
    w, b = net.weight.detach().reshape(-1), float(net.bias.detach())
    r = x @ w + b - y
    grad_w = 2 * (r[:, None] * x).mean(0)
    grad_b = 2 * r.mean()
    expected_shared = float(grad_w[0] ** 2 + grad_w[2] ** 2)
    gf = gradient_flow(net, [(x[:3], y[:3]), (x[3:], y[3:])], masks, loss_fn=mse)
    assert gf["shared"] == pytest.approx(expected_shared, rel=1e-12)
    assert gf["bias"] == pytest.approx(float(grad_b ** 2), rel=1e-12)
    assert gf["total"] == pytest.approx(expected_shared + float(grad_b ** 2), rel=1e-12)
    assert gf["dim"] == 3 and gf["num_coordinates"]["prunable"] == 2
    assert gf["loss"] == pytest.approx(float((r ** 2).mean()), rel=1e-12)


def test_gf_of_interspace_conv_by_hand():
    """One 2x2 interspace conv (DCT basis) on 2x2 inputs: y_hat = <W, x>, W = lambda F^T."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 1, 2, bias=False), nn.Flatten()).double()
    net = to_interspace(net, fb_init="dct")
    name = "0.parametrizations.weight.original"
    mask = torch.tensor([True, False, True, True]).reshape(1, 1, 2, 2)
    with torch.no_grad():
        prunable_parameters(net)[name].mul_(mask)
    lam = prunable_parameters(net)[name].detach().reshape(-1)
    basis = dct_basis(2)
    x = torch.randn(5, 1, 2, 2, dtype=torch.float64)
    y = torch.randn(5, dtype=torch.float64)
    w = basis @ lam                       # spatial filter, W row = lambda F^T
    r = x.reshape(5, 4) @ w - y
    grad_w = 2 * (r[:, None] * x.reshape(5, 4)).mean(0)
    grad_lam = basis.T @ grad_w           # dL/dlambda = dL/dW F
    grad_basis = torch.outer(grad_w, lam)  # dL/dF = (dL/dW)^T lambda
    gf = gradient_flow(net, [(x, y)], {name: mask}, loss_fn=mse)
    assert gf["shared"] == pytest.approx(float((grad_lam[mask.reshape(-1)] ** 2).sum()), rel=1e-12)
    assert gf["fb"] == pytest.approx(float((grad_basis ** 2).sum()), rel=1e-12)
    assert gf["fb"] > 0
    assert gf["per_layer"] == pytest.approx({"0": gf["total"]}, rel=1e-12)
    assert gf["num_coordinates"]["fb"] == 16 and gf["num_coordinates"]["prunable"] == 3


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_gf_equals_norm_of_masked_gradients(tiny_resnet, bn_mode):
    net = to_interspace(tiny_resnet.double(), fb_init="dct")
    masks = random_masks(net, 0.7)
    enforcer = MaskEnforcer(net, masks)
    x = torch.randn(8, 1, 8, 8, dtype=torch.float64)
    y = torch.randint(0, 10, (8,))
    gf = gradient_flow(net, [(x, y)], masks, bn_mode=bn_mode)
    net.train(bn_mode == "train")
    state = {k: v.clone() for k, v in net.state_dict().items()}
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    net.load_state_dict(state)
    enforcer.remove()
    by_hand = sum(float(p.grad.pow(2).sum()) for p in net.parameters() if p.grad is not None)
    assert gf["total"] == pytest.approx(by_hand, rel=1e-10)
    parts = gf["shared"] + gf["fb"] + gf["norm"] + gf["bias"] + gf["other"]
    assert parts == pytest.approx(gf["total"], rel=1e-12)
    assert sum(gf["per_layer"].values()) == pytest.approx(gf["total"], rel=1e-12)
    assert gf["fb"] > 0 and gf["norm"] > 0 and gf["bias"] > 0  # fc bias
    # 19 FBs of 81 entries each; every conv reports its own FB
    assert gf["num_coordinates"]["fb"] == 19 * 81
    fb_layers = {b.layer for b in trainable_coordinates(net, masks) if b.kind == "fb"}
    assert "layer1.0.conv1" in fb_layers and len(fb_layers) == 19


def test_coordinate_selection_and_shared_only(tiny_resnet):
    net = to_interspace(tiny_resnet, fb_init="spatial")
    masks = random_masks(net, 0.5)
    MaskEnforcer(net, masks)
    kept = sum(int(m.sum()) for m in masks.values())
    shared = trainable_coordinates(net, masks, shared_only=True)
    assert shared.dim == kept and {b.kind for b in shared} == {"prunable"}
    no_bn = trainable_coordinates(net, masks, include_norm=False, include_bias=False)
    assert no_bn.dim == kept + 19 * 81
    x = torch.randn(4, 1, 8, 8)
    y = torch.randint(0, 10, (4,))
    gf = gradient_flow(net, [(x, y)], masks)
    gf_no_bn = gradient_flow(net, [(x, y)], coords=no_bn)
    assert gf_no_bn["total"] == pytest.approx(gf["shared"] + gf["fb"], rel=1e-5)
    # a frozen FB is not a coordinate
    for p in net.parameters():
        if p.shape == (9, 9):
            p.requires_grad_(False)
    assert trainable_coordinates(net, masks).kinds()["fb"] == 0


def test_gf_is_side_effect_free_and_checks_inputs(tiny_resnet):
    net = tiny_resnet
    masks = random_masks(net, 0.5)
    x = torch.randn(4, 1, 8, 8)
    y = torch.randint(0, 10, (4,))
    with pytest.raises(ValueError, match="non-zero"):  # pruned entries not zeroed yet
        gradient_flow(net, [(x, y)], masks)
    MaskEnforcer(net, masks).remove()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    gf_train = gradient_flow(net, [(x, y)], masks, bn_mode="train")
    gf_eval = gradient_flow(net, [(x, y)], masks, bn_mode="eval")
    assert net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # running stats untouched
    assert gf_train["total"] != pytest.approx(gf_eval["total"], rel=1e-3)
    with pytest.raises(KeyError):
        gradient_flow(net, [(x, y)], {"nonexistent.weight": torch.ones(1, dtype=torch.bool)})


def test_evaluate_weights_batches_by_size():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    net[1].running_mean.fill_(0.5)
    x = torch.randn(10, 4)
    y = torch.randint(0, 3, (10,))
    net.train()
    loss_one, acc_one = evaluate(net, x, y, batch_size=10)
    loss_three, acc_three = evaluate(net, x, y, batch_size=3)  # batches of 3, 3, 3, 1
    assert net.training
    assert loss_three == pytest.approx(loss_one, rel=1e-6)
    assert acc_three == acc_one
    net.eval()
    with torch.no_grad():
        out = net(x)
    assert loss_one == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-6)
    assert acc_one == pytest.approx(float((out.argmax(1) == y).float().mean()))


def test_generalisation_gaps_signs():
    gaps = generalisation_gaps(train_loss=0.1, train_acc=0.99, test_loss=0.4, test_acc=0.9)
    assert gaps["gap_acc"] == pytest.approx(0.09)
    assert gaps["gap_loss"] == pytest.approx(0.3)


@pytest.mark.parametrize("method", ["snip", "magnitude"])
def test_theorem1_ab_on_pai_masks_with_batch_statistics(tiny_resnet, method):
    """Thm 1 (a), (b) (STUDY_SPEC section 4) with BN on batch statistics (section 3):
    spatial-init IP twin, same PaI mask: the shared part of GF_IP equals GF_SP (also per
    layer) and GF_IP = GF_SP + FB part > GF_SP."""
    from ip.masks import layer_name
    from ip.pruning import find_masks

    sp = tiny_resnet.double()
    g = torch.Generator().manual_seed(4)
    batches = [(torch.randn(8, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (8,), generator=g))
               for _ in range(2)]
    sp_masks, _ = find_masks(method, sp, 0.9, batches=batches)
    ip = to_interspace(copy.deepcopy(sp), fb_init="spatial")
    ip_names = {layer_name(n): n for n in prunable_parameters(ip)}
    ip_masks = {ip_names[layer_name(n)]: m for n, m in sp_masks.items()}
    MaskEnforcer(sp, sp_masks).remove()
    MaskEnforcer(ip, ip_masks).remove()
    gf_sp = gradient_flow(sp, batches, sp_masks, bn_mode="batch")
    gf_ip = gradient_flow(ip, batches, ip_masks, bn_mode="batch")
    assert gf_ip["loss"] == pytest.approx(gf_sp["loss"], rel=1e-12)  # same function
    assert gf_ip["shared"] == pytest.approx(gf_sp["shared"], rel=1e-9)
    for name, value in gf_sp["per_parameter"].items():
        if name in sp_masks:
            assert gf_ip["per_parameter"][ip_names[layer_name(name)]] == pytest.approx(value, rel=1e-9, abs=1e-300)
    assert gf_ip["fb"] > 1e-6 * gf_sp["total"]
    assert gf_ip["total"] > gf_sp["total"]
    assert gf_ip["total"] == pytest.approx(gf_sp["total"] + gf_ip["fb"], rel=1e-9)
