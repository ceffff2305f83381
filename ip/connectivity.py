"""Structural connectivity of a pruned network (STUDY_SPEC section 3, "Disconnected networks").

A run whose kept entries leave no path from the input to the output is recorded as
``disconnected`` and excluded from IP-vs-SP comparisons.  Whether a path exists is a
property of the masks and the architecture only, so it is decided without data, as
SynFlow's linearised network does (Tanaka et al. 2020): on a float64 copy,

- every prunable tensor is its mask as 0/1 (interspace convs: lambda := mask and
  F := |F|, so a kept coefficient is a non-negative, non-zero spatial filter);
- every other weight is |w| and every bias 0 (a bias would make a logit positive
  without any path from the input);
- BN is in eval mode with running mean 0, running variance 1, weight 1, bias 0 (a
  positive scaling);
- the input is all ones.

All weights and activations are then non-negative, ReLU and max-pooling never cut a
path, and a logit is positive exactly when some path of non-zero weights joins it to
the input.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from .interspace import filter_bases
from .masks import Masks, layer_name, mask_mismatch, prunable_parameters

_DATA_DEPENDENT_NORMS = (nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def _rescale_output(module: nn.Module, inputs, output):
    # Activations of the 0/1 network grow like (fan-in)^depth; dividing a layer's output
    # by its (positive) maximum keeps them in range without changing which are positive.
    if isinstance(output, torch.Tensor) and output.is_floating_point():
        peak = output.max()
        if peak > 0:
            return output / peak
    return output


def _linearised_copy(model: nn.Module, masks: Masks) -> nn.Module:
    """The non-negative float64 network described in the module docstring."""
    net = copy.deepcopy(model).to(torch.float64)
    for name, module in net.named_modules():
        if isinstance(module, _DATA_DEPENDENT_NORMS):
            # mean subtraction over features would make entries negative: positivity then says nothing
            raise ValueError(f"{name}: {type(module).__name__} is not supported by the connectivity check")
    prunable = prunable_parameters(net)
    unknown = set(masks) - set(prunable)
    if unknown:
        raise mask_mismatch(unknown, prunable)
    bases = {id(fb.basis) for fb in filter_bases(net).values()}
    prunable_ids = {id(p) for p in prunable.values()}
    norm_params = {id(p) for m in net.modules() if isinstance(m, nn.modules.batchnorm._NormBase)
                   for p in m.parameters(recurse=False)}
    with torch.no_grad():
        for name, param in prunable.items():
            mask = masks.get(name)
            if mask is not None and mask.shape != param.shape:
                raise ValueError(f"mask {name} has shape {tuple(mask.shape)}, parameter has {tuple(param.shape)}")
            param.copy_(torch.ones_like(param) if mask is None else mask.to(device=param.device, dtype=param.dtype))
        for name, param in net.named_parameters():
            if id(param) in prunable_ids or id(param) in norm_params:
                continue
            if id(param) in bases or not name.endswith("bias"):
                param.abs_()
            else:
                param.zero_()
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._NormBase):
                if module.running_mean is not None:
                    module.running_mean.zero_()
                    module.running_var.fill_(1.0)
                if module.affine:
                    module.weight.fill_(1.0)
                    module.bias.zero_()
    return net.eval()


def connectivity_report(model: nn.Module, masks: Masks | None, input_shape: Sequence[int]) -> dict:
    """Which outputs of ``model`` pruned by ``masks`` still depend on the input.

    ``masks`` are keyed by prunable parameter name (missing tensors are dense);
    ``input_shape`` is one sample's shape, e.g. (3, 32, 32).  The model is not touched.

    Returns ``disconnected`` (True when no output depends on the input),
    ``unconnected_outputs`` (number of outputs that do not), ``num_outputs``, and
    ``empty_layers`` (module names of prunable layers whose mask keeps nothing, in
    ``named_parameters`` order; such a layer need not disconnect the net if a
    shortcut bypasses it).
    """
    masks = masks or {}
    net = _linearised_copy(model, masks)
    hooks = [m.register_forward_hook(_rescale_output) for m in net.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        device = next(net.parameters()).device
        ones = torch.ones((1, *input_shape), dtype=torch.float64, device=device)
        with torch.no_grad():
            out = net(ones)
    finally:
        for h in hooks:
            h.remove()
    if not torch.isfinite(out).all():
        raise FloatingPointError("the linearised network produced non-finite outputs")
    connected = out.reshape(-1) > 0
    empty = [layer_name(n) for n in prunable_parameters(model) if n in masks and not bool(masks[n].any())]
    return {
        "disconnected": not bool(connected.any()),
        "unconnected_outputs": int((~connected).sum()),
        "num_outputs": int(connected.numel()),
        "empty_layers": empty,
    }
