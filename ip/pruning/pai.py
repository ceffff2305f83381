"""Pruning at initialisation: dense, random, magnitude, SNIP, GraSP, SynFlow.

Every score is computed on ``prunable_parameters(model)``: the coefficients lambda of
interspace convs (gradients flow through W = lambda . F^T, the one parametrisation in
:mod:`ip.interspace`) and the weights of all other layers.  Scores are computed on a
deep copy of the model, so the model passed in keeps its weights, BN running
statistics and gradients untouched.

Each method has a public ``*_scores`` function returning ``{name: score tensor}``
where a HIGHER score means "more worth keeping", except :func:`grasp_scores`, which
returns the paper's score S = -theta * (H g) where the LARGEST scores are removed (see
there).  Masks are then chosen by :func:`ip.pruning.registry.select_top` with the exact
budget.

Scores live on the device of the model's parameters, and so do the masks chosen from
them; random draws are made on the CPU and moved, so a seed gives the same mask anywhere.
"""
from __future__ import annotations

import copy
from typing import Callable, Literal, Sequence

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ..metrics.batchnorm import DEFAULT_BN_MODE, resolve_bn_mode
from ..masks import Masks, dense_masks, erk_densities, exact_counts, prunable_parameters
from .registry import MethodOptions, PruneRequest, register_method, select_top, select_with_counts, schedule_keep


class RandomOptions(MethodOptions):
    erk_power_scale: float = Field(1.0, gt=0.0, description="exponent of the ERK layer factor (1.0: Evci et al.)")


class ScoreOptions(MethodOptions):
    bn_mode: Literal["batch", "running"] = Field(
        "batch", description="BN while scoring: batch statistics, as the first training step (scoring runs on a copy)")


class GraspOptions(ScoreOptions):
    temperature: float = Field(200.0, gt=0.0, description="logits are divided by this in both passes")


class SynflowOptions(MethodOptions):
    rounds: int = Field(100, ge=1, description="score-prune rounds (exponential density schedule)")
    dtype: Literal["float64", "float32"] = Field("float64", description="dtype of the linearised network")

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]


# ---------------------------------------------------------------------------------------
# helpers

def scoring_copy(model: nn.Module, bn_mode: str = DEFAULT_BN_MODE, dtype: torch.dtype | None = None) -> nn.Module:
    """A detached deep copy of ``model`` to compute scores on (the original is never touched).

    ``bn_mode='batch'`` makes BN use batch statistics (what the first training step sees);
    ``'running'`` uses the running statistics.
    """
    net = copy.deepcopy(model)
    if dtype is not None:
        net = net.to(dtype)
    net.train(resolve_bn_mode(bn_mode) == "batch")
    for p in net.parameters():
        p.grad = None
        p.requires_grad_(True)
    return net


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _grads(loss: torch.Tensor, params: list[torch.Tensor], create_graph: bool = False) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, params, create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]


def layer_counts(model: nn.Module, keep_total: int, distribution: str = "uniform",
                 erk_power_scale: float = 1.0) -> dict[str, int]:
    """Per-layer kept counts summing exactly to ``keep_total``.

    ``uniform``: every layer has density keep_total / P.  ``erk``: Erdos-Renyi-Kernel
    densities (Evci et al. 2020), layers that would exceed density 1 kept dense.
    Rounded to integers by largest remainder.
    """
    params = prunable_parameters(model)
    sizes = {n: p.numel() for n, p in params.items()}
    total = sum(sizes.values())
    if distribution == "uniform":
        densities = {n: keep_total / total for n in sizes}
    elif distribution == "erk":
        densities = erk_densities({n: p.shape for n, p in params.items()}, 1.0 - keep_total / total,
                                  erk_power_scale)
    else:
        raise ValueError(f"distribution must be 'uniform' or 'erk', got {distribution!r}")
    return exact_counts(densities, sizes, keep_total)


# ---------------------------------------------------------------------------------------
# scores

