"""Trainable unpruned coordinates, full-subset gradients and gradient flow (GF).

Everything that measures "the gradient" or "the Hessian" of a pruned network goes
through one object, :class:`CoordinateSet`: the flat vector of coordinates an optimiser
can move.  Which coordinates those are is decided once, in :func:`trainable_coordinates`:

- prunable tensors (lambda of interspace convs, weights of other convs and of linear
  layers): the entries the mask keeps (``kind='prunable'``);
- filter bases F (``kind='fb'``), BN/normalisation parameters (``kind='norm'``),
  biases (``kind='bias'``) and any other trainable tensor (``kind='other'``): all
  entries, since these are never pruned.

Only parameters with ``requires_grad`` count (a frozen FB is not a coordinate).  GF as
defined in STUDY_SPEC section 3 is ||g||^2 over the default set (all of the above), with
``g`` the gradient of the data loss (no weight decay) on a fixed data subset.

BN during measurement (STUDY_SPEC section 3) is chosen by ``bn_mode``: ``"batch"``
(alias ``"train"``) normalises with the statistics of each measured batch, the loss a
training step sees and the study's default (:data:`DEFAULT_BN_MODE`); ``"running"``
(alias ``"eval"``) uses the running statistics.  The functions here still default to
``"eval"``.  Either way the model's buffers and train/eval flags are unchanged
afterwards (:func:`ip.metrics.batchnorm.bn_context`).

The point at which gradients are taken is the model as stored.  Pruned entries must be
exactly zero there (as :class:`ip.masks.MaskEnforcer` keeps them); a non-zero pruned
entry would mean the network being measured is not the pruned network, so it is an error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..interspace import filter_bases
from ..masks import Masks, layer_name, mask_mismatch, prunable_parameters
from .batchnorm import DEFAULT_BN_MODE, bn_context, resolve_bn_mode  # noqa: F401  (re-exported)

KINDS = ("prunable", "fb", "norm", "bias", "other")
Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class CoordinateBlock:
    """The coordinates contributed by one parameter tensor."""

    name: str                     # qualified name, as model.named_parameters() spells it
    param: nn.Parameter
    mask: torch.Tensor | None     # bool, same shape as param; None means every entry
    kind: str                     # one of KINDS
    layer: str                    # owning module (an FB: the first conv that uses it)

    @property
    def numel(self) -> int:
        return self.param.numel() if self.mask is None else int(self.mask.sum())


class CoordinateSet:
    """An ordered list of :class:`CoordinateBlock` seen as one flat vector.

    ``gather`` maps per-parameter tensors (full shape) to the flat vector of kept
    coordinates; ``scatter`` is its adjoint (zeros at excluded entries).  Block order is
    ``model.named_parameters()`` order, so a flat vector means the same thing for every
    function that receives the same set.
    """

    def __init__(self, blocks: list[CoordinateBlock]):
        self.blocks = blocks
        # flat row-major indices of kept entries; gather and scatter share them, so
        # coordinate i means the same entry in both directions
        self._index = [None if b.mask is None else b.mask.reshape(-1).nonzero().squeeze(1) for b in blocks]
        sizes = [b.numel for b in blocks]
        self.offsets = [0]
        for s in sizes:
            self.offsets.append(self.offsets[-1] + s)
        self.dim = self.offsets[-1]

    def __iter__(self) -> Iterator[CoordinateBlock]:
        return iter(self.blocks)

    def __len__(self) -> int:
        return len(self.blocks)

    @property
    def params(self) -> list[nn.Parameter]:
        return [b.param for b in self.blocks]

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.blocks]

    def gather(self, tensors: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """Flat vector of the kept entries of ``tensors`` (one per block; None = zeros)."""
        parts = []
        for block, index, t in zip(self.blocks, self._index, tensors, strict=True):
            if t is None:
                t = torch.zeros_like(block.param)
            parts.append(t.reshape(-1) if index is None else t.reshape(-1)[index])
        if not parts:
            return torch.zeros(0)
        return torch.cat(parts)

    def scatter(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Full-shape tensors, one per block, holding ``flat`` at kept entries and zeros elsewhere."""
        if flat.numel() != self.dim:
            raise ValueError(f"vector has {flat.numel()} entries, the coordinate set has {self.dim}")
        out = []
        for i, (block, index) in enumerate(zip(self.blocks, self._index)):
            part = flat[self.offsets[i]:self.offsets[i + 1]].to(block.param.dtype)
            if index is None:
                out.append(part.reshape(block.param.shape))
            else:
                # out-of-place, so that torch.func transforms can differentiate through it
                full = torch.zeros(block.param.numel(), dtype=part.dtype, device=part.device)
                out.append(full.index_put((index,), part).reshape(block.param.shape))
        return out

    def split(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-parameter slices (kept entries only) of a flat vector."""
        return {b.name: flat[self.offsets[i]:self.offsets[i + 1]] for i, b in enumerate(self.blocks)}

    def values(self) -> torch.Tensor:
        """The current values of the coordinates as a flat vector."""
        with torch.no_grad():
            return self.gather([p.detach() for p in self.params])

    def kinds(self) -> dict[str, int]:
        """Number of coordinates of each kind."""
        counts = {k: 0 for k in KINDS}
        for b in self.blocks:
            counts[b.kind] += b.numel
        return counts

    def per_layer_dims(self) -> dict[str, int]:
        dims: dict[str, int] = {}
        for b in self.blocks:
            dims[b.layer] = dims.get(b.layer, 0) + b.numel
        return dims


def _check_masks(masks: Masks, prunable: dict[str, nn.Parameter]) -> None:
    unknown = set(masks) - set(prunable)
    if unknown:
        raise mask_mismatch(unknown, prunable)
    for name, mask in masks.items():
        if mask.shape != prunable[name].shape:
            raise ValueError(f"mask {name} has shape {tuple(mask.shape)}, parameter has "
                             f"{tuple(prunable[name].shape)}")


def _parameter_kind(model: nn.Module, name: str) -> str:
    module_name, _, leaf = name.rpartition(".")
    module = model.get_submodule(module_name) if module_name else model
    if isinstance(module, _NORM_TYPES):
        return "norm"
    if leaf == "bias":
        return "bias"
    return "other"


def trainable_coordinates(model: nn.Module, masks: Masks | None = None, shared_only: bool = False,
                          include_fb: bool = True, include_norm: bool = True, include_bias: bool = True,
                          include_other: bool = True) -> CoordinateSet:
    """The trainable, unpruned coordinates of ``model`` under ``masks``.

    Prunable tensors missing from ``masks`` are dense (every entry kept).  With
    ``shared_only`` only the masked prunable tensors are included: the coordinates
    that the SP network (masked w) and its IP twin (masked lambda) have in common.
    The ``include_*`` switches drop whole kinds (FB, normalisation, bias, other).
    Parameters with ``requires_grad=False`` are never included.
    """
    masks = masks or {}
    prunable = prunable_parameters(model)
    _check_masks(masks, prunable)
    fb_layer = {id(fb.basis): layer for layer, fb in filter_bases(model).items()}
    wanted = {"prunable": True, "fb": include_fb and not shared_only, "norm": include_norm and not shared_only,
              "bias": include_bias and not shared_only, "other": include_other and not shared_only}
    blocks = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name in prunable:
            kind, layer = "prunable", layer_name(name)
            mask = masks.get(name)
            mask = None if mask is None else mask.to(device=param.device, dtype=torch.bool)
        elif id(param) in fb_layer:
            kind, layer, mask = "fb", fb_layer[id(param)], None
        else:
            kind, layer, mask = _parameter_kind(model, name), name.rpartition(".")[0], None
        if wanted[kind]:
            blocks.append(CoordinateBlock(name, param, mask, kind, layer))
    return CoordinateSet(blocks)


def check_pruned_zero(coords: CoordinateSet) -> None:
    """Raise if a pruned entry of the stored model is non-zero (the model is not the pruned net)."""
    for b in coords:
        if b.mask is not None and bool((b.param.detach()[~b.mask] != 0).any()):
            raise ValueError(f"pruned entries of {b.name} are non-zero; zero them (ip.masks.MaskEnforcer) "
                             "before measuring the pruned network")


def as_batches(batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A re-iterable list of (inputs, targets); a single (x, y) pair is one batch."""
    if isinstance(batches, tuple) and len(batches) == 2 and isinstance(batches[0], torch.Tensor):
        return [batches]
    out = list(batches)
    if not out:
        raise ValueError("no batches given")
    return out


def _to_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = next(model.parameters())
    x = x.to(p.device)
    if x.is_floating_point():
        x = x.to(p.dtype)
    return x, y.to(p.device)


def subset_loss_terms(model: nn.Module, batches: Batches, loss_fn: LossFn = F.cross_entropy
                      ) -> Iterator[torch.Tensor]:
    """The full-subset loss as a sum of per-batch terms ``loss_fn(batch) * n_b / N``.

    ``loss_fn`` returns the mean loss of a batch, so the terms add up to the mean loss
    over the whole subset whatever the batch sizes; their gradients add up to the
    full-subset gradient.  The caller chooses BN mode (see :func:`bn_context`).
    """
    total = sum(int(y.shape[0]) for _, y in batches)
    for x, y in batches:
        x, y = _to_model(model, x, y)
        yield loss_fn(model(x), y) * (y.shape[0] / total)


def subset_loss(model: nn.Module, batches: Batches, loss_fn: LossFn = F.cross_entropy,
                bn_mode: str = DEFAULT_BN_MODE) -> float:
    """Mean data loss over the whole subset (no gradient), BN in ``bn_mode`` (see :func:`bn_context`)."""
    batches = as_batches(batches)
    with bn_context(model, bn_mode), torch.no_grad():
        return float(sum(float(t) for t in subset_loss_terms(model, batches, loss_fn)))


def full_gradient(model: nn.Module, batches: Batches, coords: CoordinateSet, loss_fn: LossFn = F.cross_entropy,
                  bn_mode: str = DEFAULT_BN_MODE) -> tuple[float, torch.Tensor]:
    """(mean subset loss, flat full-subset gradient over ``coords``), data loss only.

    BN is in ``bn_mode`` (see :func:`bn_context`); in ``"batch"`` mode every batch is
    normalised with its own statistics, as in a training step on that batch.
    """
    batches = as_batches(batches)
    check_pruned_zero(coords)
    params = coords.params
    grad = None
    loss = 0.0
    with bn_context(model, bn_mode):
        for term in subset_loss_terms(model, batches, loss_fn):
            grads = torch.autograd.grad(term, params, allow_unused=True)
            flat = coords.gather(grads).detach()
            grad = flat if grad is None else grad + flat
            loss += float(term.detach())
    return loss, grad


def gradient_flow(model: nn.Module, batches: Batches, masks: Masks | None = None,
                  loss_fn: LossFn = F.cross_entropy, bn_mode: str = DEFAULT_BN_MODE,
                  coords: CoordinateSet | None = None) -> dict:
    """Gradient flow ||g||^2 of the data loss over the trainable unpruned coordinates.

    ``g`` is the gradient of the mean loss over all ``batches`` (batch losses weighted
    by batch size), taken at the stored parameters; weight decay is not part of it.
    BN is in ``bn_mode`` (STUDY_SPEC section 3): ``"batch"`` (alias ``"train"``) uses
    the batch statistics a training step sees, the study's default; ``"running"``
    (alias ``"eval"``, this function's default) the running statistics, meaningful only
    after :func:`ip.metrics.batchnorm.recalibrate_bn`.  ``coords`` defaults to
    ``trainable_coordinates(model, masks)`` (all kinds).

    Returns a dict:
    ``total``  ||g||^2 over ``coords``;
    ``shared`` the masked prunable tensors only (the coordinates SP and IP share);
    ``fb``, ``norm``, ``bias``, ``other``  the contribution of each kind
    (``shared + fb + norm + bias + other == total``);
    ``per_layer`` {module name: contribution} (an FB counts for the first conv using it);
    ``per_parameter`` {qualified parameter name: contribution};
    ``num_coordinates`` {kind: count} and ``dim``; ``loss`` the mean subset loss;
    ``bn_mode`` the canonical name of the BN mode used (``"batch"`` or ``"running"``).
    """
    coords = coords if coords is not None else trainable_coordinates(model, masks)
    loss, grad = full_gradient(model, batches, coords, loss_fn, bn_mode)
    grad = grad.to(torch.float64)
    per_parameter = {name: float(part.pow(2).sum()) for name, part in coords.split(grad).items()}
    by_kind = {k: 0.0 for k in KINDS}
    per_layer: dict[str, float] = {}
    for b in coords:
        by_kind[b.kind] += per_parameter[b.name]
        per_layer[b.layer] = per_layer.get(b.layer, 0.0) + per_parameter[b.name]
    return {
        "total": float(grad.pow(2).sum()),
        "shared": by_kind["prunable"],
        "fb": by_kind["fb"],
        "norm": by_kind["norm"],
        "bias": by_kind["bias"],
        "other": by_kind["other"],
        "per_layer": per_layer,
        "per_parameter": per_parameter,
        "num_coordinates": coords.kinds(),
        "dim": coords.dim,
        "loss": loss,
        "bn_mode": resolve_bn_mode(bn_mode),
    }
