"""Pruning at initialisation: scores against direct computations, masks, budgets, SP vs IP.

Direct computations here are written from the formulas and share no code with
ip.pruning: SNIP and the IP chain rule from plain autograd on the spatial network,
GraSP's Hessian-gradient product by central finite differences, SynFlow's scores from
the multilinearity of the path sum R (score_i = R(theta) - R(theta with entry i zeroed)).
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from ip.interspace import filter_bases, fb_overhead_params, to_interspace
from ip.masks import kept_budget, layer_name, mask_summary, prunable_parameters
from ip.models import get_model
from ip.pruning import METHODS, find_masks, method_info, option_sections, resolve_options
from ip.pruning.dst import DstOptions
from ip.pruning.gradual import GmpOptions, OneshotOptions
from ip.pruning.lottery import LotteryOptions
from ip.pruning.pai import (GraspOptions, RandomOptions, ScoreOptions, SynflowOptions, grasp_scores, snip_scores,
                            synflow_masks, synflow_scores)

SPARSITIES = (0.5, 0.9, 0.98, 0.995)

PAI = ("random", "magnitude", "snip", "grasp", "synflow")


def synflow_options(method, rounds):
    """Options of ``method`` in tests looping over methods: only synflow takes ``rounds``."""
    return {"rounds": rounds} if method == "synflow" else None


def tiny(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return get_model("resnet20", num_classes=10, in_channels=1, width=4).to(dtype)


def make_batches(n=2, size=8, seed=1, dtype=torch.float32, hw=8):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 1, hw, hw, generator=g, dtype=dtype), torch.randint(0, 10, (size,), generator=g))
            for _ in range(n)]


def by_layer(masks):
    """Masks keyed by module name, so SP (``conv.weight``) and IP (``conv...original``) compare."""
    return {layer_name(n): m for n, m in masks.items()}


def spatial_and_interspace(fb_init, dtype=torch.float64):
    sp = tiny(dtype=dtype)
    ip = to_interspace(copy.deepcopy(sp), fb_init)
    return sp, ip


def ip_basis(ip_model):
    """F of every interspace layer, keyed by module name (share='layer')."""
    return {name: fb.basis.detach() for name, fb in filter_bases(ip_model).items()}


def chain_to_coefficients(spatial_grads, ip_model):
    """dL/dlambda = dL/dW . F for W = lambda . F^T (rows of length K^2); other layers unchanged."""
    bases = ip_basis(ip_model)
    out = {}
    for lname, g in spatial_grads.items():
        if lname in bases:
            k2 = bases[lname].shape[0]
            out[lname] = (g.reshape(-1, k2) @ bases[lname]).reshape(g.shape)
        else:
            out[lname] = g
    return out


def plain_grad_sum(model, batches, temperature=1.0):
    """Sum over batches of d loss / d weight for every conv/linear weight, keyed by module name."""
    net = copy.deepcopy(model).train()
    weights = {n[: -len(".weight")]: p for n, p in net.named_parameters()
               if n.endswith(".weight") and p.dim() > 1}
    total = {n: torch.zeros_like(p) for n, p in weights.items()}
    for x, y in batches:
        grads = torch.autograd.grad(F.cross_entropy(net(x) / temperature, y), list(weights.values()))
        for n, g in zip(weights, grads):
            total[n] += g
    return total


def coefficients_by_layer(model):
    return {layer_name(n): p.detach() for n, p in prunable_parameters(model).items()}


# ---------------------------------------------------------------------------------------
# registry

def test_registry_lists_every_method_with_its_family():
    assert METHODS == ("dense", "random", "magnitude", "snip", "grasp", "synflow", "lt", "rigl", "set", "gmp",
                       "oneshot")
    families = {m: method_info(m).family for m in METHODS}
    assert families == {"dense": "baseline", "random": "pai", "magnitude": "pai", "snip": "pai", "grasp": "pai",
                        "synflow": "pai", "lt": "lt", "rigl": "dst", "set": "dst", "gmp": "gradual",
                        "oneshot": "pretrained"}
    assert [m for m in METHODS if method_info(m).needs_data] == ["snip", "grasp"]
    assert [m for m in METHODS if method_info(m).needs_training] == ["lt", "oneshot"]
    assert [m for m in METHODS if not method_info(m).uses_sparsity] == ["dense"]
    assert [m for m in METHODS if method_info(m).needs_dense_grad] == ["rigl"]
    assert [m for m in METHODS if method_info(m).finetunes] == ["oneshot"]
    assert [m for m in METHODS if method_info(m).has_train_hook] == ["rigl", "set", "gmp"]
    assert {m: method_info(m).params_key for m in METHODS} == {**{m: m for m in METHODS}, "rigl": "dst", "set": "dst"}
    assert method_info("rigl").options is method_info("set").options is DstOptions
    assert {m: method_info(m).options for m in METHODS if method_info(m).options.model_fields} == {
        "random": RandomOptions, "snip": ScoreOptions, "grasp": GraspOptions, "synflow": SynflowOptions,
        "lt": LotteryOptions, "rigl": DstOptions, "set": DstOptions, "gmp": GmpOptions, "oneshot": OneshotOptions}
    assert option_sections() == {"random": RandomOptions, "snip": ScoreOptions, "grasp": GraspOptions,
                                 "synflow": SynflowOptions, "lt": LotteryOptions, "dst": DstOptions,
                                 "gmp": GmpOptions, "oneshot": OneshotOptions}
    with pytest.raises(ValueError, match="allowed: dense, random"):
        method_info("snap")
    # a typo, and a key of another method, are errors (never silently ignored)
    with pytest.raises(ValueError, match="synflow option round: Extra inputs are not permitted"):
        find_masks("synflow", tiny(), 0.9, options={"round": 3})
    with pytest.raises(ValueError, match="magnitude option rounds: Extra inputs are not permitted"):
        find_masks("magnitude", tiny(), 0.9, options={"rounds": 3})
    with pytest.raises(ValueError, match="snip option temperature: Extra inputs are not permitted"):
        find_masks("snip", tiny(), 0.9, batches=make_batches(), options={"temperature": 100.0})
    with pytest.raises(ValueError, match="grasp option bn_mode"):
        find_masks("grasp", tiny(), 0.9, batches=make_batches(), options={"bn_mode": "test"})
    with pytest.raises(ValueError, match="synflow takes SynflowOptions, got GraspOptions"):
        find_masks("synflow", tiny(), 0.9, options=GraspOptions())
    with pytest.raises(ValueError, match="gmp option"):
        resolve_options("gmp", {"start_fraction": 0.8, "end_fraction": 0.5})
    assert resolve_options("synflow", {"rounds": 7}) == SynflowOptions(rounds=7)
    assert resolve_options("grasp", None) == GraspOptions() and GraspOptions().temperature == 200.0
    with pytest.raises(ValueError, match="needs data"):
        find_masks("snip", tiny(), 0.9)


# ---------------------------------------------------------------------------------------
# scores against direct computations

@pytest.mark.parametrize("fb_init", [None, "dct"])
def test_snip_scores_equal_direct_computation(fb_init):
    sp, ip = spatial_and_interspace(fb_init or "spatial")
    model = sp if fb_init is None else ip
    batches = make_batches(dtype=torch.float64)
    spatial_grads = plain_grad_sum(sp, batches)
    grads = spatial_grads if fb_init is None else chain_to_coefficients(spatial_grads, ip)
    theta = coefficients_by_layer(model)
    expected = {n: (theta[n] * grads[n]).abs() for n in theta}
    got = {layer_name(n): s for n, s in snip_scores(model, batches).items()}
    assert set(got) == set(expected)
    scale = max(float(e.max()) for e in expected.values())
    assert scale > 0
    for n in expected:
        torch.testing.assert_close(got[n], expected[n], rtol=1e-7, atol=1e-10 * scale)


@pytest.mark.parametrize("fb_init", [None, "dct"])
def test_grasp_scores_equal_finite_difference_hessian_gradient(fb_init):
    temperature = 200.0
    sp, ip = spatial_and_interspace(fb_init or "spatial")
    model = sp if fb_init is None else ip
    batches = make_batches(dtype=torch.float64)

    net = copy.deepcopy(model).train()
    params = list(prunable_parameters(net).values())

    def grad_sum():
        total = [torch.zeros_like(p) for p in params]
        for x, y in batches:
            for t, g in zip(total, torch.autograd.grad(F.cross_entropy(net(x) / temperature, y), params)):
                t += g
        return total

    g = grad_sum()
    norm = torch.sqrt(sum((gi ** 2).sum() for gi in g))
    eps = 1e-6 / float(norm)
    with torch.no_grad():
        for p, gi in zip(params, g):
            p.add_(eps * gi)
    g_plus = grad_sum()
    with torch.no_grad():
        for p, gi in zip(params, g):
            p.sub_(2 * eps * gi)
    g_minus = grad_sum()
    hess_grad = [(a - b) / (2 * eps) for a, b in zip(g_plus, g_minus)]
    theta = [p.detach() for p in prunable_parameters(model).values()]
    expected = [-t * hg for t, hg in zip(theta, hess_grad)]

    got = list(grasp_scores(model, batches, temperature=temperature).values())
    scale = max(float(e.abs().max()) for e in expected)
    assert scale > 0
    for e, s in zip(expected, got):
        torch.testing.assert_close(s, e, rtol=0, atol=1e-5 * scale)


def test_grasp_keeps_the_smallest_scores():
    model = tiny()
    batches = make_batches()
    scores = grasp_scores(model, batches)
    masks, _ = find_masks("grasp", model, 0.9, batches=batches)
    kept = torch.cat([scores[n][m] for n, m in masks.items()])
    removed = torch.cat([scores[n][~m] for n, m in masks.items()])
    assert kept.numel() == kept_budget(model, 0.9)
    # removal of the largest S = -theta*Hg; a flipped sign would keep the largest instead
    assert float(kept.max()) <= float(removed.min())
    assert float(removed.min()) < float(removed.max())


def linearised_flow(model, input_shape, masks_by_layer=None, zero=None):
    """R = 1^T f(1) of the |.|-network in eval mode (float64); ``zero=(layer, flat index)``."""
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.abs_()
        for n, p in prunable_parameters(net).items():
            if masks_by_layer is not None:
                p.mul_(masks_by_layer[layer_name(n)])
            if zero is not None and layer_name(n) == zero[0]:
                p.view(-1)[zero[1]] = 0.0
        return float(net(torch.ones((1, *input_shape), dtype=torch.float64)).sum())


@pytest.mark.parametrize("fb_init", [None, "dct"])
def test_synflow_scores_equal_path_removal(fb_init):
    # R is affine in each single entry (every path crosses a layer once, all signals are
    # non-negative so ReLUs are identities), hence theta_i dR/dtheta_i = R - R(theta_i = 0).
    model = tiny() if fb_init is None else to_interspace(tiny(), fb_init)
    shape = (1, 8, 8)
    g = torch.Generator().manual_seed(3)
    masks = {n: torch.rand(p.shape, generator=g) < 0.7 for n, p in prunable_parameters(model).items()}
    masks_by_layer = by_layer(masks)
    scores = {layer_name(n): s for n, s in synflow_scores(model, shape, masks).items()}
    base = linearised_flow(model, shape, masks_by_layer)
    assert base > 0
    for lname, s in scores.items():
        flat = s.reshape(-1)
        for idx in torch.randperm(flat.numel(), generator=g)[:4].tolist():
            direct = base - linearised_flow(model, shape, masks_by_layer, zero=(lname, idx))
            assert float(flat[idx]) == pytest.approx(direct, rel=1e-6, abs=1e-9 * base)
            if not masks_by_layer[lname].reshape(-1)[idx]:
                assert float(flat[idx]) == 0.0


def test_synflow_is_data_free_and_iterative():
    model = tiny()
    keep = kept_budget(model, 0.98)
    a, _ = find_masks("synflow", model, 0.98, batches=make_batches(seed=1), options={"rounds": 20})
    b, _ = find_masks("synflow", model, 0.98, batches=[(10 * x + 3, y) for x, y in make_batches(seed=7)],
                      options={"rounds": 20})
    c, _ = find_masks("synflow", model, 0.98, input_shape=(1, 8, 8), options={"rounds": 20})
    assert all(torch.equal(a[n], b[n]) and torch.equal(a[n], c[n]) for n in a)
    # one round is plain top-k of the one-shot scores; more rounds give a different mask
    one_round = synflow_masks(model, keep, (1, 8, 8), rounds=1)
    scores = synflow_scores(model, (1, 8, 8))
    threshold = torch.cat([s.reshape(-1) for s in scores.values()]).sort(descending=True).values[keep - 1]
    assert all(bool((scores[n][one_round[n]] >= threshold).all()) for n in scores)
    assert sum(int((one_round[n] != a[n]).sum()) for n in a) > 0


def test_synflow_reaches_extreme_sparsity_without_disconnecting():
    """99.9 %: SynFlow keeps every layer of a plain CNN (VGG-16) and keeps ResNet-20 connected.

    In a ResNet a residual branch (or the shortcut beside it) is not a cut of the
    network: SynFlow, maximising the path sum, may empty it entirely while the
    identity path carries the flow; that is the paper's "maximal critical compression",
    and mask_summary reports those layers as collapsed.  Magnitude and SNIP instead
    disconnect both nets (zero input-output flow).
    """
    sparsity = 0.999
    torch.manual_seed(0)
    vgg = get_model("vgg16", num_classes=10, in_channels=1, width=8)
    torch.manual_seed(0)
    resnet = get_model("resnet20", num_classes=10, in_channels=1, width=16)
    batches = make_batches(n=1, size=16, hw=16)
    for net in (vgg, resnet):
        for method in ("synflow", "magnitude", "snip"):
            masks, _ = find_masks(method, net, sparsity, batches=batches)
            summary = mask_summary(masks)
            by_name = by_layer(masks)
            # flow through kept paths: R minus what the output biases alone contribute
            flow = (linearised_flow(net, (1, 16, 16), by_name)
                    - linearised_flow(net, (1, 16, 16), {n: torch.zeros_like(m) for n, m in by_name.items()}))
            assert summary.kept_params == kept_budget(net, sparsity)
            if method == "synflow":
                assert flow > 0
                if net is vgg:
                    assert summary.collapsed_layers == []
                else:
                    assert {"conv1", "fc"}.isdisjoint(summary.collapsed_layers)
                    assert all(c.startswith("layer") for c in summary.collapsed_layers)
            else:
                assert abs(flow) < 1e-12
                assert len(summary.collapsed_layers) >= 1


# ---------------------------------------------------------------------------------------
# SP vs IP

@pytest.mark.parametrize("method", PAI)
def test_spatial_basis_gives_sp_masks_and_dct_does_not(method):
    sp = tiny()
    batches = make_batches()
    opts = synflow_options(method, 20)

    def masks_of(model):
        g = torch.Generator().manual_seed(5)
        return by_layer(find_masks(method, model, 0.9, batches=batches, generator=g, options=opts)[0])

    sp_masks = masks_of(sp)
    ip_spatial = masks_of(to_interspace(copy.deepcopy(sp), "spatial"))
    ip_dct = masks_of(to_interspace(copy.deepcopy(sp), "dct"))
    assert sp_masks.keys() == ip_spatial.keys() == ip_dct.keys()
    assert all(torch.equal(sp_masks[n], ip_spatial[n]) for n in sp_masks)
    differing = sum(int((sp_masks[n] != ip_dct[n]).sum()) for n in sp_masks)
    if method == "random":
        assert differing == 0  # random masks do not look at the weights
    else:
        assert differing > 100


@pytest.mark.parametrize("method", PAI)
def test_scoring_leaves_the_model_untouched(method):
    model = to_interspace(tiny(), "dct")
    model.train()
    before = copy.deepcopy(model.state_dict())
    find_masks(method, model, 0.9, batches=make_batches(), options=synflow_options(method, 5))
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # incl. BN running stats, lambda, F
    assert all(p.grad is None for p in model.parameters())
    assert model.training


# ---------------------------------------------------------------------------------------
# exact budgets

@pytest.mark.parametrize("share", ["layer", "network"])
def test_pai_kept_counts_are_exact(share):
    model = to_interspace(tiny(), "dct", share=share)
    total = sum(p.numel() for p in prunable_parameters(model).values())
    fb = fb_overhead_params(model)
    batches = make_batches(n=1)
    cases = [("dense", "global", "uniform"), ("random", "global", "uniform"), ("random", "global", "erk")]
    cases += [(m, scope, "uniform") for m in ("magnitude", "snip", "grasp", "synflow") for scope in ("global", "layer")]
    checked = 0
    for sparsity in SPARSITIES:
        # one FB per layer (1539 entries) exceeds the budget at high sparsity: that case must raise
        for fb_in_budget in ((False, True) if share == "network" else (True,)):
            expected = round((1 - sparsity) * total) - (fb if fb_in_budget else 0)
            for method, scope, distribution in cases:
                call = lambda: find_masks(method, model, sparsity, batches=batches, scope=scope,  # noqa: E731
                                          distribution=distribution, fb_in_budget=fb_in_budget,
                                          options=synflow_options(method, 10))
                if expected < 0 and method != "dense":
                    with pytest.raises(ValueError, match="filter-basis"):
                        call()
                    continue
                masks, start = call()
                assert start is None
                kept = mask_summary(masks).kept_params
                assert kept == (total if method == "dense" else expected), (method, scope, sparsity, fb_in_budget)
                if scope == "layer":
                    # equal densities up to one entry of rounding per layer
                    for n, m in masks.items():
                        assert abs(int(m.sum()) - expected / total * m.numel()) < 1.0 + 1e-9
                checked += 1
    assert checked >= (80 if share == "network" else 20)
