"""The trained filters as spatial weights, and how dense they are (STUDY_SPEC section 3,
"Filter density"; the paper's Fig. 1: IP filters stay spatially dense, SP filters sparse)."""
from __future__ import annotations

import torch
from torch import nn

from ..interspace import to_spatial
from ..masks import Masks, layer_name


def spatial_filters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every KxK conv's filters (K > 1) as plain spatial weights W = lambda F^T, by layer name."""
    plain = to_spatial(model)
    return {n: m.weight.detach() for n, m in plain.named_modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size[0] > 1}


def filter_density(filters: dict[str, torch.Tensor]) -> tuple[dict[str, float], float]:
    """Fraction of spatially non-zero filter entries, per layer and over all layers."""
    per_layer = {layer: float((w != 0).float().mean()) for layer, w in filters.items()}
    overall = sum(int((w != 0).sum()) for w in filters.values()) / sum(w.numel() for w in filters.values())
    return per_layer, overall


def filters_to_draw(filters: dict[str, torch.Tensor], masks: Masks, layer_index: int = 1,
                    count: int = 8) -> list[dict]:
    """Tidy rows (layer, out_channel, in_channel, row, col, value) of up to ``count`` filters
    of the ``layer_index``-th KxK conv that keep at least one entry in ``masks`` (a fully
    pruned filter is zero in SP and IP alike and shows nothing).  SP and IP runs that share
    a mask (PaI methods with the spatial FB init) show the same filters."""
    layer = list(filters)[layer_index]
    w = filters[layer]
    mask = next(m for n, m in masks.items() if layer_name(n) == layer)
    used = mask.reshape(mask.shape[0], mask.shape[1], -1).any(-1).nonzero().tolist()
    return [{"layer": layer, "out_channel": o, "in_channel": i, "row": r, "col": c, "value": float(w[o, i, r, c])}
            for o, i in used[:count] for r in range(w.shape[2]) for c in range(w.shape[3])]
