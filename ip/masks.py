"""Named masks over prunable tensors, their enforcement, budgets and cost accounting.

Prunable tensors are the coefficients lambda of interspace convs, the weights of all
other convs and of linear layers; never BN parameters, biases or filter bases.  A mask
is a bool tensor keyed by the qualified parameter name (as ``model.named_parameters()``
spells it), so masks cannot silently misalign with parameters.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import torch
from torch import nn

from .interspace import COEF_SUFFIX, fb_overhead_params, filter_bases, is_interspace

Masks = dict[str, torch.Tensor]
SCOPES = ("global", "layer")


# the layers a model prunes, when restricted by restrict_pruning (module names)
PRUNE_ONLY_ATTR = "ip_prune_only"


def prunable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The tensors pruning acts on, by qualified name: lambda of interspace convs, weights of
    other convs and of linear layers (only the layers :func:`restrict_pruning` selected, if it was called)."""
    out: dict[str, nn.Parameter] = {}
    only = model.__dict__.get(PRUNE_ONLY_ATTR)
    for name, module in model.named_modules():
        if only is not None and name not in only:
            continue
        prefix = f"{name}." if name else ""
        if isinstance(module, nn.Conv2d) and is_interspace(module):
            out[prefix + COEF_SUFFIX] = module.parametrizations.weight.original
        elif isinstance(module, (nn.Conv2d, nn.Linear)):
            out[prefix + "weight"] = module.weight
    return out


def _patterns(selector) -> list[str]:
    """A name-or-patterns selector as a list of glob patterns."""
    return [selector] if isinstance(selector, str) else list(selector)


def _matches(name: str, module: nn.Module, selector) -> bool:
    if callable(selector):
        return bool(selector(name, module))
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in _patterns(selector))


def restrict_pruning(model: nn.Module, layers=None, exclude=None) -> list[str]:
    """Make ``model`` prune only some of its conv and linear layers; returns their names.

    ``layers`` selects the layers to prune and ``exclude`` those to leave dense: each is a
    module name, a list of names or glob patterns (``"layer1.*"``, ``"fc"``), or a
    predicate ``f(name, module) -> bool``; None selects all (``layers``) or none
    (``exclude``).  The choice is kept on the model (it survives ``copy.deepcopy`` and
    :func:`ip.to_interspace`): :func:`prunable_parameters`, and with it every method,
    budget, :class:`MaskEnforcer` and cost report, sees only the selected layers; the
    others are trained densely.  ``restrict_pruning(model)`` lifts the restriction.
    """
    previous = model.__dict__.pop(PRUNE_ONLY_ATTR, None)
    try:
        return _restrict(model, layers, exclude)
    except ValueError:
        if previous is not None:
            model.__dict__[PRUNE_ONLY_ATTR] = previous     # a bad selector changes nothing
        raise


def _restrict(model: nn.Module, layers, exclude) -> list[str]:
    candidates = {layer_name(n): n for n in prunable_parameters(model)}
    if layers is None and exclude is None:
        return list(candidates)
    modules = dict(model.named_modules())
    for selector, what in ((layers, "layers"), (exclude, "exclude")):
        if selector is None or callable(selector):
            continue
        for pattern in _patterns(selector):
            if not any(fnmatch.fnmatchcase(n, pattern) for n in candidates):
                raise ValueError(f"{what}: {pattern!r} names no prunable layer of the model; prunable layers: "
                                 f"{', '.join(list(candidates)[:6])}{', ...' if len(candidates) > 6 else ''}")
    chosen = [n for n in candidates
              if (layers is None or _matches(n, modules[n], layers))
              and not (exclude is not None and _matches(n, modules[n], exclude))]
    if not chosen:
        raise ValueError("layers/exclude leave no layer to prune")
    model.__dict__[PRUNE_ONLY_ATTR] = frozenset(chosen)
    return chosen


class MaskMismatchError(KeyError, ValueError):
    """Masks that name tensors the model does not prune (one line; a KeyError and a ValueError)."""

    def __str__(self) -> str:
        return str(self.args[0])


