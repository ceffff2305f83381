"""The interspace representation W = lambda . F^T: function preservation, bases, the
factorised path, gradients, export, basis sharing, and IP-with-frozen-identity == SP."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.fft
import torch
import torch.nn.functional as F
from torch import nn

from ip.interspace import (COEF_SUFFIX, FB_INITS, SHARE_MODES, FilterBasis, basis_parameters, coefficient,
                           dct_basis, factorised_conv2d, factorised_forward, fb_overhead_params, filter_bases,
                           interspace_convs, is_interspace, make_basis, random_orthogonal_basis, to_interspace,
                           to_spatial)
from ip.masks import MaskEnforcer, masks_from_scores, prunable_parameters
from ip.models import get_model
from ip.onednn_guard import GuardedConv2d

# (model name, get_model kwargs, input shape); small enough to run every combination quickly
MODELS = {
    "resnet20": (dict(num_classes=10, in_channels=1, width=4), (2, 1, 16, 16)),
    "vgg11": (dict(num_classes=10, in_channels=3, width=4), (2, 3, 16, 16)),
    "resnet18": (dict(num_classes=10, in_channels=3), (1, 3, 32, 32)),
}
_built: dict[str, nn.Module] = {}



def _fresh(name: str) -> nn.Module:
    """A freshly initialised model; torchvision ResNet-18 is built once and deep-copied (its init is slow)."""
    if name not in _built:
        torch.manual_seed(0)
        _built[name] = get_model(name, **MODELS[name][0]).eval()
    return copy.deepcopy(_built[name])


def _eligible_names(model: nn.Module) -> set[str]:
    return {n for n, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size[0] == m.kernel_size[1] and m.kernel_size[0] > 1}


def _odd_convs(bias: bool = True) -> nn.Sequential:
    """Convs with groups > 1, stride, dilation, bias, a depthwise 5x5, a 1x1 and a rectangular kernel."""
    return nn.Sequential(
        nn.Conv2d(4, 8, 3, stride=2, padding=2, dilation=2, groups=2, bias=bias),
        nn.ReLU(),
        nn.Conv2d(8, 8, 5, stride=1, padding=2, groups=8, bias=bias),
        nn.Conv2d(8, 6, 1, bias=bias),
        nn.Conv2d(6, 6, (3, 1), padding=(1, 0), bias=bias),
        nn.Conv2d(6, 4, 3, stride=(2, 1), padding=1, dilation=(1, 2), bias=bias),
    )


# ---------------------------------------------------------------- function preservation

@pytest.mark.parametrize("fb_init", FB_INITS)
@pytest.mark.parametrize("share", SHARE_MODES)
@pytest.mark.parametrize("name", list(MODELS))
def test_to_interspace_preserves_function_in_place(name, fb_init, share):
    model = _fresh(name)
    x = torch.randn(MODELS[name][1])
    with torch.no_grad():
        expected = model(x)
    eligible = _eligible_names(model)
    out = to_interspace(model, fb_init=fb_init, share=share, inplace=True,
                        generator=torch.Generator().manual_seed(1))
    assert out is model
    assert {n for n, _ in interspace_convs(model)} == eligible
    # 1x1 convs (ResNet shortcuts) and linear layers stay spatial
    for n, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and n not in eligible:
            assert not is_interspace(m), n
    model.eval()
    with torch.no_grad():
        got = model(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("fb_init", FB_INITS)
@pytest.mark.parametrize("share", SHARE_MODES)
@pytest.mark.parametrize("name", ["resnet20", "vgg11"])
def test_to_interspace_copy_leaves_original_untouched(name, fb_init, share):
    model = _fresh(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(MODELS[name][1])
    with torch.no_grad():
        expected = model(x)
    ip_model = to_interspace(model, fb_init=fb_init, share=share, inplace=False)
    assert ip_model is not model
    assert not any(is_interspace(m) for m in model.modules())
    after = model.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    # the copy owns its tensors: training it cannot write into the original
    orig_ptrs = {p.data_ptr() for p in model.parameters()}
    assert not orig_ptrs & {p.data_ptr() for p in ip_model.parameters()}
    ip_model.eval()
    with torch.no_grad():
        assert (ip_model(x) - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("fb_init", FB_INITS)
@pytest.mark.parametrize("share", SHARE_MODES)
def test_odd_convs_preserve_function_and_factorised_path(fb_init, share):
    torch.manual_seed(0)
    model = _odd_convs().double()
    x = torch.randn(2, 4, 13, 11, dtype=torch.float64)
    expected = model(x)
    model = to_interspace(model, fb_init=fb_init, share=share)
    assert [is_interspace(m) for m in model if isinstance(m, nn.Conv2d)] == [True, True, False, False, True]
    torch.testing.assert_close(model(x), expected, rtol=0, atol=1e-12)
    # every interspace conv through the factorised path equals its ordinary conv
    h = x
    for m in model:
        if isinstance(m, nn.Conv2d) and is_interspace(m):
            torch.testing.assert_close(factorised_forward(m, h), m(h), rtol=0, atol=1e-12)
        h = m(h)


def test_reflect_padding_conv_is_preserved_but_not_factorisable():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect").double()
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    expected = conv(x)
    conv = to_interspace(conv, fb_init="dct")
    torch.testing.assert_close(conv(x), expected, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="padding_mode"):
        factorised_forward(conv, x)


def test_invalid_options_raise():
    model = nn.Sequential(nn.Conv2d(1, 1, 3))
    with pytest.raises(ValueError, match="fb_init"):
        model = to_interspace(model, fb_init="haar")
    with pytest.raises(ValueError, match="share"):
        model = to_interspace(model, share="global")
    with pytest.raises(ValueError, match="fb_init"):
        make_basis(3, "identity")


# ---------------------------------------------------------------- W = lambda . F^T and the bases

@pytest.mark.parametrize("fb_init", FB_INITS)
def test_weight_is_lambda_times_basis_transpose(fb_init):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, bias=False).double()
    conv = to_interspace(conv, fb_init=fb_init)
    fb = filter_bases(conv)[""]
    with torch.no_grad():
        fb.basis.add_(0.1 * torch.randn_like(fb.basis))  # a trained, non-orthogonal basis
        coefficient(conv).copy_(torch.randn(5, 3, 3, 3, dtype=torch.float64))
    lam = coefficient(conv).detach().reshape(5, 3, 9)
    basis = fb.basis.detach()
    # g^(n) is column n of F as a K x K filter; h = sum_n lambda_n g^(n)
    g = torch.stack([basis[:, n].reshape(3, 3) for n in range(9)])
    h = torch.einsum("ocn,nij->ocij", lam, g)
    torch.testing.assert_close(conv.weight, h, rtol=0, atol=1e-12)
    torch.testing.assert_close(fb.filters(), g, rtol=0, atol=0)


def test_coefficient_position_is_row_major_basis_index():
    """Coefficient (i, j) of the K x K grid multiplies basis filter n = i*K + j."""
    conv = nn.Conv2d(1, 1, 3, bias=False).double()
    conv = to_interspace(conv, fb_init="random_orthogonal", generator=torch.Generator().manual_seed(3))
    basis = filter_bases(conv)[""].basis.detach()
    for i in range(3):
        for j in range(3):
            with torch.no_grad():
                coefficient(conv).zero_()
                coefficient(conv)[0, 0, i, j] = 1.0
            torch.testing.assert_close(conv.weight[0, 0].detach(), basis[:, i * 3 + j].reshape(3, 3),
                                       rtol=0, atol=1e-15)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_dct_basis_is_orthonormal_with_constant_first_column(k):
    basis = dct_basis(k)
    assert basis.shape == (k * k, k * k) and basis.dtype == torch.float64
    torch.testing.assert_close(basis.T @ basis, torch.eye(k * k, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(basis[:, 0], torch.full((k * k,), 1.0 / k, dtype=torch.float64),
                               rtol=0, atol=1e-15)


def test_dct_coefficients_are_scipy_orthonormal_dct2():
    """lambda = F^{-1} h with the DCT basis is the orthonormal 2-D DCT-II of the filter,
    with coefficient (u, v) at grid position (u, v)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, bias=False).double()
    filters = conv.weight.detach().clone().numpy()
    conv = to_interspace(conv, fb_init="dct")
    expected = scipy.fft.dctn(filters, type=2, norm="ortho", axes=(-2, -1))
    np.testing.assert_allclose(coefficient(conv).detach().numpy(), expected, rtol=0, atol=1e-12)


