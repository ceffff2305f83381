"""(d) of Theorem 1: the IP family contains the SP family at equal sparsity, not conversely.

:func:`expressivity_check` shows both directions constructively;
:func:`basis_with_first_filter` builds the FB that realises any given filter with one
coefficient.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..interspace import make_basis
from ..masks import prunable_parameters
from ..metrics.gradient_flow import Batches, as_batches, bn_context


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
