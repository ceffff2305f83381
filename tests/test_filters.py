"""The spatial participation ratio of the trained filters (claim C5, STUDY_SPEC section 3),
against values computed by hand, and why it, not the non-zero fraction, is the measure."""
from __future__ import annotations

import math

import pytest
import torch

from ip.interspace import to_interspace
from ip.masks import masks_from_scores, prunable_parameters
from ip.metrics.filters import filter_density, participation_ratio, spatial_filters
from ip.models import get_model


def one_layer(filters: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"conv": filters}


def test_one_entry_gives_one_over_k2_and_equal_energy_gives_one():
    w = torch.zeros(2, 1, 3, 3)
    w[0, 0, 1, 2] = -4.0                 # one non-zero entry
    w[1, 0] = 0.5                        # equal energy everywhere (any sign pattern)
    w[1, 0, 0, 0] = -0.5
    per_layer, overall = participation_ratio(one_layer(w), {"conv.weight": torch.ones_like(w, dtype=torch.bool)})
    assert per_layer["conv"]["mean"] == pytest.approx((1 / 9 + 1.0) / 2)
    assert overall["filters"] == 2 and overall["dense_share"] == pytest.approx(0.5)   # PR > 2/9: the second only


def test_two_unequal_entries_by_hand():
    w = torch.zeros(1, 1, 3, 3)
    w[0, 0, 0, 0], w[0, 0, 2, 2] = 1.0, 2.0
    _, overall = participation_ratio(one_layer(w), {"conv.weight": torch.ones_like(w, dtype=torch.bool)})
    assert overall["mean"] == pytest.approx((1 + 4) ** 2 / (9 * (1 + 16)))     # 25 / 153


def test_only_filters_that_keep_an_entry_count():
    w = torch.ones(3, 1, 3, 3)
    mask = torch.zeros_like(w, dtype=torch.bool)
    mask[1, 0, 0, 0] = True              # filter 1 keeps one entry; filters 0 and 2 keep none
    _, overall = participation_ratio(one_layer(w), {"conv.weight": mask})
    assert overall["filters"] == 1 and overall["mean"] == pytest.approx(1.0)


def pruned(interspace: bool):
    torch.manual_seed(0)
    model = get_model("resnet20", 10, 1, 4)
    if interspace:
        model = to_interspace(model, fb_init="random_orthogonal", generator=torch.Generator().manual_seed(1))
    params = prunable_parameters(model)
    g = torch.Generator().manual_seed(2)
    masks = masks_from_scores({n: torch.rand(p.shape, generator=g) for n, p in params.items()}, 0.9)
    with torch.no_grad():
        for name, p in params.items():
            p.mul_(masks[name])
    return spatial_filters(model), masks


def test_the_non_zero_fraction_cannot_fail_for_ip_the_participation_ratio_can():
    """With 10 % of the coefficients kept, a random FB makes most IP filter entries non-zero,
    whatever their energy; the participation ratio measures how evenly it is spread."""
    (sp_filters, sp_masks), (ip_filters, ip_masks) = pruned(False), pruned(True)
    _, sp_nonzero = filter_density(sp_filters)
    _, ip_nonzero = filter_density(ip_filters)
    assert sp_nonzero < 0.12 and ip_nonzero > 0.5
    _, sp_pr = participation_ratio(sp_filters, sp_masks)
    _, ip_pr = participation_ratio(ip_filters, ip_masks)
    assert sp_pr["filters"] > 0 and ip_pr["filters"] > 0
    assert 1 / 9 <= sp_pr["mean"] < ip_pr["mean"] < 1.0
    assert not math.isnan(ip_pr["dense_share"])