def test_random_orthogonal_basis_is_orthogonal_and_deterministic():
    a = random_orthogonal_basis(3, torch.Generator().manual_seed(7))
    b = random_orthogonal_basis(3, torch.Generator().manual_seed(7))
    c = random_orthogonal_basis(3, torch.Generator().manual_seed(8))
    torch.testing.assert_close(a.T @ a, torch.eye(9, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(a @ a.T, torch.eye(9, dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 0.1
    # not a signed permutation: the basis really mixes spatial positions
    assert (a.abs() < 0.99).all()


def test_random_orthogonal_basis_has_no_sign_bias():
    """Haar-distributed: every entry is symmetric about 0.  Plain Householder QR fixes the sign
    of R's diagonal and so biases Q (e.g. Q[0, 0] < 0 always); the sign correction removes it."""
    gen = torch.Generator().manual_seed(0)
    corner = torch.stack([random_orthogonal_basis(3, gen)[0, 0] for _ in range(400)])
    assert 0.35 < (corner > 0).double().mean().item() < 0.65
    assert abs(corner.mean().item()) < 0.05


def test_random_orthogonal_to_interspace_deterministic_per_generator_and_distinct_per_layer():
    def bases(seed):
        model = get_model("resnet20", in_channels=1, width=4)
        model = to_interspace(model, fb_init="random_orthogonal", generator=torch.Generator().manual_seed(seed))
        return [p.detach().clone() for p in basis_parameters(model)]

    first, again, other = bases(5), bases(5), bases(6)
    assert len(first) == 19
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(not torch.allclose(a, b) for a, b in zip(first, other))
    assert not torch.allclose(first[0], first[1])


def test_spatial_init_is_identity_and_lambda_equals_weight(tiny_resnet):
    weights = {n: m.weight.detach().clone() for n, m in tiny_resnet.named_modules() if isinstance(m, nn.Conv2d)}
    tiny_resnet = to_interspace(tiny_resnet, fb_init="spatial")
    for name, conv in interspace_convs(tiny_resnet):
        assert torch.equal(filter_bases(conv)[""].basis, torch.eye(9))
        assert torch.equal(coefficient(conv), weights[name])
        assert torch.equal(conv.weight, weights[name])


def test_filter_basis_dtype_and_device_follow_the_layer():
    conv = nn.Conv2d(2, 2, 3).double()
    conv = to_interspace(conv, fb_init="dct")
    assert filter_bases(conv)[""].basis.dtype == torch.float64
    assert coefficient(conv).dtype == torch.float64
    fb = FilterBasis(3, "dct")
    assert fb.basis.dtype == torch.float32 and fb.basis.requires_grad


# ---------------------------------------------------------------- factorised path

@pytest.mark.parametrize("c_in,c_out,k,stride,padding,dilation,groups,bias", [
    (3, 4, 3, 1, 0, 1, 1, False),
    (3, 4, 3, 2, 1, 1, 1, True),
    (4, 6, 3, 1, 2, 2, 2, True),
    (4, 4, 5, (2, 1), (1, 2), (1, 2), 4, True),
    (6, 3, 2, 1, 1, 1, 3, False),
])
def test_factorised_conv2d_equals_ordinary_conv(c_in, c_out, k, stride, padding, dilation, groups, bias):
    torch.manual_seed(0)
    x = torch.randn(2, c_in, 9, 10, dtype=torch.float64)
    coef = torch.randn(c_out, c_in // groups, k, k, dtype=torch.float64)
    basis = torch.randn(k * k, k * k, dtype=torch.float64)  # general, not orthogonal
    b = torch.randn(c_out, dtype=torch.float64) if bias else None
    weight = (coef.reshape(-1, k * k) @ basis.T).reshape(coef.shape)
    expected = F.conv2d(x, weight, b, stride, padding, dilation, groups)
    got = factorised_conv2d(x, coef, basis, b, stride, padding, dilation, groups)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-11)


def test_factorised_forward_on_trained_basis_matches_module():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, bias=True).double()
    conv = to_interspace(conv, fb_init="dct")
    with torch.no_grad():
        filter_bases(conv)[""].basis.add_(0.2 * torch.randn(9, 9, dtype=torch.float64))
    x = torch.randn(3, 4, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(factorised_forward(conv, x), conv(x), rtol=0, atol=1e-12)


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("fb_init", ["dct", "random_orthogonal"])
def test_gradients_of_lambda_and_basis_match_central_differences(fb_init):
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1, stride=2, bias=True).double()
    conv = to_interspace(conv, fb_init=fb_init, generator=torch.Generator().manual_seed(0))
    basis = filter_bases(conv)[""].basis
    lam = coefficient(conv)
    with torch.no_grad():
        basis.add_(0.1 * torch.randn_like(basis))
    x = torch.randn(2, 2, 7, 7, dtype=torch.float64)
    probe = torch.randn(2, 3, 4, 4, dtype=torch.float64)

    def loss() -> torch.Tensor:
        # a non-linear loss so second-order terms would show in a wrong gradient
        return (torch.tanh(conv(x)) * probe).sum()

    conv.zero_grad()
    loss().backward()
    grads = {"lambda": lam.grad.clone(), "basis": basis.grad.clone()}
    eps = 1e-6
    for label, param in (("lambda", lam), ("basis", basis)):
        numeric = torch.zeros_like(param)
        for idx in np.ndindex(*param.shape):
            saved = param.data[idx].item()
            with torch.no_grad():
                param.data[idx] = saved + eps
                up = loss().item()
                param.data[idx] = saved - eps
                down = loss().item()
                param.data[idx] = saved
            numeric[idx] = (up - down) / (2 * eps)
        assert grads[label].abs().max() > 1e-3, label
        torch.testing.assert_close(grads[label], numeric, rtol=1e-6, atol=1e-8, msg=label)


# ---------------------------------------------------------------- export

@pytest.mark.parametrize("share", SHARE_MODES)
def test_to_spatial_gives_plain_convs_with_equal_outputs(tiny_resnet, share):
    tiny_resnet = to_interspace(tiny_resnet, fb_init="random_orthogonal", share=share)
    with torch.no_grad():
        for fb in basis_parameters(tiny_resnet):
            fb.add_(0.1 * torch.randn_like(fb))  # as after training
    tiny_resnet.eval()
    x = torch.randn(2, 1, 12, 12)
    with torch.no_grad():
        expected = tiny_resnet(x)
        weights = {n: m.weight.clone() for n, m in interspace_convs(tiny_resnet)}
    plain = to_spatial(tiny_resnet)
    assert plain is not tiny_resnet
    # the source is untouched and still works (torch shares the generated Parametrized* class
    # between a module and its deepcopy; exporting the copy must not edit the source's class)
    assert len(list(interspace_convs(tiny_resnet))) == 19
    with torch.no_grad():
        torch.testing.assert_close(tiny_resnet(x), expected, rtol=0, atol=0)
    convs = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 21
    # plain convs; the few-channel strided shortcuts keep the oneDNN guard (the same function)
    assert all(type(m) in (nn.Conv2d, GuardedConv2d) for m in convs)
    assert fb_overhead_params(plain) == 0
    assert not any("parametrizations" in n or n.endswith("basis") for n, _ in plain.named_parameters())
    assert sum(p.numel() for p in plain.parameters()) == (
        sum(p.numel() for p in tiny_resnet.parameters()) - fb_overhead_params(tiny_resnet))
    modules = dict(plain.named_modules())
    for name, w in weights.items():
        torch.testing.assert_close(modules[name].weight, w, rtol=0, atol=0)
    plain.eval()
    with torch.no_grad():
        assert (plain(x) - expected).abs().max().item() <= 1e-6

    in_place = to_spatial(tiny_resnet, inplace=True)
    assert in_place is tiny_resnet and not list(interspace_convs(tiny_resnet))


def test_to_spatial_in_place_on_a_deepcopy_leaves_the_source_working(tiny_resnet):
    """E.g. a rewind checkpoint kept as a deepcopy of an IP model, while the copy is exported."""
    tiny_resnet = to_interspace(tiny_resnet, fb_init="dct")
    tiny_resnet.eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        expected = tiny_resnet(x)
    exported = to_spatial(copy.deepcopy(tiny_resnet), inplace=True)
    assert not list(interspace_convs(exported))
    assert len(list(interspace_convs(tiny_resnet))) == 19
    with torch.no_grad():
        torch.testing.assert_close(tiny_resnet(x), expected, rtol=0, atol=0)
        assert (exported(x) - expected).abs().max().item() <= 1e-6


# ---------------------------------------------------------------- basis sharing

def test_share_network_uses_one_basis_per_kernel_size():
    torch.manual_seed(0)
    model = _odd_convs()
    model = to_interspace(model, fb_init="dct", share="network")
    bases = filter_bases(model)
    assert list(bases) == ["0", "2"]  # first 3x3 layer, first 5x5 layer
    assert fb_overhead_params(model) == 3 ** 4 + 5 ** 4
    three = [m for m in model if isinstance(m, nn.Conv2d) and is_interspace(m) and m.kernel_size[0] == 3]
    assert len(three) == 2
    shared = [filter_bases(m)[""].basis for m in three]
    assert shared[0] is shared[1]
    # the shared basis is one parameter of the model, so an optimiser sees it once
    assert sum(1 for p in model.parameters() if p is shared[0]) == 1


def test_share_network_resnet_has_one_trainable_basis(tiny_resnet):
    tiny_resnet = to_interspace(tiny_resnet, fb_init="dct", share="network")
    (basis,) = basis_parameters(tiny_resnet)
    assert all(filter_bases(m)[""].basis is basis for _, m in interspace_convs(tiny_resnet))
    assert fb_overhead_params(tiny_resnet) == 81
    tiny_resnet(torch.randn(4, 1, 8, 8)).square().sum().backward()
    assert basis.grad is not None and basis.grad.abs().sum() > 0


def test_share_network_basis_gradient_is_sum_of_per_layer_gradients():
    """dL/dF for a shared F equals the sum of dL/dF_l of per-layer copies of the same F."""
    torch.manual_seed(0)
    base = get_model("resnet20", in_channels=1, width=4).double()
    net_shared = to_interspace(base, fb_init="dct", share="network", inplace=False)
    net_layer = to_interspace(base, fb_init="dct", share="layer", inplace=False)
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    net_shared(x).square().sum().backward()
    net_layer(x).square().sum().backward()
    (shared,) = basis_parameters(net_shared)
    per_layer = basis_parameters(net_layer)
    assert len(per_layer) == 19
    torch.testing.assert_close(shared.grad, sum(p.grad for p in per_layer), rtol=1e-10, atol=1e-10)


def test_share_layer_gives_one_basis_per_conv(tiny_resnet):
    tiny_resnet = to_interspace(tiny_resnet, fb_init="dct", share="layer")
    bases = basis_parameters(tiny_resnet)
    assert len(bases) == 19
    assert len({id(b) for b in bases}) == 19
    assert fb_overhead_params(tiny_resnet) == 19 * 81
    assert list(filter_bases(tiny_resnet)) == [n for n, _ in interspace_convs(tiny_resnet)]


# ---------------------------------------------------------------- IP with a frozen identity basis is SP

def test_ip_with_frozen_spatial_basis_trains_exactly_like_sp():
    torch.manual_seed(0)
    sp = get_model("resnet20", in_channels=1, width=4).double()
    ip = to_interspace(sp, fb_init="spatial", inplace=False)
    for fb in basis_parameters(ip):
        fb.requires_grad_(False)

    gen = torch.Generator().manual_seed(1)
    sp_params = prunable_parameters(sp)
    scores = {n: torch.rand(p.shape, generator=gen, dtype=torch.float64) for n, p in sp_params.items()}
    sp_masks = masks_from_scores(scores, 0.8)
    # the same mask under IP's names: lambda of 3x3 convs, weight of 1x1 convs and fc
    ip_names = set(prunable_parameters(ip))

    def ip_name(sp_name: str) -> str:
        coef_name = sp_name[: -len("weight")] + COEF_SUFFIX
        return coef_name if coef_name in ip_names else sp_name

    ip_masks = {ip_name(n): m for n, m in sp_masks.items()}
    assert set(ip_masks) == set(prunable_parameters(ip))

    runs = {}
    for label, model, masks in (("sp", sp, sp_masks), ("ip", ip, ip_masks)):
        enforcer = MaskEnforcer(model, masks)
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9,
                              nesterov=True, weight_decay=5e-4)
        enforcer.attach(opt)
        data_gen = torch.Generator().manual_seed(2)
        losses = []
        model.train()
        for _ in range(10):
            x = torch.randn(8, 1, 8, 8, generator=data_gen, dtype=torch.float64)
            y = torch.randint(0, 10, (8,), generator=data_gen)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        runs[label] = losses
    assert runs["sp"][0] != runs["sp"][-1]  # it did train
    np.testing.assert_allclose(runs["ip"], runs["sp"], rtol=0, atol=1e-10)
    final_sp = sp.state_dict()
    final_ip = to_spatial(ip).state_dict()
    assert set(final_ip) == set(final_sp)
    for k in final_sp:
        torch.testing.assert_close(final_ip[k], final_sp[k], rtol=0, atol=1e-12, msg=k)
