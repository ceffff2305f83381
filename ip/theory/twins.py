"""The objects Theorem 1 speaks about: a masked SP network and its IP twin.

:func:`interspace_twin` builds, from an SP network and masks, the masked SP copy and
its IP twin (F = I, lambda = w, same masks), which compute the same function.  The
defaults shared by every check (BN mode, step sizes) are here too.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..interspace import to_interspace
from ..masks import Masks, layer_name, prunable_parameters
from ..metrics.batchnorm import DEFAULT_BN_MODE

#: BN in train mode (batch statistics) for every check; why, see the package docstring ("BN mode")
THEORY_BN_MODE = DEFAULT_BN_MODE
#: step sizes of the one-gradient-step comparison
DEFAULT_ETAS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)


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
