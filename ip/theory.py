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
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .interspace import make_basis, to_interspace
from .masks import Masks, layer_name, prunable_parameters
from .metrics.gradient_flow import (Batches, CoordinateSet, LossFn, as_batches, bn_context, full_gradient,
                                    gradient_flow, subset_loss, trainable_coordinates)

THEORY_BN_MODE = "train"
DEFAULT_ETAS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)


# --------------------------------------------------------------------------- twins

def translate_masks(masks: Masks, model: nn.Module) -> Masks:
    """Re-key masks onto ``model``'s prunable parameters by layer (``conv.weight`` <-> lambda)."""
    by_layer = {layer_name(n): n for n in prunable_parameters(model)}
    out = {}
    for name, mask in masks.items():
        layer = layer_name(name)
        if layer not in by_layer:
            raise KeyError(f"mask {name}: layer {layer} has no prunable tensor in the model")
        out[by_layer[layer]] = mask
    return out


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Zero the pruned storage of ``model`` (lambda for interspace convs)."""
    params = prunable_parameters(model)
    for name, mask in masks.items():
        params[name].mul_(mask.to(device=params[name].device, dtype=params[name].dtype))


def interspace_twin(sp_model: nn.Module, masks: Masks, fb_init: str = "spatial", share: str = "layer",
                    dtype: torch.dtype | None = torch.float64, generator: torch.Generator | None = None
                    ) -> tuple[nn.Module, nn.Module, Masks]:
    """(masked SP copy, masked IP copy, IP masks) of ``sp_model``.

    With ``fb_init='spatial'`` the IP copy computes the same function as the masked SP
    copy, with lambda = w.  With another ``fb_init`` the IP copy is built from the
    *unmasked* weights (lambda = F^-1 w) and then the same mask positions are applied to
    lambda, so it is a different pruned network; it is only used for the
    trainable-vs-frozen FB statement, which holds for any F.
    """
    sp = copy.deepcopy(sp_model)
    if dtype is not None:
        sp = sp.to(dtype)
    ip_source = copy.deepcopy(sp)
    apply_masks(sp, masks)
    if fb_init == "spatial":
        ip_source = copy.deepcopy(sp)
    ip = to_interspace(ip_source, fb_init=fb_init, share=share, inplace=True, generator=generator)
    ip_masks = translate_masks(masks, ip)
    apply_masks(ip, ip_masks)
    return sp, ip, ip_masks


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


# --------------------------------------------------------------------------- (c)

@torch.no_grad()
def _loss_after_step(model: nn.Module, coords: CoordinateSet, grad: torch.Tensor, eta: float, batches: Batches,
                     loss_fn: LossFn, bn_mode: str) -> float:
    """L(theta - eta g) over the coordinates, then the parameters are put back exactly."""
    saved = [p.detach().clone() for p in coords.params]
    try:
        for p, step in zip(coords.params, coords.scatter(grad)):
            p.sub_(eta * step)
        return subset_loss(model, batches, loss_fn, bn_mode)
    finally:
        for p, s in zip(coords.params, saved):
            p.copy_(s)


def one_step_curve(model: nn.Module, coords: CoordinateSet, batches: Batches, etas: Sequence[float],
                   loss_fn: LossFn = F.cross_entropy, bn_mode: str = THEORY_BN_MODE) -> dict:
    """Loss after one plain GD step of each size in ``etas`` over ``coords``.

    Returns ``loss`` (before the step), ``gf`` (||g||^2 over ``coords``), ``losses``,
    ``predictions`` (L - eta GF, first order) and ``remainders`` (loss - prediction,
    O(eta^2)).  Pruned coordinates are not in ``coords``, so they stay zero.
    """
    batches = as_batches(batches)
    loss, grad = full_gradient(model, batches, coords, loss_fn, bn_mode)
    gf = float(grad.to(torch.float64).pow(2).sum())
    losses = [_loss_after_step(model, coords, grad, float(eta), batches, loss_fn, bn_mode) for eta in etas]
    predictions = [loss - float(eta) * gf for eta in etas]
    return {"loss": loss, "gf": gf, "etas": [float(e) for e in etas], "losses": losses,
            "predictions": predictions, "remainders": [a - b for a, b in zip(losses, predictions)]}


def _eta_range(etas: Sequence[float], holds: Sequence[bool]) -> dict:
    """Where a per-eta comparison holds: the list, and the largest eta below which it always holds."""
    pairs = sorted(zip(etas, holds))
    contiguous = None
    for eta, ok in pairs:
        if not ok:
            break
        contiguous = eta
    return {"etas_where_holds": [e for e, ok in pairs if ok], "max_eta_contiguous": contiguous}


def one_step_losses(sp: nn.Module, ip: nn.Module, sp_masks: Masks, ip_masks: Masks, batches: Batches,
                    etas: Sequence[float] = DEFAULT_ETAS, loss_fn: LossFn = F.cross_entropy,
                    bn_mode: str = THEORY_BN_MODE) -> dict:
    """(c): L_SP(eta), L_IP(eta) after one GD step on all trainable unpruned parameters.

    SP steps on masked w and the non-prunable trainable parameters (BN, biases); IP on
    the same plus F.  Returns ``table`` (one dict per eta: eta, loss_sp, loss_ip,
    prediction_sp, prediction_ip, remainder_sp, remainder_ip, ip_le_sp), ``loss``,
    ``gf_sp``, ``gf_ip`` and ``ip_le_sp`` (:func:`_eta_range`: the etas where
    L_IP <= L_SP and the largest eta up to which it holds throughout the grid).
    """
    batches = as_batches(batches)
    sp_curve = one_step_curve(sp, trainable_coordinates(sp, sp_masks), batches, etas, loss_fn, bn_mode)
    ip_curve = one_step_curve(ip, trainable_coordinates(ip, ip_masks), batches, etas, loss_fn, bn_mode)
    table = []
    for i, eta in enumerate(sp_curve["etas"]):
        table.append({"eta": eta, "loss_sp": sp_curve["losses"][i], "loss_ip": ip_curve["losses"][i],
                      "prediction_sp": sp_curve["predictions"][i], "prediction_ip": ip_curve["predictions"][i],
                      "remainder_sp": sp_curve["remainders"][i], "remainder_ip": ip_curve["remainders"][i],
                      "ip_le_sp": bool(ip_curve["losses"][i] <= sp_curve["losses"][i])})
    return {"table": table, "loss": sp_curve["loss"], "gf_sp": sp_curve["gf"], "gf_ip": ip_curve["gf"],
            "ip_le_sp": _eta_range([r["eta"] for r in table], [r["ip_le_sp"] for r in table])}


# --------------------------------------------------------------------------- (d)

def _nonzeros(model: nn.Module) -> int:
    return sum(int((p.detach() != 0).sum()) for p in prunable_parameters(model).values())


def basis_with_first_filter(target: torch.Tensor) -> torch.Tensor:
    """An invertible K^2 x K^2 basis whose first column is the flattened ``target`` filter.

    Householder completion: the orthogonal Q with Q e_1 = t / ||t||, then the first
    column rescaled by ||t||.  With it, lambda = e_1 (one non-zero coefficient) gives
    exactly ``target``.
    """
    t = target.reshape(-1).to(torch.float64)
    norm = float(t.norm())
    if norm == 0:
        raise ValueError("the target filter must be non-zero")
    u = t / norm
    e1 = torch.zeros_like(u)
    e1[0] = 1.0
    w = e1 - u
    if float(w.norm()) < 1e-15:
        q = torch.eye(u.numel(), dtype=torch.float64)
    else:
        w = w / w.norm()
        q = torch.eye(u.numel(), dtype=torch.float64) - 2.0 * torch.outer(w, w)  # q e1 = u
    q[:, 0] *= norm
    return q


def expressivity_check(sp: nn.Module, ip: nn.Module, batches: Batches, basis: str = "dct",
                       kernel_size: int = 3, atol: float = 1e-10, generator: torch.Generator | None = None) -> dict:
    """(d), constructively.

    ``sp_in_ip``: the masked SP net and its IP twin with F = I (same non-zeros) give the
    same outputs on ``batches`` (``max_abs_output_diff``) with the same number of
    non-zero prunable entries.

    ``ip_not_in_sp``: for every basis filter g^(n) = F e_n of a ``basis`` FB (the IP
    filter with the single coefficient lambda_n = 1), its number of spatial non-zeros
    and its distance to the closest SP filter with one non-zero weight,
    sqrt(||g||^2 - max_i g_i^2) (keep the largest entry).  A positive distance means no
    SP filter with one weight equals it.

    ``any_filter``: for a random target filter h, the FB of
    :func:`basis_with_first_filter` realises h with one coefficient (``max_abs_error``)
    and is invertible (``condition_number``).
    """
    batches = as_batches(batches)
    diff = 0.0
    with bn_context(sp, "eval"), bn_context(ip, "eval"), torch.no_grad():
        for x, _ in batches:
            p = next(sp.parameters())
            x = x.to(device=p.device, dtype=p.dtype)
            diff = max(diff, float((sp(x) - ip(x)).abs().max()))
    nz_sp, nz_ip = _nonzeros(sp), _nonzeros(ip)
    sp_in_ip = {"max_abs_output_diff": diff, "nonzeros_sp": nz_sp, "nonzeros_ip": nz_ip,
                "holds": bool(diff <= atol * max(1.0, diff) and nz_sp == nz_ip)}

    fb = make_basis(kernel_size, basis, generator)
    spatial_nonzeros, distances = [], []
    for n in range(fb.shape[1]):
        g = fb[:, n]
        spatial_nonzeros.append(int((g.abs() > 1e-12).sum()))
        distances.append(math.sqrt(max(float(g.pow(2).sum() - g.pow(2).max()), 0.0)))
    ip_not_in_sp = {"basis": basis, "spatial_nonzeros": spatial_nonzeros, "distance_to_1_sparse": distances,
                    "max_spatial_nonzeros": max(spatial_nonzeros), "max_distance_to_1_sparse": max(distances),
                    "holds": bool(max(distances) > 1e-6)}

    target = torch.randn(kernel_size, kernel_size, dtype=torch.float64, generator=generator)
    q = basis_with_first_filter(target)
    coef = torch.zeros(kernel_size * kernel_size, dtype=torch.float64)
    coef[0] = 1.0
    realised = (q @ coef).reshape(kernel_size, kernel_size)
    error = float((realised - target).abs().max())
    any_filter = {"max_abs_error": error, "condition_number": float(torch.linalg.cond(q)),
                  "target_spatial_nonzeros": int((target != 0).sum()), "holds": bool(error < 1e-12)}
    return {"sp_in_ip": sp_in_ip, "ip_not_in_sp": ip_not_in_sp, "any_filter": any_filter,
            "holds": bool(sp_in_ip["holds"] and ip_not_in_sp["holds"] and any_filter["holds"])}


# --------------------------------------------------------------------------- (e)

@torch.no_grad()
def fd_check_fb_gradient(ip: nn.Module, ip_masks: Masks, batches: Batches, loss_fn: LossFn = F.cross_entropy,
                         bn_mode: str = THEORY_BN_MODE, eps: float = 1e-6, entries_per_fb: int | None = None,
                         generator: torch.Generator | None = None, kink_rtol: float = 1e-3) -> dict:
    """(e): autograd grad_F against central differences (L(F + eps E_ij) - L(F - eps E_ij)) / 2 eps.

    ``entries_per_fb`` random entries of each FB (all K^4 when None).  Returns
    ``max_abs_error``, ``max_rel_error`` (error / max |grad_F| of the network, the scale
    against which a float64 difference quotient is accurate to ~eps^2 + 1e-16/eps),
    ``max_abs_grad``, ``num_checked``, ``num_nondifferentiable``.  Use a float64 model.

    A ReLU network is not differentiable where a pre-activation is exactly zero, which
    pruned networks produce often (a channel whose inputs are all pruned or all zero).
    There the central difference averages two different one-sided slopes while autograd
    takes ReLU'(0) = 0, so the two need not agree.  Such entries are detected by their
    one-sided slopes disagreeing (by more than ``kink_rtol`` of the gradient scale; for a
    smooth loss they differ by only ~eps |L''|), counted, and left out of the error.
    """
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
    max_err, checked, kinks = 0.0, 0, 0
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
            if abs(forward_slope - backward_slope) > kink_rtol * max(scale, 1e-300):
                kinks += 1
                continue
            numeric = (plus - minus) / (2 * eps)
            max_err = max(max_err, abs(numeric - float(auto.reshape(-1)[i])))
            checked += 1
    return {"max_abs_error": max_err, "max_rel_error": max_err / max(scale, 1e-300), "max_abs_grad": scale,
            "num_checked": checked, "num_nondifferentiable": kinks, "eps": eps}


# --------------------------------------------------------------------------- general F

def trainable_vs_frozen_fb(ip: nn.Module, ip_masks: Masks, batches: Batches, etas: Sequence[float] = DEFAULT_ETAS,
                           loss_fn: LossFn = F.cross_entropy, bn_mode: str = THEORY_BN_MODE) -> dict:
    """(b) and (c) for any F: IP with a trainable FB vs the same IP net with F frozen.

    Freezing F removes exactly the FB coordinates, so GF_trainable - GF_frozen =
    sum_l ||grad_F_l||^2 >= 0.  Returns ``gf_trainable``, ``gf_frozen``, ``gf_fb``,
    ``difference``, ``holds``, ``table`` (per eta: loss_trainable, loss_frozen,
    predictions, trainable_le_frozen) and ``trainable_le_frozen`` (eta range).
    """
    batches = as_batches(batches)
    trainable = one_step_curve(ip, trainable_coordinates(ip, ip_masks), batches, etas, loss_fn, bn_mode)
    frozen = one_step_curve(ip, trainable_coordinates(ip, ip_masks, include_fb=False), batches, etas, loss_fn,
                            bn_mode)
    gf_fb = gradient_flow(ip, batches, ip_masks, loss_fn, bn_mode)["fb"]
    table = []
    for i, eta in enumerate(trainable["etas"]):
        table.append({"eta": eta, "loss_trainable": trainable["losses"][i], "loss_frozen": frozen["losses"][i],
                      "prediction_trainable": trainable["predictions"][i],
                      "prediction_frozen": frozen["predictions"][i],
                      "trainable_le_frozen": bool(trainable["losses"][i] <= frozen["losses"][i])})
    difference = trainable["gf"] - frozen["gf"]
    return {"gf_trainable": trainable["gf"], "gf_frozen": frozen["gf"], "gf_fb": gf_fb, "difference": difference,
            "holds": bool(difference >= -1e-9 * max(frozen["gf"], 1e-300)), "table": table,
            "trainable_le_frozen": _eta_range([r["eta"] for r in table], [r["trainable_le_frozen"] for r in table])}


# --------------------------------------------------------------------------- all checks

def _row(check: str, variant: str, quantity: str, value, eta: float | None = None) -> dict:
    return {"check": check, "variant": variant, "eta": eta, "quantity": quantity,
            "value": float(value) if value is not None else None}


def first_samples(batches: Batches, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``n`` samples of ``batches`` (fewer if the data has fewer), as batches."""
    out, left = [], n
    for x, y in as_batches(batches):
        if left <= 0:
            break
        out.append((x[:left], y[:left]))
        left -= out[-1][1].shape[0]
    return out


