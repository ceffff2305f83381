"""Masks: enforcement under optimisers and mask changes, exact budgets under ties, ERK,
persistence, summaries and the cost model (hand-computed on tiny nets)."""
from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ip.interspace import COEF_SUFFIX, coefficient, filter_bases, interspace_convs, to_interspace, to_spatial
from ip.masks import (MaskEnforcer, cost_report, dense_masks, erk_densities, exact_counts, keep_count, kept_budget,
                      layer_name, load_masks, mask_summary, masks_from_scores, masks_with_density,
                      prunable_parameters, save_masks)
from ip.models import get_model

REPRESENTATIONS = ("sp", "ip")



def _model(rep: str, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(0)
    model = get_model("resnet20", num_classes=10, in_channels=1, width=4).to(dtype)
    if rep == "ip":
        # a non-identity basis, so the spatial weights of IP are dense while lambda is sparse
        model = to_interspace(model, fb_init="dct")
    return model


def _random_masks(model: nn.Module, sparsity: float, seed: int):
    gen = torch.Generator().manual_seed(seed)
    scores = {n: torch.rand(p.shape, generator=gen) for n, p in prunable_parameters(model).items()}
    return masks_from_scores(scores, sparsity)


def _optimiser(kind: str, model: nn.Module) -> torch.optim.Optimizer:
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    if kind == "adam":
        return torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=5e-4)
    return torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2)


def _state_of(opt: torch.optim.Optimizer, p: torch.Tensor) -> torch.Tensor:
    state = opt.state[p]
    return state["momentum_buffer"] if "momentum_buffer" in state else state["exp_avg"]


def _batch(gen: torch.Generator):
    return torch.randn(8, 1, 8, 8, generator=gen), torch.randint(0, 10, (8,), generator=gen)


def _assert_pruned_zero(params, masks, what: str):
    for n, p in params.items():
        pruned = ~masks[n]
        assert torch.count_nonzero(p.detach()[pruned]) == 0, f"{what}: pruned entries of {n} are non-zero"


# ---------------------------------------------------------------- enforcement

@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("rep", REPRESENTATIONS)
def test_pruned_entries_stay_zero_through_training_and_a_mask_change(rep, kind):
    model = _model(rep)
    params = prunable_parameters(model)
    masks = _random_masks(model, 0.7, seed=1)
    enforcer = MaskEnforcer(model, masks)
    opt = _optimiser(kind, model)
    enforcer.attach(opt)
    gen = torch.Generator().manual_seed(2)
    _assert_pruned_zero(params, masks, "after MaskEnforcer()")

    def train(steps: int, current):
        for _ in range(steps):
            x, y = _batch(gen)
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            for n, p in params.items():
                assert torch.count_nonzero(p.grad[~current[n]]) == 0, f"grad of pruned entries of {n}"
                assert torch.count_nonzero(p.grad[current[n]]) > 0, f"no gradient reaches kept entries of {n}"
            opt.step()
            _assert_pruned_zero(params, current, "after a step")

    before = {n: p.detach().clone() for n, p in params.items()}
    train(10, masks)
    assert all(not torch.equal(before[n][masks[n]], p.detach()[masks[n]]) for n, p in params.items())

    # a DST-style mask change: drop half of the kept entries, regrow as many pruned ones
    new_masks, dropped, grown = {}, {}, {}
    for n, m in masks.items():
        flat = m.reshape(-1)
        kept_idx = flat.nonzero().squeeze(1)
        pruned_idx = (~flat).nonzero().squeeze(1)
        n_move = min(len(kept_idx) // 2, len(pruned_idx))
        new = flat.clone()
        new[kept_idx[:n_move]] = False
        new[pruned_idx[:n_move]] = True
        new_masks[n] = new.reshape(m.shape)
        dropped[n] = m & ~new_masks[n]
        grown[n] = new_masks[n] & ~m
    # the test is only meaningful if the optimiser still carries state for the dropped entries
    stale = sum(int(torch.count_nonzero(_state_of(opt, params[n])[dropped[n]])) for n in params)
    assert stale > 0
    enforcer.set_masks(new_masks)
    _assert_pruned_zero(params, new_masks, "after set_masks")
    assert all(torch.count_nonzero(params[n].detach()[grown[n]]) == 0 for n in params)  # regrown start at 0
    train(10, new_masks)
    assert sum(int(torch.count_nonzero(params[n].detach()[grown[n]])) for n in params) > 0
    assert sum(int(m.sum()) for m in new_masks.values()) == sum(int(m.sum()) for m in masks.values())


@pytest.mark.parametrize("rep", REPRESENTATIONS)
def test_without_attach_momentum_revives_dropped_entries(rep):
    """Control for the test above: the post-step re-masking is what keeps dropped entries at zero."""
    model = _model(rep)
    params = prunable_parameters(model)
    masks = _random_masks(model, 0.5, seed=1)
    enforcer = MaskEnforcer(model, masks)  # hooks only, not attached
    opt = _optimiser("sgd", model)
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):
        x, y = _batch(gen)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    enforcer.set_masks({n: torch.zeros_like(m) if i == 0 else m for i, (n, m) in enumerate(masks.items())})
    x, y = _batch(gen)
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()
    first = next(iter(params.values()))
    assert torch.count_nonzero(first.detach()) > 0


