"""The one-gradient-step statements of Theorem 1.

(c) :func:`one_step_losses`  L_IP(eta) = L - eta GF_IP + O(eta^2) <= L - eta GF_SP + O(eta^2) = L_SP(eta) + O(eta^2)

and, for a general (non-identity) F, the same between IP with a trainable FB and IP with
the FB frozen: :func:`trainable_vs_frozen_fb`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..masks import Masks
from ..metrics.gradient_flow import (Batches, CoordinateSet, LossFn, as_batches, full_gradient, gradient_flow,
                                     subset_loss, trainable_coordinates)
from .twins import DEFAULT_ETAS, THEORY_BN_MODE


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