def run_theorem1(sp_model: nn.Module, masks: Masks, batches: Batches, etas: Sequence[float] = DEFAULT_ETAS,
                 loss_fn: LossFn = F.cross_entropy, bn_mode: str = THEORY_BN_MODE, dtype: torch.dtype = torch.float64,
                 share: str = "layer", general_fb_init: str | None = "dct", fd_eps: float = 1e-6,
                 fd_entries_per_fb: int | None = 4, fd_samples: int | None = 32, grad_atol: float = 1e-10,
                 seed: int = 0) -> dict:
    """All Theorem 1 checks for one SP network and one mask (keys of ``masks``: SP names).

    The caller's model is not modified: SP and IP twins are float64 (``dtype``) copies
    with the pruned storage zeroed.  Returns ``{'summary': {...}, 'rows': [...]}``:
    ``summary`` has one JSON-able dict per check (``gradient_equality``,
    ``gradient_flow``, ``one_step``, ``expressivity``, ``fd_grad_fb``, ``general_fb``
    when ``general_fb_init`` is set) and ``holds`` flags; ``rows`` is the tidy form,
    one measured number per row with keys check, variant, eta, quantity, value (the
    pipeline adds method and sparsity columns).

    Cost: the finite-difference check needs two loss evaluations per checked FB entry,
    so it uses ``fd_entries_per_fb`` random entries of every FB and the first
    ``fd_samples`` samples of the data (None: all); the identity it checks holds for any
    data, and fewer samples also put fewer ReLU pre-activations within eps of a kink.
    """
    batches = as_batches(batches)
    gen = torch.Generator().manual_seed(seed)
    sp, ip, ip_masks = interspace_twin(sp_model, masks, "spatial", share, dtype)
    rows: list[dict] = []

    eq = check_gradient_equality(sp, ip, masks, ip_masks, batches, loss_fn, bn_mode, grad_atol)
    rows += [_row("gradient_equality", "ip_vs_sp", q, eq[q]) for q in ("max_abs_diff", "max_abs_diff_other",
                                                                       "max_abs_grad")]
    rows.append(_row("gradient_equality", "ip_vs_sp", "holds", eq["holds"]))

    gf = gradient_flow_comparison(sp, ip, masks, ip_masks, batches, loss_fn, bn_mode)
    rows += [_row("gradient_flow", "sp", "gf_total", gf["gf_sp"]), _row("gradient_flow", "sp", "gf_shared",
                                                                          gf["gf_sp_shared"]),
             _row("gradient_flow", "ip", "gf_total", gf["gf_ip"]), _row("gradient_flow", "ip", "gf_shared",
                                                                          gf["gf_ip_shared"]),
             _row("gradient_flow", "ip", "gf_fb", gf["gf_fb"]),
             _row("gradient_flow", "ip_vs_sp", "difference", gf["difference"]),
             _row("gradient_flow", "ip_vs_sp", "difference_minus_fb", gf["difference_minus_fb"]),
             _row("gradient_flow", "ip_vs_sp", "holds", gf["holds"]),
             _row("gradient_flow", "ip_vs_sp", "strict", gf["strict"])]

    step = one_step_losses(sp, ip, masks, ip_masks, batches, etas, loss_fn, bn_mode)
    for r in step["table"]:
        for variant in ("sp", "ip"):
            rows += [_row("one_step", variant, "loss", r[f"loss_{variant}"], r["eta"]),
                     _row("one_step", variant, "first_order_prediction", r[f"prediction_{variant}"], r["eta"]),
                     _row("one_step", variant, "remainder", r[f"remainder_{variant}"], r["eta"])]
        rows.append(_row("one_step", "ip_vs_sp", "ip_le_sp", r["ip_le_sp"], r["eta"]))
    rows.append(_row("one_step", "ip_vs_sp", "max_eta_ip_le_sp", step["ip_le_sp"]["max_eta_contiguous"]))

    expr = expressivity_check(sp, ip, batches, generator=gen)
    rows += [_row("expressivity", "sp_in_ip", q, expr["sp_in_ip"][q])
             for q in ("max_abs_output_diff", "nonzeros_sp", "nonzeros_ip", "holds")]
    rows += [_row("expressivity", "ip_not_in_sp", q, expr["ip_not_in_sp"][q])
             for q in ("max_spatial_nonzeros", "max_distance_to_1_sparse", "holds")]
    rows += [_row("expressivity", "any_filter", q, expr["any_filter"][q])
             for q in ("max_abs_error", "condition_number", "holds")]

    fd_data = batches if fd_samples is None else first_samples(batches, fd_samples)
    fd = fd_check_fb_gradient(ip, ip_masks, fd_data, loss_fn, bn_mode, fd_eps, fd_entries_per_fb, gen)
    fd["holds"] = bool(fd["num_checked"] > 0 and fd["max_rel_error"] < 1e-5)
    rows += [_row("fd_grad_fb", "ip", q, fd[q]) for q in ("max_abs_error", "max_rel_error", "num_checked",
                                                            "num_nondifferentiable", "holds")]

    summary = {"gradient_equality": eq, "gradient_flow": gf, "one_step": step, "expressivity": expr,
               "fd_grad_fb": fd}
    if general_fb_init is not None:
        _, ip_general, general_masks = interspace_twin(sp_model, masks, general_fb_init, share, dtype, gen)
        general = trainable_vs_frozen_fb(ip_general, general_masks, batches, etas, loss_fn, bn_mode)
        general["fb_init"] = general_fb_init
        summary["general_fb"] = general
        rows += [_row("general_fb", "trainable", "gf_total", general["gf_trainable"]),
                 _row("general_fb", "frozen", "gf_total", general["gf_frozen"]),
                 _row("general_fb", "trainable_vs_frozen", "difference", general["difference"]),
                 _row("general_fb", "trainable_vs_frozen", "holds", general["holds"])]
        for r in general["table"]:
            rows += [_row("general_fb", "trainable", "loss", r["loss_trainable"], r["eta"]),
                     _row("general_fb", "frozen", "loss", r["loss_frozen"], r["eta"]),
                     _row("general_fb", "trainable_vs_frozen", "trainable_le_frozen", r["trainable_le_frozen"],
                          r["eta"])]
    summary["holds"] = {name: bool(res["holds"]) for name, res in summary.items() if "holds" in res}
    return {"summary": _jsonable(summary), "rows": rows}


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    return obj