@pytest.mark.parametrize("rep", REPRESENTATIONS)
def test_forward_uses_only_kept_entries(rep):
    model = _model(rep, torch.float64).eval()
    masks = _random_masks(model, 0.8, seed=3)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        unmasked = model(x)
    # reference: a plain network whose spatial weights are built explicitly from masked entries
    reference = to_spatial(model)
    ref_modules = dict(reference.named_modules())
    with torch.no_grad():
        for n, p in prunable_parameters(model).items():
            masked = p.detach() * masks[n]
            module = dict(model.named_modules())[layer_name(n)]
            if n.endswith(COEF_SUFFIX):
                basis = filter_bases(module)[""].basis.detach()
                c_out, c_in, k, _ = masked.shape
                g = basis.T.reshape(k * k, k, k)  # g[n] = column n of F as a K x K filter
                masked = torch.einsum("ocn,nij->ocij", masked.reshape(c_out, c_in, k * k), g)
            ref_modules[layer_name(n)].weight.copy_(masked)
    kept_before = {n: p.detach()[masks[n]].clone() for n, p in prunable_parameters(model).items()}

    MaskEnforcer(model, masks)
    with torch.no_grad():
        got = model(x)
        expected = reference(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    assert (got - unmasked).abs().max() > 1e-3  # the masks really changed the function
    for n, p in prunable_parameters(model).items():
        assert torch.equal(p.detach()[masks[n]], kept_before[n])  # kept entries untouched


def test_ip_masks_lambda_not_spatial_weight():
    """IP prunes coefficients: with a DCT basis the spatial filters of a masked layer stay dense."""
    model = _model("ip")
    masks = _random_masks(model, 0.8, seed=4)
    MaskEnforcer(model, masks)
    name, conv = next(iter(interspace_convs(model)))
    lam_zeros = (coefficient(conv) == 0).float().mean().item()
    w_zeros = (conv.weight == 0).float().mean().item()
    assert lam_zeros > 0.5
    assert w_zeros < 0.3


def test_keep_dense_grad_keeps_the_unmasked_gradient(tiny_resnet):
    masks = _random_masks(tiny_resnet, 0.9, seed=5)
    enforcer = MaskEnforcer(tiny_resnet, masks, keep_dense_grad=True)
    x, y = _batch(torch.Generator().manual_seed(6))
    F.cross_entropy(tiny_resnet(x), y).backward()
    params = prunable_parameters(tiny_resnet)
    assert set(enforcer.dense_grads) == set(params)
    for n, p in params.items():
        dense = enforcer.dense_grads[n]
        assert torch.equal(dense * masks[n], p.grad)
        assert torch.count_nonzero(dense[~masks[n]]) > 0  # RigL needs the gradient of pruned entries


def test_remove_stops_gradient_masking(tiny_resnet):
    masks = _random_masks(tiny_resnet, 0.9, seed=5)
    enforcer = MaskEnforcer(tiny_resnet, masks)
    enforcer.remove()
    x, y = _batch(torch.Generator().manual_seed(6))
    F.cross_entropy(tiny_resnet(x), y).backward()
    n, p = next(iter(prunable_parameters(tiny_resnet).items()))
    assert torch.count_nonzero(p.grad[~masks[n]]) > 0


def test_set_masks_rejects_unknown_names_and_wrong_shapes(tiny_resnet):
    masks = dense_masks(tiny_resnet)
    enforcer = MaskEnforcer(tiny_resnet, masks)
    with pytest.raises(KeyError, match="bn1.weight"):
        enforcer.set_masks({"bn1.weight": torch.ones(4, dtype=torch.bool)})
    with pytest.raises(ValueError, match="conv1.weight"):
        enforcer.set_masks({"conv1.weight": torch.ones(4, 1, 3, 1, dtype=torch.bool)})


def test_prunable_parameters_are_lambda_and_spatial_weights_never_bn_bias_or_basis():
    sp, ip = _model("sp"), _model("ip")
    sp_names, ip_names = set(prunable_parameters(sp)), set(prunable_parameters(ip))
    assert len(sp_names) == len(ip_names) == 19 + 2 + 1  # 3x3 convs, 1x1 shortcuts, fc
    assert sum(n.endswith(COEF_SUFFIX) for n in ip_names) == 19
    assert "layer2.0.shortcut.0.weight" in ip_names and "fc.weight" in ip_names
    for names in (sp_names, ip_names):
        assert not any("bn" in n or n.endswith("bias") or "basis" in n for n in names)
    assert {layer_name(n) for n in ip_names} == {layer_name(n) for n in sp_names}


# ---------------------------------------------------------------- exact budgets and ties

@pytest.mark.parametrize("total,sparsity,expected", [
    (1000, 0.98, 20), (10, 0.0, 10), (10, 0.9, 1), (7, 0.9, 1), (3, 0.5, 2), (272474, 0.99, 2725), (9, 0.99, 0),
])
def test_keep_count_rounds_to_nearest(total, sparsity, expected):
    assert keep_count(total, sparsity) == expected


@pytest.mark.parametrize("sparsity", [1.0, -0.1, 1.5])
def test_keep_count_rejects_invalid_sparsity(sparsity):
    with pytest.raises(ValueError, match="sparsity"):
        keep_count(10, sparsity)


def test_all_equal_scores_keep_exact_count_lowest_flat_index_first_global():
    scores = {"a": torch.ones(3, 4), "b": torch.ones(5), "c": torch.ones(2, 2, 2)}  # P = 25
    masks = masks_from_scores(scores, 0.5)
    kept = round(0.5 * 25)  # 12: all of a (12 entries, first in the flat order), nothing else
    assert sum(int(m.sum()) for m in masks.values()) == kept
    assert masks["a"].all() and not masks["b"].any() and not masks["c"].any()
    masks = masks_from_scores(scores, 0.4)  # keeps 15: a, then b[0:3]
    assert masks["a"].all()
    assert masks["b"].tolist() == [True, True, True, False, False]
    assert not masks["c"].any()
    again = masks_from_scores(scores, 0.4)
    assert all(torch.equal(masks[n], again[n]) for n in scores)


def test_all_equal_scores_per_layer_scope():
    scores = {"a": torch.ones(3, 4), "b": torch.ones(5), "c": torch.zeros(2, 2, 2)}
    masks = masks_from_scores(scores, 0.7, scope="layer")
    # round(0.3 * 12) = 4, round(0.3 * 5) = 2, round(0.3 * 8) = 2; row-major flat order
    assert masks["a"].reshape(-1).tolist() == [True] * 4 + [False] * 8
    assert masks["a"][0].all() and not masks["a"][1:].any()
    assert masks["b"].tolist() == [True, True, False, False, False]
    assert masks["c"].reshape(-1).tolist() == [True, True] + [False] * 6


def test_large_tie_blocks_are_broken_by_flat_index():
    """Large tensors take other sort kernels; the tie-break must not depend on that."""
    scores = {"w": torch.cat([torch.full((50_000,), 2.0), torch.ones(150_000)]).reshape(400, 500)}
    masks = masks_from_scores(scores, 0.6)  # keeps 80_000: all of the 2.0 block, then 30_000 ones
    flat = masks["w"].reshape(-1)
    assert int(flat.sum()) == 80_000
    assert flat[:80_000].all() and not flat[80_000:].any()


def test_scores_rank_before_ties_and_keep_total_overrides():
    scores = {"a": torch.tensor([3.0, 1.0, 1.0, 1.0, 2.0]), "b": torch.tensor([1.0, 5.0])}
    masks = masks_from_scores(scores, 0.5)  # round(3.5) = 4: 5.0, 3.0, 2.0, then first 1.0 (a[1])
    assert masks["a"].tolist() == [True, True, False, False, True]
    assert masks["b"].tolist() == [False, True]
    masks = masks_from_scores(scores, 0.5, keep_total=2)
    assert masks["a"].tolist() == [True, False, False, False, False]
    assert masks["b"].tolist() == [False, True]
    masks = masks_from_scores(scores, 0.5, keep_total=0)
    assert not any(m.any() for m in masks.values())


def test_masks_from_scores_rejects_non_finite_and_unknown_scope():
    with pytest.raises(ValueError, match="b"):
        masks_from_scores({"a": torch.ones(3), "b": torch.tensor([1.0, float("nan")])}, 0.5)
    with pytest.raises(ValueError, match="scope"):
        masks_from_scores({"a": torch.ones(3)}, 0.5, scope="network")


def test_masks_with_density_keeps_rounded_per_layer_counts():
    scores = {"a": torch.arange(10.0), "b": torch.ones(7)}
    masks = masks_with_density(scores, {"a": 0.28, "b": 1 / 7})
    assert masks["a"].tolist() == [False] * 7 + [True] * 3  # round(2.8) = 3, the three largest
    assert masks["b"].tolist() == [True] + [False] * 6


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.98])
def test_erk_densities_and_exact_counts_hit_the_budget_exactly(sparsity):
    model = get_model("resnet20", in_channels=3, width=16)
    params = prunable_parameters(model)
    shapes = {n: p.shape for n, p in params.items()}
    sizes = {n: p.numel() for n, p in params.items()}
    total = sum(sizes.values())
    dens = erk_densities(shapes, sparsity)
    assert set(dens) == set(shapes)
    assert all(0.0 < d <= 1.0 for d in dens.values())
    assert sum(dens[n] * sizes[n] for n in sizes) == pytest.approx((1 - sparsity) * total, rel=1e-12)
    # ERK: density proportional to sum(shape) / prod(shape) among layers that are not dense
    sparse_layers = [n for n in shapes if dens[n] < 1.0]
    assert len(sparse_layers) >= 2
    ratios = [dens[n] / (sum(shapes[n]) / sizes[n]) for n in sparse_layers]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-12)
    # a dense layer is one whose ERK density would have exceeded 1
    for n in shapes:
        if dens[n] == 1.0:
            assert ratios[0] * sum(shapes[n]) / sizes[n] >= 1.0

    keep_total = keep_count(total, sparsity)
    counts = exact_counts(dens, sizes, keep_total)
    assert sum(counts.values()) == keep_total
    assert all(0 <= counts[n] <= sizes[n] for n in sizes)
    assert all(abs(counts[n] - dens[n] * sizes[n]) < 1.0 for n in sizes)


