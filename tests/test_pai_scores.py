"""Magnitude and SNIP masks keep the HIGHEST scores, exactly the budget (STUDY_SPEC section 2).

The scores are recomputed here from their definitions with plain autograd, sharing no
code with ip.pruning: |theta| for magnitude; |theta * dL/dtheta| for SNIP with the
gradient of each batch's mean cross-entropy summed over the batches, BN on batch
statistics (train mode), as ``ip.pruning.pai.snip_scores`` defines it.  theta is the
stored prunable tensor: lambda for interspace convs, the weight otherwise.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from ip.interspace import to_interspace
from ip.masks import kept_budget, prunable_parameters
from ip.models import get_model
from ip.pruning import find_masks

SPARSITY = 0.9


def network(representation):
    torch.manual_seed(0)
    net = get_model("resnet20", 10, 1, 4)
    if representation == "ip":
        net = to_interspace(net, fb_init="dct")  # lambda != w, so IP scores are not SP scores in disguise
    return net


def make_batches():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(2)]


def magnitude_by_hand(model, batches):
    return {n: p.detach().abs() for n, p in prunable_parameters(model).items()}


def snip_by_hand(model, batches):
    net = copy.deepcopy(model).train()
    params = prunable_parameters(net)
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for x, y in batches:
        grads = torch.autograd.grad(F.cross_entropy(net(x), y), list(params.values()))
        for n, g in zip(params, grads):
            total[n] += g
    return {n: (p.detach() * total[n]).abs() for n, p in params.items()}


SCORES = {"magnitude": magnitude_by_hand, "snip": snip_by_hand}


@pytest.mark.parametrize("representation", ["sp", "ip"])
@pytest.mark.parametrize("method", ["magnitude", "snip"])
def test_global_masks_keep_the_highest_scores_exactly_the_budget(method, representation):
    net = network(representation)
    batches = make_batches()
    masks, _ = find_masks(method, net, SPARSITY, batches=batches, scope="global")
    scores = SCORES[method](net, batches)
    assert masks.keys() == scores.keys()
    kept = torch.cat([scores[n][masks[n]] for n in masks])
    pruned = torch.cat([scores[n][~masks[n]] for n in masks])
    total = sum(m.numel() for m in masks.values())
    assert kept.numel() == kept_budget(net, SPARSITY) == round((1 - SPARSITY) * total)
    # kept and pruned scores must not interleave (a small slack for float summation order)
    scale = float(kept.max())
    assert float(kept.min()) >= float(pruned.max()) - 1e-6 * scale


@pytest.mark.parametrize("method", ["magnitude", "snip"])
def test_layer_scope_keeps_the_highest_scores_within_each_layer(method):
    net = network("sp")
    batches = make_batches()
    masks, _ = find_masks(method, net, SPARSITY, batches=batches, scope="layer")
    scores = SCORES[method](net, batches)
    assert sum(int(m.sum()) for m in masks.values()) == kept_budget(net, SPARSITY)
    for n, m in masks.items():
        if m.all() or not m.any():
            continue
        scale = float(scores[n].max())
        assert float(scores[n][m].min()) >= float(scores[n][~m].max()) - 1e-6 * scale, n
