"""The trained filters as spatial weights, and how dense they are (STUDY_SPEC section 3,
"Filter density"; the paper's Fig. 1: IP filters stay spatially dense, SP filters sparse):
the spatial participation ratio of each kept filter (the measure of claim C5), and the
fraction of non-zero entries (for information: any movement of an FB makes every entry of
an IP filter non-zero)."""
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


def participation_ratio(filters: dict[str, torch.Tensor], masks: Masks) -> tuple[dict[str, dict], dict]:
    """The spatial participation ratio PR(h) = (sum h_i^2)^2 / (K^2 sum h_i^4) of the trained
    KxK filters that keep at least one entry (SP) or coefficient (IP) in ``masks``: 1/K^2 for
    a filter with one non-zero entry, 1 for equal energy everywhere (STUDY_SPEC section 3).

    Returns per layer and over all layers: ``mean`` PR, ``dense_share`` (the share of those
    filters with PR > 2/K^2) and ``filters`` (how many).  Unlike the fraction of non-zero
    entries it can fail for IP: a filter whose energy sits in one entry has PR near 1/K^2
    however many entries are non-zero."""
    per_layer, ratios = {}, []
    for layer, w in filters.items():
        mask = next((m for n, m in masks.items() if layer_name(n) == layer), None)
        flat = w.reshape(w.shape[0] * w.shape[1], -1).double()
        kept = torch.ones(flat.shape[0], dtype=torch.bool) if mask is None else \
            mask.reshape(mask.shape[0] * mask.shape[1], -1).any(-1).cpu()
        k2 = flat.shape[1]
        second, fourth = (flat ** 2).sum(-1), (flat ** 4).sum(-1)
        used = kept & (fourth > 0)
        pr = second[used] ** 2 / (k2 * fourth[used])
        ratios.append((pr, k2))
        per_layer[layer] = _pr_summary(pr, k2)
    overall_pr = torch.cat([pr for pr, _ in ratios]) if ratios else torch.zeros(0, dtype=torch.float64)
    dense = sum(int((pr > 2.0 / k2).sum()) for pr, k2 in ratios)
    overall = {"mean": float(overall_pr.mean()) if overall_pr.numel() else float("nan"),
               "dense_share": dense / overall_pr.numel() if overall_pr.numel() else float("nan"),
               "filters": int(overall_pr.numel())}
    return per_layer, overall


def _pr_summary(pr: torch.Tensor, k2: int) -> dict:
    n = int(pr.numel())
    return {"mean": float(pr.mean()) if n else float("nan"),
            "dense_share": float((pr > 2.0 / k2).double().mean()) if n else float("nan"), "filters": n}