def random_scores(model: nn.Module, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """I.i.d. uniform scores (drawn on the CPU so a seeded generator gives the same mask on any device)."""
    return {n: torch.rand(p.shape, generator=generator, dtype=torch.float64).to(p.device)
            for n, p in prunable_parameters(model).items()}


def magnitude_scores(model: nn.Module) -> dict[str, torch.Tensor]:
    """|theta|: |lambda| for interspace convs, |w| otherwise."""
    return {n: p.detach().abs().clone() for n, p in prunable_parameters(model).items()}


def snip_scores(model: nn.Module, batches: Batches, loss_fn: Callable = F.cross_entropy,
                bn_mode: str = DEFAULT_BN_MODE) -> dict[str, torch.Tensor]:
    """SNIP connection sensitivity |theta * dL/dtheta| (Lee et al. 2019).

    The gradient is summed over all ``batches`` (each batch's loss as ``loss_fn``
    reduces it) before the product; the absolute value is taken last.
    """
    net = scoring_copy(model, bn_mode)
    params = prunable_parameters(net)
    names, tensors = list(params), list(params.values())
    device = _device(net)
    total = [torch.zeros_like(p) for p in tensors]
    for x, y in batches:
        loss = loss_fn(net(x.to(device)), y.to(device))
        for acc, g in zip(total, _grads(loss, tensors)):
            acc += g
    return {n: (p.detach() * g).abs() for n, p, g in zip(names, tensors, total)}


def grasp_scores(model: nn.Module, batches: Batches, loss_fn: Callable = F.cross_entropy,
                 temperature: float = 200.0, bn_mode: str = DEFAULT_BN_MODE) -> dict[str, torch.Tensor]:
    """GraSP score S = -theta * (H g) (Wang et al. 2020, Eq. 8).

    g = sum_b grad L_b and H g = sum_b grad (g . grad L_b), with g held constant and
    every loss computed on logits divided by ``temperature`` (200 in the paper's code,
    in both passes).  Removing weight q changes the gradient norm by about S_q (first
    order), so GraSP REMOVES the weights with the LARGEST S and keeps the smallest: to
    preserve gradient flow.  Callers turning S into a keep-score negate it.

    The original code splits each batch in halves and uses only the first halves in
    the Hessian pass, a memory saving; here both passes use all of every batch.
    """
    net = scoring_copy(model, bn_mode)
    params = prunable_parameters(net)
    names, tensors = list(params), list(params.values())
    device = _device(net)
    batches = [(x.to(device), y.to(device)) for x, y in batches]
    grad = [torch.zeros_like(p) for p in tensors]
    for x, y in batches:
        loss = loss_fn(net(x) / temperature, y)
        for acc, g in zip(grad, _grads(loss, tensors)):
            acc += g
    hess_grad = [torch.zeros_like(p) for p in tensors]
    for x, y in batches:
        loss = loss_fn(net(x) / temperature, y)
        g_graph = _grads(loss, tensors, create_graph=True)
        dot = sum((gg * g0).sum() for gg, g0 in zip(g_graph, grad))
        for acc, hg in zip(hess_grad, _grads(dot, tensors)):
            acc += hg
    return {n: -(p.detach() * hg) for n, p, hg in zip(names, tensors, hess_grad)}


class SynflowNetwork:
    """The linearised network of SynFlow: a copy with every parameter and buffer replaced by
    its absolute value (for IP this includes the filter basis, i.e. |F|), in eval mode and
    ``dtype``.

    Eval mode follows the original code (Tanaka et al. run pruning with
    ``model.eval()``): with a single all-ones input, train-mode BN would see zero batch
    variance.  At initialisation BN is then a positive per-channel scaling.  float64
    avoids the overflow/underflow of the path products in deep nets.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float64):
        self.net = scoring_copy(model, "eval", dtype)
        with torch.no_grad():
            for t in self.net.state_dict().values():
                if t.is_floating_point():
                    t.abs_()
        self.params = prunable_parameters(self.net)
        self.abs_values = {n: p.detach().clone() for n, p in self.params.items()}
        self.dtype = dtype

    def scores(self, input_shape: Sequence[int], masks: Masks | None = None) -> dict[str, torch.Tensor]:
        """|theta * dR/dtheta| with R = 1^T f(1) of the linearised network, pruned by ``masks``."""
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(self.abs_values[n] if masks is None else self.abs_values[n] * masks[n].to(p.device))
        x = torch.ones((1, *input_shape), dtype=self.dtype, device=_device(self.net))
        flow = self.net(x).sum()
        names, tensors = list(self.params), list(self.params.values())
        return {n: (p.detach() * g).abs() for n, p, g in zip(names, tensors, _grads(flow, tensors))}


def synflow_scores(model: nn.Module, input_shape: Sequence[int], masks: Masks | None = None,
                   dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """One round of SynFlow scores (Tanaka et al. 2020): |theta * dR/dtheta| on the
    linearised (absolute-valued, eval-mode) network, with ``masks`` applied.  Data-free."""
    return SynflowNetwork(model, dtype).scores(input_shape, masks)


def synflow_masks(model: nn.Module, keep_total: int, input_shape: Sequence[int], rounds: int = 100,
                  scope: str = "global", dtype: torch.dtype = torch.float64) -> Masks:
    """Iterative SynFlow: round k keeps round(P * d^(k/rounds)) entries, d = keep_total / P
    (exponential schedule), scoring the network pruned by the previous round; the last
    round keeps exactly ``keep_total``.  An entry pruned once stays pruned."""
    linear = SynflowNetwork(model, dtype)
    masks = dense_masks(model)
    total = sum(m.numel() for m in masks.values())
    for k in range(1, rounds + 1):
        scores = linear.scores(input_shape, masks)
        masks = select_top(scores, schedule_keep(total, keep_total, k / rounds), scope, candidates=masks)
    return masks


# ---------------------------------------------------------------------------------------
# registered methods

@register_method("dense", "baseline", "no pruning (sparsity ignored)", uses_sparsity=False)
def _dense(model: nn.Module, req: PruneRequest):
    return dense_masks(model), None


@register_method("random", "pai", "random mask, uniform per-layer density or ERK", options=RandomOptions)
def _random(model: nn.Module, req: PruneRequest):
    counts = layer_counts(model, req.keep_total, req.distribution, req.options.erk_power_scale)
    return select_with_counts(random_scores(model, req.generator), counts), None


@register_method("magnitude", "pai", "largest |theta| at initialisation")
def _magnitude(model: nn.Module, req: PruneRequest):
    return select_top(magnitude_scores(model), req.keep_total, req.scope), None


@register_method("snip", "pai", "SNIP |theta * dL/dtheta| (Lee et al. 2019)", options=ScoreOptions,
                 needs_data=True)
def _snip(model: nn.Module, req: PruneRequest):
    scores = snip_scores(model, req.batches, req.loss_fn, req.options.bn_mode)
    return select_top(scores, req.keep_total, req.scope), None


@register_method("grasp", "pai", "GraSP, remove the largest -theta*Hg (Wang et al. 2020)", options=GraspOptions,
                 needs_data=True)
def _grasp(model: nn.Module, req: PruneRequest):
    scores = grasp_scores(model, req.batches, req.loss_fn, req.options.temperature,
                          req.options.bn_mode)
    # keep the smallest S = -theta*Hg, i.e. the highest theta*Hg
    return select_top({n: -s for n, s in scores.items()}, req.keep_total, req.scope), None


def synflow_input_shape(req: PruneRequest) -> tuple[int, ...]:
    if req.batches:
        return tuple(req.batches[0][0].shape[1:])
    if req.input_shape is not None:
        return tuple(int(v) for v in req.input_shape)
    raise ValueError("synflow needs the input shape: pass batches or input_shape=(C, H, W)")


@register_method("synflow", "pai", "iterative SynFlow, data-free (Tanaka et al. 2020)", options=SynflowOptions)
def _synflow(model: nn.Module, req: PruneRequest):
    dtype = getattr(torch, req.options.dtype)
    masks = synflow_masks(model, req.keep_total, synflow_input_shape(req), req.options.rounds,
                          req.scope, dtype)
    return masks, None