def mask_mismatch(unknown, params) -> MaskMismatchError:
    """The error for mask names that are not prunable parameters, saying whether the masks
    belong to the other representation (SP masks for an IP model or the reverse)."""
    unknown = sorted(unknown)
    hint = ""
    if any(n.endswith(".weight") for n in unknown) and any(n.endswith(COEF_SUFFIX) for n in params):
        hint = ("; they look like masks of the spatial (SP) form and the model is interspace: "
                "find the masks on the interspace model")
    elif any(n.endswith(COEF_SUFFIX) for n in unknown) and not any(n.endswith(COEF_SUFFIX) for n in params):
        hint = ("; they look like masks of the interspace (IP) form and the model is spatial: "
                "convert it with ip.to_interspace first")
    return MaskMismatchError(f"masks name {len(unknown)} tensors that are not prunable parameters of the model "
                             f"({', '.join(unknown[:3])}{', ...' if len(unknown) > 3 else ''}){hint}")


def layer_name(param_name: str) -> str:
    """The module name a prunable tensor belongs to (``layer1.0.conv1``)."""
    for suffix in ("." + COEF_SUFFIX, ".weight"):
        if param_name.endswith(suffix):
            return param_name[: -len(suffix)]
    return param_name


def dense_masks(model: nn.Module) -> Masks:
    return {n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable_parameters(model).items()}


def keep_count(total: int, sparsity: float) -> int:
    """Exact budget: round((1 - s) * P) entries are kept."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    return int(round((1.0 - sparsity) * total))


def _top_k_flat(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the k largest entries; ties broken by lower flat index first."""
    flat = scores.reshape(-1).to(torch.float64)
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    if k > 0:
        order = torch.argsort(flat.cpu(), descending=True, stable=True)
        keep[order[:k]] = True
    return keep