def test_erk_makes_small_layers_dense_at_low_sparsity():
    shapes = {"small": torch.Size([4, 1, 3, 3]), "big": torch.Size([64, 64, 3, 3])}
    dens = erk_densities(shapes, 0.5)
    assert dens["small"] == 1.0
    sizes = {"small": 36, "big": 64 * 64 * 9}
    assert dens["big"] * sizes["big"] == pytest.approx(0.5 * (36 + sizes["big"]) - 36, rel=1e-12)


def test_exact_counts_largest_remainder():
    counts = exact_counts({"a": 0.5, "b": 0.5, "c": 0.5}, {"a": 3, "b": 5, "c": 7}, 8)
    # raw 1.5, 2.5, 3.5 -> floors 1, 2, 3 (6); two leftovers go to equal remainders in name order
    assert counts == {"a": 2, "b": 3, "c": 3}
    # raw 3.0, 9.5 -> floors 3, 9; the one leftover goes to the larger remainder (b), not by name
    assert exact_counts({"a": 0.3, "b": 0.95}, {"a": 10, "b": 10}, 13) == {"a": 3, "b": 10}
    # b fills up to its size, the rest goes to a
    counts = exact_counts({"a": 0.3, "b": 0.95}, {"a": 10, "b": 10}, 15)
    assert counts == {"a": 5, "b": 10}


