"""All Theorem 1 checks for one SP network and one mask: :func:`run_theorem1`.

Returns JSON-able results per check and the tidy rows (check, variant, eta, quantity,
value) the pipeline's theorem1 stage writes.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..masks import Masks
from ..metrics.gradient_flow import Batches, LossFn, as_batches
from .expressivity import expressivity_check
from .gradients import check_gradient_equality, fd_check_fb_gradient, gradient_flow_comparison
from .one_step import one_step_losses, trainable_vs_frozen_fb
from .twins import DEFAULT_ETAS, THEORY_BN_MODE, interspace_twin


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
    rows += [_row("fd_grad_fb", "ip", q, fd[q]) for q in ("max_abs_error", "max_rel_error", "num_checked",
                                                            "num_nondifferentiable", "max_kink_rel_error",
                                                            "holds")]

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
