"""Interspace pruning: filters as trainable-basis combinations, pruned in coefficient space."""
from .interspace import (FilterBasis, basis_parameters, factorised_conv2d, factorised_forward, fb_overhead_params,
                         filter_bases, is_interspace, to_interspace, to_spatial)
from .masks import MaskEnforcer, cost_report, load_masks, mask_summary, masks_from_scores, prunable_parameters, save_masks
from .models import available_models, get_model
from .onednn_guard import guard_convs

__all__ = [
    "FilterBasis", "basis_parameters", "factorised_conv2d", "factorised_forward", "fb_overhead_params",
    "filter_bases", "is_interspace", "to_interspace", "to_spatial", "MaskEnforcer", "cost_report", "load_masks",
    "mask_summary", "masks_from_scores", "prunable_parameters", "save_masks", "available_models", "get_model",
    "guard_convs",
]
