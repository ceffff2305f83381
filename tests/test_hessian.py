"""Hessian operator and spectral estimators against the exact Hessian of a small conv net.

The reference is ``torch.func.hessian`` of the loss as a function of *all* parameter
entries (no use of the library's coordinate code), restricted by hand to the kept
coordinates.  The network is small enough (a few hundred coordinates) for ``eigh``.
"""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ip.interspace import to_interspace
from ip.masks import masks_from_scores, prunable_parameters
from ip.metrics.gradient_flow import full_gradient, trainable_coordinates
from ip.metrics.hessian import (HessianOperator, gauss_newton_trace, hutchinson_trace, lanczos_quadrature,
                                power_iteration_top_k, slq_density, top_eigenvalues)


def small_net(representation: str, act: type[nn.Module] = nn.Tanh) -> tuple[nn.Module, dict, list]:
    """conv 1->2 3x3, BN, tanh, conv 2->2 3x3, tanh, linear; float64, half the prunable entries kept.
    ``act``: the activation (tanh, or ReLU for a network linear in each parameter tensor)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), act(), nn.Conv2d(2, 2, 3), act(),
                        nn.Flatten(), nn.Linear(2 * 3 * 3, 3)).double()
    with torch.no_grad():  # non-trivial running statistics, so eval-mode BN is not the identity
        net[1].running_mean.copy_(torch.tensor([0.1, -0.2]))
        net[1].running_var.copy_(torch.tensor([0.5, 2.0]))
        net[1].weight.copy_(torch.tensor([1.3, 0.7]))
        net[1].bias.copy_(torch.tensor([0.05, -0.1]))
    if representation == "ip":
        net = to_interspace(net, fb_init="dct")
    gen = torch.Generator().manual_seed(1)
    scores = {n: torch.rand(p.shape, generator=gen, dtype=torch.float64) for n, p in prunable_parameters(net).items()}
    masks = masks_from_scores(scores, 0.5)
    with torch.no_grad():
        for n, p in prunable_parameters(net).items():
            p.mul_(masks[n])
    x = torch.randn(6, 1, 5, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (6,), generator=gen)
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]  # unequal batches: the operator must weight them by size
    return net, masks, batches


def flat_parameters(net: nn.Module):
    """All parameters as one flat vector, and the function mapping such a vector back to a
    name -> tensor dict (for ``functional_call``)."""
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    theta0 = torch.cat([p.detach().reshape(-1) for _, p in net.named_parameters()])

    def unflatten(theta):
        params, start = {}, 0
        for name, shape in zip(names, shapes):
            size = int(np.prod(shape))
            params[name] = theta[start:start + size].reshape(shape)
            start += size
        return params
    return theta0, unflatten


def kept_mask(net: nn.Module, masks: dict) -> torch.Tensor:
    """Which entries of the flat parameter vector are kept (unpruned)."""
    return torch.cat([masks[n].reshape(-1) if n in masks else torch.ones(p.numel(), dtype=torch.bool)
                      for n, p in net.named_parameters()])


def exact_kept_hessian(net: nn.Module, masks: dict, batches: list) -> np.ndarray:
    """Exact Hessian over every parameter entry, then rows/columns of kept coordinates."""
    theta0, unflatten = flat_parameters(net)
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    buffers = dict(net.named_buffers())

    def loss(theta):
        return F.cross_entropy(functional_call(net, {**unflatten(theta), **buffers}, (x,)), y)

    net.eval()
    full = torch.func.hessian(loss)(theta0)
    keep = kept_mask(net, masks)
    return full[keep][:, keep].numpy(), int(keep.sum()), theta0.numel()


@pytest.fixture(scope="module", params=["sp", "ip"])
def setup(request):
    net, masks, batches = small_net(request.param)
    exact, kept, total = exact_kept_hessian(net, masks, batches)
    # the exact reference is in eval mode, so the estimators are checked on the running-statistics
    # operator; the batch-statistics operator has its own exact reference below
    op = HessianOperator(net, batches, masks, bn_mode="running")
    return request.param, net, masks, batches, exact, kept, total, op


def test_dimension_excludes_pruned_coordinates(setup):
    rep, net, masks, _, exact, kept, total, op = setup
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert pruned > 0
    assert op.dim == kept == total - pruned
    fb_entries = 2 * 81 if rep == "ip" else 0
    bn_and_bias = 2 + 2 + 2 + 2 + 3
    assert op.dim == sum(int(m.sum()) for m in masks.values()) + fb_entries + bn_and_bias
    with pytest.raises(ValueError):  # a vector with a slot for a pruned coordinate does not fit
        op.matvec(np.ones(op.dim + 1))


def test_operator_equals_exact_kept_submatrix(setup):
    *_, exact, _, _, op = setup
    dense = op.dense()
    assert np.abs(dense - exact).max() < 1e-10 * max(1.0, np.abs(exact).max())
    assert np.abs(dense - dense.T).max() < 1e-10


def test_hvp_matches_finite_differences_of_gradients(setup):
    _, net, masks, batches, _, _, _, op = setup
    coords = trainable_coordinates(net, masks)
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    eps = 1e-5

    def grad_at(shift):
        with torch.no_grad():
            for p, d in zip(coords.params, coords.scatter(shift)):
                p.add_(d)
        try:
            return full_gradient(net, batches, coords, bn_mode=op.bn_mode)[1]
        finally:
            with torch.no_grad():
                for p, d in zip(coords.params, coords.scatter(shift)):
                    p.sub_(d)

    fd = (grad_at(eps * v) - grad_at(-eps * v)) / (2 * eps)
    hv = op.matvec(v)
    assert torch.allclose(hv, fd, rtol=1e-6, atol=1e-8 * float(hv.abs().max()))


def test_lanczos_top_k_matches_eigh(setup):
    *_, exact, _, _, op = setup
    reference = np.sort(np.linalg.eigvalsh(exact))[::-1][:5]
    before = op.num_hvp
    result = top_eigenvalues(op, k=5, tol=1e-3)
    assert np.all(np.abs(result["eigenvalues"] - reference) <= 1e-3 * np.abs(reference))
    assert result["hvps"] == op.num_hvp - before > 0


def test_lanczos_largest_modulus_and_power_iteration_on_exact_matrix(setup):
    *_, exact, _, _, _ = setup
    eig = np.linalg.eigvalsh(exact)
    by_modulus = eig[np.argsort(-np.abs(eig))][:3]
    lm = top_eigenvalues(exact, k=3, tol=1e-8, which="LM")
    assert np.allclose(np.sort(lm["eigenvalues"]), np.sort(by_modulus), rtol=1e-6)
    power = power_iteration_top_k(exact, k=2, tol=1e-9, max_iter=5000)
    assert all(power["converged"])
    assert np.allclose(power["eigenvalues"], by_modulus[:2], rtol=1e-4)
    assert power["hvps"] == sum(power["iterations"])


def test_hutchinson_within_its_standard_error(setup):
    *_, exact, _, _, op = setup
    num_probes = 200
    result = hutchinson_trace(exact, num_probes=num_probes, generator=0)
    true_trace = np.trace(exact)
    assert abs(result["trace"] - true_trace) <= 4 * result["stderr"]
    # Rademacher variance per probe is 2 (||H||_F^2 - sum H_ii^2); the reported error must match it
    predicted = np.sqrt(2 * ((exact ** 2).sum() - (np.diag(exact) ** 2).sum()) / num_probes)
    assert 0.7 < result["stderr"] / predicted < 1.3
    # the HessianOperator gives the same probe values as the exact matrix (same generator)
    few = hutchinson_trace(setup[-1], num_probes=3, generator=5)
    ref = hutchinson_trace(exact, num_probes=3, generator=5)
    assert np.allclose(few["samples"], ref["samples"], rtol=1e-9, atol=1e-12)


def test_lanczos_quadrature_is_exact_for_low_degree_polynomials(setup):
    *_, exact, _, _, _ = setup
    v = np.random.default_rng(0).standard_normal(exact.shape[0])
    steps = 6
    nodes, weights = lanczos_quadrature(lambda u: exact @ u, v, steps)
    assert abs(weights.sum() - 1) < 1e-12
    power = v / np.linalg.norm(v)
    for degree in range(2 * steps):  # Gauss rule with m nodes: exact up to degree 2m - 1
        expected = float(np.dot(v, power)) / np.linalg.norm(v)
        assert abs(np.dot(weights, nodes ** degree) - expected) <= 1e-8 * max(1.0, abs(expected))
        power = exact @ power


def test_slq_density_moments(setup):
    *_, exact, _, _, _ = setup
    dim = exact.shape[0]
    num_probes = 40
    result = slq_density(exact, num_probes=num_probes, lanczos_steps=30, generator=0)
    integral = np.trapezoid(result["density"], result["grid"])
    assert abs(integral - 1) < 1e-3
    # first moment per probe is z^T H z / dim: compare with tr(H)/dim within 4 standard errors
    per_probe = (result["weights"] * result["nodes"]).sum(axis=1)
    stderr = per_probe.std(ddof=1) / np.sqrt(num_probes)
    assert abs(result["moments"]["mean"] - np.trace(exact) / dim) <= 4 * stderr
    per_probe2 = (result["weights"] * result["nodes"] ** 2).sum(axis=1)
    stderr2 = per_probe2.std(ddof=1) / np.sqrt(num_probes)
    assert abs(result["moments"]["second"] - np.trace(exact @ exact) / dim) <= 4 * stderr2
    # the smoothed density's mean equals the discrete measure's mean (Gaussians are symmetric)
    density_mean = np.trapezoid(result["grid"] * result["density"], result["grid"])
    assert abs(density_mean - result["moments"]["mean"]) < 1e-3 * max(1.0, np.abs(result["grid"]).max())
    # the extreme nodes bracket the spectrum's ends closely (Lanczos finds extremes first)
    eig = np.linalg.eigvalsh(exact)
    assert result["nodes"].max() <= eig.max() + 1e-8 and result["nodes"].max() > eig.max() - 1e-3 * abs(eig.max())


def test_operator_leaves_model_untouched():
    net, masks, batches = small_net("sp")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    op = HessianOperator(net, batches, masks)
    op.matvec(np.ones(op.dim))
    assert net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_pruned_entry_nonzero_is_an_error():
    net, masks, batches = small_net("sp")
    name = next(n for n, m in masks.items() if (~m).any())
    with torch.no_grad():
        prunable_parameters(net)[name][~masks[name]] = 1.0
    with pytest.raises(ValueError, match="non-zero"):
        HessianOperator(net, batches, masks)


def test_hessian_summary_is_json_and_agrees_with_exact(setup):
    import json

    from ip.metrics.hessian import hessian_summary
    _, net, masks, batches, exact, *_ = setup
    summary = hessian_summary(net, batches, masks, top_k=3, tol=1e-6, trace_probes=100, slq_probes=3,
                              lanczos_steps=20, bn_mode="running")
    json.dumps(summary)
    eig = np.sort(np.linalg.eigvalsh(exact))[::-1]
    assert np.allclose(summary["top_eigenvalues"], eig[:3], rtol=1e-5)
    assert abs(summary["trace"] - np.trace(exact)) <= 4 * summary["trace_stderr"]
    assert summary["dim"] == exact.shape[0]
    assert abs(np.trapezoid(summary["density"], summary["density_grid"]) - 1) < 1e-3


class BatchStatisticsNorm(nn.Module):
    """BatchNorm2d in train mode written with elementary ops: normalise by the batch's
    mean and biased variance, then scale and shift (no running statistics)."""

    def __init__(self, bn: nn.BatchNorm2d):
        super().__init__()
        self.weight, self.bias, self.eps = bn.weight, bn.bias, bn.eps

    def forward(self, x):
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        scale, shift = self.weight[None, :, None, None], self.bias[None, :, None, None]
        return (x - mean) / torch.sqrt(var + self.eps) * scale + shift


def with_batch_statistics_norm(net: nn.Sequential) -> nn.Sequential:
    """A copy of ``net`` with every BatchNorm2d replaced by :class:`BatchStatisticsNorm` (same parameters)."""
    ref = copy.deepcopy(net)
    for i, module in enumerate(ref):
        if isinstance(module, nn.BatchNorm2d):
            ref[i] = BatchStatisticsNorm(module)
    return ref


def exact_kept_hessian_batch_statistics(net: nn.Module, masks: dict, batches: list) -> np.ndarray:
    """Exact Hessian of the mean loss with BN on each batch's own statistics.

    BN is replaced by :class:`BatchStatisticsNorm` in a copy, so the reference shares no
    BN kernel with the operator.  (``torch.func.hessian`` through train-mode
    ``BatchNorm2d`` itself, made buffer-free by ``replace_all_batch_norm_modules_``,
    gave an asymmetric matrix with torch 2.14: a non-zero mixed derivative between a
    BN weight and the preceding conv bias, which batch normalisation cancels exactly.)
    Batch losses are weighted by size.
    """
    ref = with_batch_statistics_norm(net)
    assert [n for n, _ in ref.named_parameters()] == [n for n, _ in net.named_parameters()]
    theta0, unflatten = flat_parameters(ref)
    total = sum(len(y) for _, y in batches)

    def loss(theta):
        params = unflatten(theta)
        return sum(F.cross_entropy(functional_call(ref, params, (x,)), y) * (len(y) / total) for x, y in batches)

    full = torch.func.hessian(loss)(theta0)
    keep = kept_mask(ref, masks)
    return full[keep][:, keep].detach().numpy()


@pytest.mark.parametrize("representation", ["sp", "ip"])
def test_batch_mode_operator_equals_exact_hessian_with_batch_statistics(representation):
    net, masks, batches = small_net(representation)
    exact = exact_kept_hessian_batch_statistics(net, masks, batches)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.eval()
    dense = HessianOperator(net, batches, masks, bn_mode="batch").dense()
    assert not net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert np.abs(dense - exact).max() < 1e-10 * max(1.0, np.abs(exact).max())
    # the mode reaches BN: with non-trivial running statistics the running-mode operator differs
    v = np.random.default_rng(0).standard_normal(dense.shape[0])
    running = HessianOperator(net, batches, masks, bn_mode="running").matvec(v)
    assert np.abs(running - exact @ v).max() > 1e-3 * np.abs(exact @ v).max()
    alias = HessianOperator(net, batches, masks, bn_mode="train").matvec(v)
    assert np.allclose(alias, dense @ v, rtol=1e-12, atol=1e-12)


def test_unknown_bn_mode_is_rejected_at_construction():
    net, masks, batches = small_net("sp")
    with pytest.raises(ValueError, match="bn_mode"):
        HessianOperator(net, batches, masks, bn_mode="batch_statistics")


def exact_gauss_newton(net: nn.Module, masks: dict, batches: list, batch_statistics: bool) -> np.ndarray:
    """sum_i J_i^T (diag p_i - p_i p_i^T) J_i / N over the kept coordinates, from full Jacobians."""
    ref = with_batch_statistics_norm(net) if batch_statistics else copy.deepcopy(net)
    ref.eval()
    theta0, unflatten = flat_parameters(ref)
    keep = kept_mask(ref, masks)
    total = sum(len(y) for _, y in batches)
    gn = torch.zeros(int(keep.sum()), int(keep.sum()), dtype=torch.float64)
    for x, _ in batches:
        jac = torch.func.jacrev(lambda theta: functional_call(ref, unflatten(theta), (x,)))(theta0)[..., keep]
        p = torch.softmax(functional_call(ref, unflatten(theta0), (x,)), dim=1).detach()
        for i in range(len(x)):
            gn += jac[i].T @ (torch.diag(p[i]) - torch.outer(p[i], p[i])) @ jac[i] / total
    return gn.detach().numpy()


@pytest.mark.parametrize("representation", ["sp", "ip"])
@pytest.mark.parametrize("bn_mode", ["running", "batch"])
def test_gauss_newton_trace_equals_exact(representation, bn_mode):
    net, masks, batches = small_net(representation)
    exact = np.trace(exact_gauss_newton(net, masks, batches, batch_statistics=bn_mode == "batch"))
    got = gauss_newton_trace(net, batches, masks, bn_mode=bn_mode)
    assert exact > 0 and got["trace"] == pytest.approx(exact, rel=1e-10)
    assert got["backward_passes"] == 6 * 2   # 3 classes: a softmax curvature has rank 2


@pytest.mark.parametrize("representation", ["sp", "ip"])
def test_relu_network_trace_is_its_gauss_newton_trace_unless_bn_uses_batch_statistics(representation):
    """Linear in each parameter tensor: the residual term has a zero diagonal with BN as a
    fixed affine map, so trace H = trace G >= 0; BN on batch statistics breaks that."""
    net, masks, batches = small_net(representation, act=nn.ReLU)
    running = np.trace(exact_kept_hessian(net, masks, batches)[0])
    assert running == pytest.approx(gauss_newton_trace(net, batches, masks, bn_mode="running")["trace"], rel=1e-10)
    batch = np.trace(exact_kept_hessian_batch_statistics(net, masks, batches))
    gn_batch = gauss_newton_trace(net, batches, masks, bn_mode="batch")["trace"]
    assert abs(batch - gn_batch) > 1e-3 * abs(gn_batch)
    smooth, *_ = small_net(representation)   # tanh: the residual term's diagonal is not zero
    assert abs(np.trace(exact_kept_hessian(smooth, masks, batches)[0])
               - gauss_newton_trace(smooth, batches, masks, bn_mode="running")["trace"]) > 1e-6