@pytest.mark.parametrize("share,fb_count", [("layer", 19), ("network", 1)])
def test_kept_budget_charges_filter_bases_when_asked(share, fb_count):
    sp = get_model("resnet20", in_channels=1, width=4)
    ip = to_interspace(sp, fb_init="dct", share=share, inplace=False)
    total = sum(p.numel() for p in prunable_parameters(sp).values())
    assert total == sum(p.numel() for p in prunable_parameters(ip).values())
    assert kept_budget(sp, 0.9) == kept_budget(ip, 0.9) == keep_count(total, 0.9)
    assert kept_budget(sp, 0.9, fb_in_budget=True) == keep_count(total, 0.9)  # SP has no basis
    assert kept_budget(ip, 0.9, fb_in_budget=True) == keep_count(total, 0.9) - fb_count * 81
    if share == "layer":
        with pytest.raises(ValueError, match="filter-basis"):
            kept_budget(ip, 0.995, fb_in_budget=True)


# ---------------------------------------------------------------- persistence

@pytest.mark.parametrize("rep", REPRESENTATIONS)
def test_save_load_round_trip(tmp_path, rep):
    model = _model(rep)
    masks = _random_masks(model, 0.9, seed=7)
    path = tmp_path / "masks.pt"
    save_masks(masks, path)
    loaded = load_masks(path, model)
    assert list(loaded) == list(masks)
    for n in masks:
        assert loaded[n].dtype == torch.bool
        assert torch.equal(loaded[n], masks[n])
    assert set(load_masks(path)) == set(masks)  # without a model: no checks, same content


