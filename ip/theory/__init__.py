"""Numerical checks of Theorem 1 as formalised in STUDY_SPEC section 4 (see docs/theorem1.md).

The paper's own statement of Theorem 1 was not available to this study; what is
checked here is our formalisation.  Given an SP network (plain model) and masks m over
its prunable weights, its IP twin is built with ``fb_init='spatial'`` (F_l = I, lambda = w,
same masks), so both compute the same function and have the same loss L.  Then

(a) m * grad_lambda L = m * grad_w L                      :func:`check_gradient_equality`
(b) GF_IP = ||m * grad_lambda L||^2 + sum_l ||grad_F_l L||^2 >= GF_SP
                                                          :func:`gradient_flow_comparison`
(c) one gradient step of size eta: L_IP(eta) = L - eta GF_IP + O(eta^2)
                                  <= L - eta GF_SP + O(eta^2) = L_SP(eta) + O(eta^2)
                                                          :func:`one_step_losses`
(d) the IP family contains the SP family at equal sparsity, not conversely
                                                          :func:`expressivity_check`
(e) grad_F by autograd agrees with central finite differences  :func:`fd_check_fb_gradient`

and, for a general (non-identity) F, (b)/(c) between IP with a trainable FB and IP with
the FB frozen: :func:`trainable_vs_frozen_fb`.  :func:`run_theorem1` runs everything and
returns JSON-able results plus tidy rows (check, variant, eta, quantity, value).

All checks work on float64 copies by default; the caller's model is never modified.
Gradients are those of the mean data loss over ``batches`` (no weight decay), computed
as in :mod:`ip.metrics.gradient_flow`.

BN mode.  The checks default to BN in *train* mode (batch statistics; running
statistics restored afterwards), unlike the GF metric's eval default.  Reason: at
initialisation the running statistics are (0, 1) and BN shifts are 0, so in eval mode a
conv output that is exactly zero stays exactly zero into the ReLU.  In a sparse net
that is common (every kept tap of a filter may see a zero input), and a perturbation of
F moves weight onto taps with non-zero inputs, so the ReLU sits exactly on its kink
along F: the loss is not differentiable in F there, autograd returns the relu'(0) = 0
convention and finite differences disagree with it (observed: relative error ~1e-2 on a
masked ResNet-20 in eval mode, ~1e-9 in train mode).  Train-mode BN centres each
channel, so exact zeros reach a ReLU only for channels that are zero over the whole
batch.  It is also the loss a training step actually sees.  Pass ``bn_mode='eval'`` to
check the eval-mode function instead.

Modules: :mod:`.twins` (the SP/IP twin, shared defaults), :mod:`.gradients` ((a), (b),
(e)), :mod:`.one_step` ((c) and the general-F statement), :mod:`.expressivity` ((d)),
:mod:`.run` (:func:`run_theorem1`).
"""
from .expressivity import basis_with_first_filter, expressivity_check
from .gradients import FD_RTOL, check_gradient_equality, fd_check_fb_gradient, gradient_flow_comparison
from .one_step import one_step_curve, one_step_losses, trainable_vs_frozen_fb
from .run import first_samples, run_theorem1
from .twins import DEFAULT_ETAS, THEORY_BN_MODE, apply_masks, interspace_twin, translate_masks

__all__ = ["DEFAULT_ETAS", "FD_RTOL", "THEORY_BN_MODE", "apply_masks", "basis_with_first_filter",
           "check_gradient_equality", "expressivity_check", "fd_check_fb_gradient", "first_samples",
           "gradient_flow_comparison",
           "interspace_twin", "one_step_curve", "one_step_losses", "run_theorem1", "trainable_vs_frozen_fb",
           "translate_masks"]
