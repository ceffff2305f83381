"""Interspace pruning: filters as trainable-basis combinations, pruned in coefficient space.

Convert a CNN (:func:`to_interspace`), find masks with any pruning method
(:func:`ip.pruning.find_masks`), keep them enforced while training (:class:`MaskEnforcer`),
store the pruned model sparsely (:func:`save_sparse`, :func:`load_sparse`) and run it
along the sparse factorised path (:func:`to_factorised`).
"""
from .factorised import FactorisedConv2d, to_factorised
from .interspace import (FilterBasis, basis_parameters, factorised_conv2d, factorised_forward, fb_overhead_params,
                         filter_bases, interspace_plan, is_interspace, to_interspace, to_spatial)
from .masks import (MaskEnforcer, MaskMismatchError, cost_report, load_masks, mask_summary, masks_from_scores,
                    prunable_parameters, restrict_pruning, save_masks)
from .models import available_models, get_model
from .onednn_guard import guard_convs
from .sparse_files import SparseFileError, load_sparse, read_header, save_sparse

__version__ = "0.2.0"

__all__ = [
    "FilterBasis", "basis_parameters", "factorised_conv2d", "factorised_forward", "fb_overhead_params",
    "filter_bases", "interspace_plan", "is_interspace", "to_interspace", "to_spatial", "FactorisedConv2d",
    "to_factorised", "MaskEnforcer", "MaskMismatchError", "cost_report", "load_masks", "mask_summary",
    "masks_from_scores", "prunable_parameters", "restrict_pruning", "save_masks", "available_models", "get_model",
    "guard_convs", "SparseFileError", "load_sparse", "read_header", "save_sparse", "__version__",
]