def test_load_corrupt_file_raises_value_error(tmp_path):
    path = tmp_path / "masks.pt"
    path.write_bytes(b"this is not a torch file")
    with pytest.raises(ValueError, match="corrupt"):
        load_masks(path)
    torch.save([torch.ones(3, dtype=torch.bool)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="dict of tensors"):
        load_masks(tmp_path / "list.pt")


def test_load_mismatching_file_raises_value_error(tmp_path):
    sp, ip = _model("sp"), _model("ip")
    path = tmp_path / "sp.pt"
    save_masks(_random_masks(sp, 0.9, seed=7), path)
    # SP masks name spatial weights, IP masks name coefficients: loading across must fail loudly
    with pytest.raises(ValueError, match=r"not prunable parameters of the model.*spatial \(SP\) form and the model is interspace"):
        load_masks(path, ip)
    wider = get_model("resnet20", in_channels=1, width=8)
    with pytest.raises(ValueError, match=r"conv1\.weight has shape \(4, 1, 3, 3\), model has \(8, 1, 3, 3\)"):
        load_masks(path, wider)
    masks = _random_masks(sp, 0.9, seed=7)
    del masks["fc.weight"]
    save_masks(masks, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="fc.weight"):
        load_masks(tmp_path / "missing.pt", sp)


# ---------------------------------------------------------------- summary

@pytest.mark.parametrize("rep", REPRESENTATIONS)
def test_mask_summary_counts_and_collapsed_layers(rep):
    model = _model(rep)
    masks = dense_masks(model)
    names = list(masks)
    masks[names[3]] = torch.zeros_like(masks[names[3]])
    masks["fc.weight"] = torch.zeros_like(masks["fc.weight"])
    masks[names[5]] = masks[names[5]].clone()
    masks[names[5]].view(-1)[:7] = False
    summary = mask_summary(masks)
    total = sum(m.numel() for m in masks.values())
    pruned = masks[names[3]].numel() + masks["fc.weight"].numel() + 7
    assert summary.prunable_params == total
    assert summary.kept_params == total - pruned
    assert summary.sparsity == pytest.approx(pruned / total)
    assert summary.collapsed_layers == [layer_name(names[3]), "fc"]
    assert summary.collapsed_layers[0] == "layer1.1.conv1"
    assert summary.per_layer[names[5]]["kept"] == masks[names[5]].numel() - 7
    assert summary.per_layer[names[3]]["sparsity"] == 1.0
    assert mask_summary(dense_masks(model)).collapsed_layers == []


# ---------------------------------------------------------------- cost model

def _two_conv_net() -> nn.Sequential:
    torch.manual_seed(0)
    # 2x6x6 input: conv a -> 4x6x6 (36 output pixels); conv b (stride 2) -> 3x3x3 (9 output pixels)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.ReLU(),
                         nn.Conv2d(4, 3, 3, stride=2, padding=1, bias=True))