def masks_from_scores(scores: dict[str, torch.Tensor], sparsity: float, scope: str = "global",
                      keep_total: int | None = None) -> Masks:
    """Keep the highest scores, exactly round((1-s)*P) of them (per layer for ``scope='layer'``).

    Non-finite scores are an error: they would make the ranking meaningless.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    for n, s in scores.items():
        if not torch.isfinite(s).all():
            raise ValueError(f"scores of {n} contain non-finite values")
    names = list(scores)
    if scope == "layer":
        return {n: _top_k_flat(scores[n], keep_count(scores[n].numel(), sparsity))
                .reshape(scores[n].shape).to(scores[n].device) for n in names}
    flat = torch.cat([scores[n].detach().reshape(-1).cpu().to(torch.float64) for n in names])
    k = keep_count(flat.numel(), sparsity) if keep_total is None else keep_total
    keep = _top_k_flat(flat, k)
    out, start = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = keep[start:start + size].reshape(scores[n].shape).to(scores[n].device)
        start += size
    return out


def masks_with_density(scores: dict[str, torch.Tensor], densities: dict[str, float]) -> Masks:
    """Per-layer masks keeping round(density * P_l) top entries of each layer."""
    return {n: _top_k_flat(s, int(round(densities[n] * s.numel()))).reshape(s.shape).to(s.device)
            for n, s in scores.items()}


def erk_densities(shapes: dict[str, torch.Size], sparsity: float, erk_power_scale: float = 1.0) -> dict[str, float]:
    """Erdos-Renyi-Kernel layer densities (Evci et al. 2020) for a global sparsity.

    Density of layer l is proportional to sum(shape)/prod(shape); layers that would
    exceed density 1 are made dense and the rest rescaled, so that the total kept
    count equals (1 - s) * P.
    """
    total = sum(int(torch.Size(s).numel()) for s in shapes.values())
    target = (1.0 - sparsity) * total
    dense: set[str] = set()
    while True:
        raw = {n: (sum(s) / float(torch.Size(s).numel())) ** erk_power_scale for n, s in shapes.items()
               if n not in dense}
        budget = target - sum(torch.Size(shapes[n]).numel() for n in dense)
        denom = sum(raw[n] * torch.Size(shapes[n]).numel() for n in raw)
        eps = budget / denom if denom > 0 else 0.0
        over = [n for n in raw if eps * raw[n] > 1.0]
        if not over:
            break
        dense.update(over)
    dens = {n: 1.0 for n in dense}
    dens.update({n: eps * raw[n] for n in raw})
    return {n: dens[n] for n in shapes}


def exact_counts(densities: dict[str, float], sizes: dict[str, int], keep_total: int) -> dict[str, int]:
    """Round per-layer densities to integer counts that sum exactly to ``keep_total``.

    Largest-remainder rounding; layers are capped at their size.
    """
    raw = {n: min(densities[n], 1.0) * sizes[n] for n in sizes}
    counts = {n: int(raw[n]) for n in sizes}
    deficit = keep_total - sum(counts.values())
    order = sorted(sizes, key=lambda n: (-(raw[n] - counts[n]), n))
    i = 0
    while deficit > 0 and any(counts[n] < sizes[n] for n in sizes):
        n = order[i % len(order)]
        if counts[n] < sizes[n]:
            counts[n] += 1
            deficit -= 1
        i += 1
    return counts


class MaskEnforcer:
    """Keeps pruned entries out of the model for good.

    - storage: pruned entries are set to exactly zero (so the forward uses kept entries only);
    - gradients: a tensor hook zeroes the gradient of pruned entries (so no optimiser
      sees them, and weight decay on a zero entry with zero gradient stays zero);
    - after every optimiser step (``attach``): pruned entries are zeroed again, since
      momentum or Adam state left from before a mask change could move them.

    The dense gradient (before masking) of the last backward is kept when
    ``keep_dense_grad`` is true; RigL grows connections from it.
    """

    def __init__(self, model: nn.Module, masks: Masks, keep_dense_grad: bool = False):
        self.model = model
        self.params = prunable_parameters(model)
        self.masks: Masks = {}
        self.keep_dense_grad = keep_dense_grad
        self.dense_grads: dict[str, torch.Tensor] = {}
        self._handles = []
        self.set_masks(masks)
        for name, p in self.params.items():
            self._handles.append(p.register_hook(self._make_hook(name)))

    def _make_hook(self, name: str):
        def hook(grad: torch.Tensor) -> torch.Tensor:
            if self.keep_dense_grad:
                self.dense_grads[name] = grad.detach().clone()
            mask = self.masks.get(name)
            return grad if mask is None else grad * mask
        return hook

    def set_masks(self, masks: Masks) -> None:
        """Adopt new masks (checked against the model's prunable tensors) and zero what they prune."""
        unknown = set(masks) - set(self.params)
        if unknown:
            raise mask_mismatch(unknown, self.params)
        for name, mask in masks.items():
            if mask.shape != self.params[name].shape:
                raise ValueError(f"mask {name} has shape {tuple(mask.shape)}, parameter has "
                                 f"{tuple(self.params[name].shape)}")
        self.masks = {n: m.to(device=self.params[n].device, dtype=torch.bool) for n, m in masks.items()}
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        """Zero every pruned entry of the model's storage (in place)."""
        for name, mask in self.masks.items():
            self.params[name].mul_(mask)

    def attach(self, optimizer: torch.optim.Optimizer):
        """Re-apply the masks after every step of ``optimizer``; returns the hook's handle."""
        return optimizer.register_step_post_hook(lambda *_: self.apply())

    def remove(self) -> None:
        """Remove the gradient hooks (the masks stay applied to the storage)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The current masks, on the CPU."""
        return {n: m.clone().cpu() for n, m in self.masks.items()}


def save_masks(masks: Masks, path) -> None:
    """Write masks (bool, on the CPU) with ``torch.save``; :func:`load_masks` reads them back.
    For a whole pruned model in a compact file see :func:`ip.save_sparse`."""
    torch.save({n: m.cpu().to(torch.bool) for n, m in masks.items()}, path)


def check_masks(masks, model: nn.Module, source: str = "masks") -> Masks:
    """Masks that match ``model``'s prunable tensors by name and shape, or a ValueError saying what differs."""
    if not isinstance(masks, dict) or not all(isinstance(m, torch.Tensor) for m in masks.values()):
        raise ValueError(f"{source} does not hold a dict of tensors")
    params = prunable_parameters(model)
    unknown = set(masks) - set(params)
    if unknown:
        raise ValueError(f"{source}: {mask_mismatch(unknown, params)}")
    missing = set(params) - set(masks)
    if missing:
        raise ValueError(f"{source} does not match the model; no mask for: {sorted(missing)[:3]}")
    for n, m in masks.items():
        if m.shape != params[n].shape:
            raise ValueError(f"{source}: {n} has shape {tuple(m.shape)}, model has {tuple(params[n].shape)}")
    return {n: m.to(torch.bool) for n, m in masks.items()}


def load_masks(path, model: nn.Module | None = None) -> Masks:
    """Load masks; with ``model`` given, check names and shapes against it."""
    try:
        masks = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise ValueError(f"mask file {path} is unreadable or corrupt: {type(exc).__name__}") from exc
    if model is not None:
        return check_masks(masks, model, f"mask file {path}")
    if not isinstance(masks, dict) or not all(isinstance(m, torch.Tensor) for m in masks.values()):
        raise ValueError(f"mask file {path} does not hold a dict of tensors")
    return {n: m.to(torch.bool) for n, m in masks.items()}


@dataclass
class MaskSummary:
    """What :func:`mask_summary` returns: per masked tensor ``total``/``kept``/``sparsity``, totals,
    the actual sparsity and the layers that keep no entry."""
    per_layer: dict[str, dict[str, float]]
    prunable_params: int
    kept_params: int
    sparsity: float
    collapsed_layers: list[str] = field(default_factory=list)


def mask_summary(masks: Masks) -> MaskSummary:
    """Per-tensor kept counts and sparsities of ``masks``, the overall sparsity, and the layers
    that keep nothing (collapsed)."""
    per_layer = {}
    collapsed = []
    for n, m in masks.items():
        kept = int(m.sum())
        per_layer[n] = {"total": m.numel(), "kept": kept, "sparsity": 1.0 - kept / m.numel()}
        if kept == 0:
            collapsed.append(layer_name(n))
    total = sum(m.numel() for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    return MaskSummary(per_layer, total, kept, 1.0 - kept / total if total else 0.0, collapsed)


def _output_sizes(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Spatial output size (H_out * W_out, 1 for linear) of every conv and linear layer."""
    sizes: dict[str, int] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(
                lambda m, i, o, name=name: sizes.__setitem__(name, o.shape[-1] * o.shape[-2])))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(
                lambda m, i, o, name=name: sizes.__setitem__(name, o[0].numel() // o.shape[-1] if o.dim() > 2 else 1)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            p = next(model.parameters())
            model(torch.zeros((1, *input_shape), device=p.device, dtype=p.dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return sizes


def cost_report(model: nn.Module, masks: Masks | None, input_shape: tuple[int, ...]) -> dict[str, float]:
    """Stored parameters and multiply-accumulates of dense and sparse inference.

    - ``flops_dense``: MACs of the dense network (conv + linear layers).
    - ``flops_sparse``: MACs when only kept entries are multiplied.  For an interspace
      conv this is the factorised path: each (input channel, basis filter) pair that
      some kept coefficient uses costs K^2 MACs per output pixel, plus one MAC per
      kept coefficient per output pixel for the 1x1 combination.  For spatial layers it
      is one MAC per kept weight per output pixel.
    """
    masks = masks if masks is not None else dense_masks(model)
    params = prunable_parameters(model)
    sizes = _output_sizes(model, input_shape)
    modules = dict(model.named_modules())
    flops_dense = 0
    flops_sparse = 0
    basis_flops = 0
    for pname, p in params.items():
        lname = layer_name(pname)
        module = modules[lname]
        hw = sizes[lname]
        mask = masks.get(pname, torch.ones_like(p, dtype=torch.bool)).to(torch.bool)
        flops_dense += p.numel() * hw
        flops_sparse += int(mask.sum()) * hw
        if is_interspace(module):
            c_out, c_in_g, k, _ = p.shape
            groups = module.groups
            # which (input channel, basis index) pairs are used by any kept coefficient
            used = mask.reshape(groups, c_out // groups, c_in_g, k * k).any(dim=1)
            basis_flops += int(used.sum()) * k * k * hw
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(p.numel() for p in params.values())
    fb = fb_overhead_params(model)
    all_params = sum(p.numel() for p in model.parameters())
    return {
        "prunable_params": total,
        "kept_params": kept,
        "sparsity_actual": 1.0 - kept / total if total else 0.0,
        "fb_overhead_params": fb,
        "fb_count": len(filter_bases(model)),
        "stored_params": kept + fb,
        "total_params": all_params,
        "flops_dense": flops_dense,
        "flops_sparse": flops_sparse + basis_flops,
        "flops_basis": basis_flops,
    }


def kept_budget(model: nn.Module, sparsity: float, fb_in_budget: bool = False) -> int:
    """Number of prunable entries to keep at ``sparsity``.

    With ``fb_in_budget`` the filter-basis entries are charged to the budget, so that
    an IP network stores exactly as many numbers as an SP network at the same sparsity.
    """
    total = sum(p.numel() for p in prunable_parameters(model).values())
    keep = keep_count(total, sparsity)
    if fb_in_budget:
        keep -= fb_overhead_params(model)
        if keep < 0:
            raise ValueError(f"sparsity {sparsity} leaves {keep_count(total, sparsity)} entries, fewer than the "
                             f"{fb_overhead_params(model)} filter-basis entries charged by fb_in_budget")
    return keep
