"""Trainability and generalisation metrics: gradient flow, Hessian spectra, gaps, BN handling."""
from .batchnorm import (BN_MODE_NAMES, BN_MODES, DEFAULT_BN_MODE, batchnorm_modules, preserved_state,
                        recalibrate_bn, resolve_bn_mode)
from .generalisation import evaluate, evaluate_batches, generalisation_gaps
from .gradient_flow import (CoordinateBlock, CoordinateSet, bn_context, check_pruned_zero, full_gradient,
                            gradient_flow, subset_loss, trainable_coordinates)
from .hessian import (HessianOperator, gauss_newton_trace, hessian_summary, hutchinson_trace, lanczos,
                      lanczos_quadrature, power_iteration_top_k, slq_density, top_eigenvalues)

__all__ = [
    "evaluate", "evaluate_batches", "generalisation_gaps", "CoordinateBlock", "CoordinateSet", "bn_context",
    "check_pruned_zero",
    "full_gradient", "gradient_flow", "subset_loss", "trainable_coordinates", "HessianOperator",
    "gauss_newton_trace", "hessian_summary", "hutchinson_trace", "lanczos", "lanczos_quadrature",
    "power_iteration_top_k",
    "slq_density", "top_eigenvalues", "BN_MODES", "BN_MODE_NAMES", "DEFAULT_BN_MODE", "batchnorm_modules",
    "preserved_state", "recalibrate_bn", "resolve_bn_mode",
]