def test_cost_report_dense_and_sp_sparse_macs_by_hand():
    model = _two_conv_net()
    dense = cost_report(model, None, (2, 6, 6))
    assert dense["flops_dense"] == 4 * 2 * 9 * 36 + 3 * 4 * 9 * 9 == 3564
    assert dense["flops_sparse"] == 3564 and dense["flops_basis"] == 0
    assert dense["prunable_params"] == 72 + 108 and dense["kept_params"] == 180
    assert dense["fb_overhead_params"] == 0 and dense["fb_count"] == 0
    assert dense["total_params"] == 72 + 108 + 3

    masks = {n: torch.zeros_like(m) for n, m in dense_masks(model).items()}
    masks["0.weight"].view(-1)[[0, 5, 17, 40, 71]] = True  # 5 kept weights
    masks["2.weight"].view(-1)[[1, 2, 3, 50, 60, 70, 107]] = True  # 7 kept weights
    sparse = cost_report(model, masks, (2, 6, 6))
    assert sparse["flops_sparse"] == 5 * 36 + 7 * 9 == 243
    assert sparse["flops_dense"] == 3564
    assert sparse["kept_params"] == 12 and sparse["stored_params"] == 12
    assert sparse["sparsity_actual"] == pytest.approx(1 - 12 / 180)


