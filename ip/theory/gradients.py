"""The gradient statements of Theorem 1, for one mask.

(a) :func:`check_gradient_equality`  m * grad_lambda L = m * grad_w L
(b) :func:`gradient_flow_comparison` GF_IP = GF_SP + sum_l ||grad_F_l L||^2 >= GF_SP
(e) :func:`fd_check_fb_gradient`     grad_F by autograd against central finite differences
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..masks import Masks, layer_name, prunable_parameters
from ..metrics.gradient_flow import (Batches, LossFn, as_batches, full_gradient, gradient_flow, subset_loss,
                                     trainable_coordinates)
from .twins import THEORY_BN_MODE


def _grad_by_key(model: nn.Module, masks: Masks, batches: Batches, loss_fn: LossFn, bn_mode: str
                 ) -> tuple[float, dict[str, torch.Tensor]]:
    """Kept-coordinate gradients keyed so that SP and IP twins line up.

    Prunable tensors are keyed by layer (``conv`` for both ``conv.weight`` and lambda),
    every other non-FB parameter by its name (identical in both twins).
    """
    coords = trainable_coordinates(model, masks, include_fb=False)
    loss, grad = full_gradient(model, batches, coords, loss_fn, bn_mode)
    parts = coords.split(grad)
    return loss, {(b.layer if b.kind == "prunable" else b.name): parts[b.name] for b in coords}


# --------------------------------------------------------------------------- (a)

def check_gradient_equality(sp: nn.Module, ip: nn.Module, sp_masks: Masks, ip_masks: Masks, batches: Batches,
                            loss_fn: LossFn = F.cross_entropy, bn_mode: str = THEORY_BN_MODE,
                            atol: float = 1e-10) -> dict:
    """(a): max |m * grad_lambda - m * grad_w| over all masked prunable tensors.

    Returns ``max_abs_diff`` (prunable tensors), ``max_abs_diff_other`` (BN, biases:
    also equal, since the twins compute the same function), ``max_abs_grad`` (scale),
    ``loss_sp``, ``loss_ip``, ``per_layer`` {layer: max abs diff}, and ``holds``: both
    differences <= ``atol * max(1, max_abs_grad)`` (float64: F = I makes grad_lambda =
    grad_W F = grad_W up to rounding).
    """
    batches = as_batches(batches)
    loss_sp, g_sp = _grad_by_key(sp, sp_masks, batches, loss_fn, bn_mode)
    loss_ip, g_ip = _grad_by_key(ip, ip_masks, batches, loss_fn, bn_mode)
    if set(g_sp) != set(g_ip):
        raise ValueError(f"SP and IP twins have different coordinates: {sorted(set(g_sp) ^ set(g_ip))[:3]}")
    prunable_layers = {layer_name(n) for n in prunable_parameters(sp)}
    per_layer, other, scale = {}, 0.0, 0.0
    for key in g_sp:
        if g_sp[key].numel() != g_ip[key].numel():
            raise ValueError(f"{key}: SP keeps {g_sp[key].numel()} coordinates, IP {g_ip[key].numel()}")
        diff = float((g_sp[key] - g_ip[key]).abs().max()) if g_sp[key].numel() else 0.0
        if key in prunable_layers:
            per_layer[key] = diff
            if g_sp[key].numel():
                scale = max(scale, float(g_sp[key].abs().max()))
        else:
            other = max(other, diff)
    max_diff = max(per_layer.values(), default=0.0)
    return {"max_abs_diff": max_diff, "max_abs_diff_other": other, "max_abs_grad": scale, "loss_sp": loss_sp,
            "loss_ip": loss_ip, "per_layer": per_layer,
            "holds": bool(max(max_diff, other) <= atol * max(1.0, scale))}


# --------------------------------------------------------------------------- (b)

def gradient_flow_comparison(sp: nn.Module, ip: nn.Module, sp_masks: Masks, ip_masks: Masks, batches: Batches,
                             loss_fn: LossFn = F.cross_entropy, bn_mode: str = THEORY_BN_MODE,
                             rtol: float = 1e-9) -> dict:
    """(b): GF_IP vs GF_SP for one mask.

    ``gf_sp`` / ``gf_ip``: GF over all trainable unpruned coordinates (SP: masked w, BN,
    biases; IP: the same plus F); ``gf_sp_shared`` / ``gf_ip_shared``: the masked
    prunable tensors only (||m * grad_w||^2, ||m * grad_lambda||^2); ``gf_fb``:
    sum_l ||grad_F_l||^2, with ``fb_per_layer``.  ``difference`` = gf_ip - gf_sp, which
    the theorem says equals gf_fb (``difference_minus_fb`` ~ 0).  ``holds``: gf_ip >=
    gf_sp up to ``rtol``; ``strict``: gf_fb > 0 and gf_ip > gf_sp.
    """
    batches = as_batches(batches)
    gf_sp = gradient_flow(sp, batches, sp_masks, loss_fn, bn_mode)
    gf_ip = gradient_flow(ip, batches, ip_masks, loss_fn, bn_mode)
    fb_names = {b.name for b in trainable_coordinates(ip, ip_masks) if b.kind == "fb"}
    coords_ip = trainable_coordinates(ip, ip_masks)
    fb_per_layer = {b.layer: gf_ip["per_parameter"][b.name] for b in coords_ip if b.name in fb_names}
    difference = gf_ip["total"] - gf_sp["total"]
    tol = rtol * max(gf_sp["total"], 1e-300)
    return {
        "gf_sp": gf_sp["total"], "gf_ip": gf_ip["total"],
        "gf_sp_shared": gf_sp["shared"], "gf_ip_shared": gf_ip["shared"],
        "gf_fb": gf_ip["fb"], "fb_per_layer": fb_per_layer,
        "difference": difference, "difference_minus_fb": difference - gf_ip["fb"],
        "holds": bool(difference >= -tol), "strict": bool(gf_ip["fb"] > 0 and difference > tol),
        "loss": gf_sp["loss"],
    }


# --------------------------------------------------------------------------- (e)

#: Largest error of autograd's grad_F against central differences, relative to the
#: largest |grad_F| of the network, that (e) accepts: a float64 difference quotient with
#: eps = 1e-6 is accurate to ~1e-10 of that scale at a smooth point.
FD_RTOL = 1e-5

@torch.no_grad()
def fd_check_fb_gradient(ip: nn.Module, ip_masks: Masks, batches: Batches, loss_fn: LossFn = F.cross_entropy,
                         bn_mode: str = THEORY_BN_MODE, eps: float = 1e-6, entries_per_fb: int | None = None,
                         generator: torch.Generator | None = None, rtol: float = FD_RTOL,
                         kink_rtol: float | None = None) -> dict:
    """(e): autograd grad_F against central differences (L(F + eps E_ij) - L(F - eps E_ij)) / 2 eps.

    ``entries_per_fb`` random entries of each FB (all K^4 when None).  Returns
    ``max_abs_error``, ``max_rel_error`` (error / max |grad_F| of the network, the scale
    against which a float64 difference quotient is accurate to ~eps^2 + 1e-16/eps),
    ``max_abs_grad``, ``num_checked``, ``num_nondifferentiable``, ``max_kink_rel_error``
    and ``holds`` (some entry checked, ``max_rel_error < rtol`` and ``max_kink_rel_error <
    rtol``).  Use a float64 model.

    A ReLU network is not differentiable where a pre-activation is exactly zero, which
    pruned networks produce often (a channel whose inputs are all pruned or all zero).
    There the central difference averages two different one-sided slopes while autograd
    takes ReLU'(0) = 0, so the two need not agree: when autograd equals one side, they
    differ by half the gap between the sides.  Such entries are detected by their one-sided
    slopes disagreeing by more than ``kink_rtol`` of the gradient scale (for a smooth loss
    they differ by only ~eps |L''|), counted, and left out of the error.  The default
    ``kink_rtol = 2 rtol`` sets aside every kink whose half-gap could exceed ``rtol``; a
    larger one lets small kinks through as false gradient errors.  ``max_kink_rel_error``
    is autograd's distance to the nearer one-sided slope at the entries set aside: at a
    kink autograd takes one side (up to ~eps |L''|), while at a smooth point whose
    curvature alone separates the sides it would sit half the gap, at least ``rtol``, from
    both; so a wrong gradient cannot hide among the entries set aside.  (A perturbation
    that crosses kinks on both sides of F can match neither side; it fails the check and
    is worth a look at a smaller eps.)
    """
    kink_rtol = 2 * rtol if kink_rtol is None else kink_rtol
    batches = as_batches(batches)
    coords = trainable_coordinates(ip, ip_masks)
    fb_blocks = [b for b in coords if b.kind == "fb"]
    if not fb_blocks:
        raise ValueError("the model has no trainable filter basis")
    with torch.enable_grad():
        _, grad = full_gradient(ip, batches, coords, loss_fn, bn_mode)
    parts = coords.split(grad)
    base = subset_loss(ip, batches, loss_fn, bn_mode)
    scale = max(float(parts[b.name].abs().max()) for b in fb_blocks)
    max_err, checked, kinks, kink_err = 0.0, 0, 0, 0.0
    for b in fb_blocks:
        auto = parts[b.name].reshape(b.param.shape)
        n = b.param.numel()
        if entries_per_fb is None or entries_per_fb >= n:
            flat_idx = range(n)
        else:
            flat_idx = torch.randperm(n, generator=generator)[:entries_per_fb].tolist()
        flat = b.param.view(-1)
        for i in flat_idx:
            old = float(flat[i])
            flat[i] = old + eps
            plus = subset_loss(ip, batches, loss_fn, bn_mode)
            flat[i] = old - eps
            minus = subset_loss(ip, batches, loss_fn, bn_mode)
            flat[i] = old
            forward_slope, backward_slope = (plus - base) / eps, (base - minus) / eps
            analytic = float(auto.reshape(-1)[i])
            if abs(forward_slope - backward_slope) > kink_rtol * max(scale, 1e-300):
                kinks += 1
                kink_err = max(kink_err, min(abs(analytic - forward_slope), abs(analytic - backward_slope)))
                continue
            numeric = (plus - minus) / (2 * eps)
            max_err = max(max_err, abs(numeric - analytic))
            checked += 1
    rel, kink_rel = max_err / max(scale, 1e-300), kink_err / max(scale, 1e-300)
    return {"max_abs_error": max_err, "max_rel_error": rel, "max_abs_grad": scale,
            "num_checked": checked, "num_nondifferentiable": kinks, "max_kink_rel_error": kink_rel,
            "eps": eps, "rtol": rtol, "kink_rtol": kink_rtol,
            "holds": bool(checked > 0 and rel < rtol and kink_rel < rtol)}