def test_cost_report_ip_factorised_macs_by_hand():
    model = to_interspace(_two_conv_net(), fb_init="dct")
    a, b = (f"{i}.{COEF_SUFFIX}" for i in (0, 2))
    masks = {a: torch.zeros(4, 2, 3, 3, dtype=torch.bool), b: torch.zeros(3, 4, 3, 3, dtype=torch.bool)}
    # conv a: coefficients (out, in, basis n = i*3+j)
    for o, c, n in [(0, 0, 0), (1, 0, 0), (2, 1, 4), (3, 1, 5), (0, 1, 4)]:
        masks[a][o, c, n // 3, n % 3] = True
    # used (input channel, basis) pairs of a: (0,0), (1,4), (1,5) -> 3
    for o, c, n in [(0, 0, 0), (1, 0, 1), (2, 0, 1), (0, 3, 8), (1, 3, 8), (2, 3, 8), (2, 2, 0)]:
        masks[b][o, c, n // 3, n % 3] = True
    # used pairs of b: (0,0), (0,1), (3,8), (2,0) -> 4
    report = cost_report(model, masks, (2, 6, 6))
    basis_macs = 3 * 9 * 36 + 4 * 9 * 9
    coef_macs = 5 * 36 + 7 * 9
    assert report["flops_basis"] == basis_macs == 1296
    assert report["flops_sparse"] == basis_macs + coef_macs == 1539
    assert report["flops_dense"] == 3564
    assert report["fb_overhead_params"] == 2 * 81 and report["fb_count"] == 2
    assert report["kept_params"] == 12 and report["stored_params"] == 12 + 162
    assert report["total_params"] == 72 + 108 + 3 + 162


def test_cost_report_ip_grouped_conv_counts_pairs_per_input_channel():
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=2, bias=False)  # per group: 2 outputs x 2 inputs
    model = to_interspace(nn.Sequential(conv), fb_init="dct")
    name = f"0.{COEF_SUFFIX}"
    mask = torch.zeros(4, 2, 3, 3, dtype=torch.bool)
    mask[0, 1, 1, 0] = True  # group 0: input channel 1, basis 3
    mask[1, 1, 1, 0] = True  # group 0: the same pair again
    mask[2, 1, 1, 0] = True  # group 1: input channel 3, basis 3 -- a different pair
    report = cost_report(model, {name: mask}, (4, 5, 5))
    assert report["flops_basis"] == 2 * 9 * 25
    assert report["flops_sparse"] == 2 * 9 * 25 + 3 * 25
    assert report["flops_dense"] == 4 * 2 * 9 * 25


def test_cost_report_counts_linear_layers_once_per_sample(tiny_resnet):
    report = cost_report(tiny_resnet, None, (1, 8, 8))
    params = prunable_parameters(tiny_resnet)
    fc_macs = params["fc.weight"].numel()
    conv1_macs = params["conv1.weight"].numel() * 64
    # conv1 runs at 8x8, layer3 at 2x2 (two stride-2 stages)
    layer3_macs = sum(p.numel() for n, p in params.items() if n.startswith("layer3")) * 4
    layer2_macs = sum(p.numel() for n, p in params.items() if n.startswith("layer2")) * 16
    layer1_macs = sum(p.numel() for n, p in params.items() if n.startswith("layer1")) * 64
    assert report["flops_dense"] == conv1_macs + layer1_macs + layer2_macs + layer3_macs + fc_macs


def test_find_masks_leaves_excluded_layers_dense_and_a_bad_pattern_changes_nothing():
    from ip.masks import restrict_pruning
    from ip.pruning import find_masks
    model = to_interspace(get_model("resnet20", in_channels=1, width=4))
    every = set(prunable_parameters(model))
    masks, _ = find_masks("random", model, 0.9, exclude=["fc", "layer1.*"], generator=torch.Generator().manual_seed(0))
    assert masks and not any(n.startswith(("fc.", "layer1.")) for n in masks)
    assert set(prunable_parameters(model)) == set(masks) < every
    with pytest.raises(ValueError, match=r"exclude: 'nope\*' names no prunable layer"):
        restrict_pruning(model, exclude=["nope*"])
    assert set(prunable_parameters(model)) == set(masks)          # the earlier restriction stands
    restrict_pruning(model)
    assert set(prunable_parameters(model)) == every
