"""Dynamic sparse training: RigL (Evci et al. 2020) and SET (Mocanu et al. 2018).

Both start from a random ERK mask (``find_masks``; option ``dst_distribution``,
default 'erk', 'uniform' possible) and update it during training
(:class:`DSTHook`).  At every ``dst_interval``-th step t < T_end (T_end =
``dst_stop_fraction`` * total_steps), with drop fraction

    f(t) = alpha / 2 * (1 + cos(pi * t / T_end)),

every layer drops k = floor(f * n_active) of its active entries with the smallest
|theta| and then activates k entries among the now inactive ones (entries just dropped
included, as in the RigL code): RigL those with the largest |dense gradient|, SET
random ones.  Per-layer and total counts stay exact.  Entries that are active now
but were not before the update start at exactly zero in storage (and, when the
optimizer is given, so do their momentum / Adam moments), as in RigL.  An entry
dropped and grown back in the same update was never inactive and keeps its value
(otherwise every update would zero a fraction of the layers ERK keeps dense).

RigL needs the gradient of the loss w.r.t. every entry, pruned or not: construct the
:class:`ip.masks.MaskEnforcer` with ``keep_dense_grad=True``; the hook reads
``enforcer.dense_grads`` (the gradient of the last backward before the step).  For
IP this is dL/dlambda through W = lambda . F^T.
"""
from __future__ import annotations

import copy
import math
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from ..masks import MaskEnforcer, Masks
from .pai import layer_counts, random_scores
from .registry import (MethodOptions, PruneRequest, kept_entries, keep_top, register_hook, register_method,
                       select_with_counts, total_entries)

_OPTIMIZER_STATE_KEYS = ("momentum_buffer", "exp_avg", "exp_avg_sq", "square_avg", "sum")


class DstOptions(MethodOptions):
    """Options of RigL and SET (shared: params.yaml's ``prune.dst``)."""
    interval: int = Field(100, ge=1, description="optimizer steps between mask updates (Delta T)")
    alpha: float = Field(0.3, ge=0.0, le=1.0, description="initial drop fraction")
    stop_fraction: float = Field(0.75, ge=0.0, le=1.0, description="updates stop at this fraction of training")
    distribution: Literal["erk", "uniform"] = Field("erk", description="layer densities of the random start mask")
    erk_power_scale: float = Field(1.0, gt=0.0, description="exponent of the ERK layer factor")


def drop_fraction(step: int, alpha: float, end_step: int) -> float:
    """RigL's cosine-decayed drop fraction."""
    return alpha / 2.0 * (1.0 + math.cos(math.pi * step / end_step))


class DSTHook:
    """Mask updates of RigL (``regrowth='gradient'``) or SET (``regrowth='random'``)."""

    def __init__(self, model: nn.Module, masks: Masks, enforcer: MaskEnforcer, total_steps: int,
                 options: "DstOptions", regrowth: str, generator: torch.Generator | None = None,
                 optimizer: torch.optim.Optimizer | None = None):
        if regrowth not in ("gradient", "random"):
            raise ValueError(f"regrowth must be 'gradient' or 'random', got {regrowth!r}")
        if regrowth == "gradient" and not enforcer.keep_dense_grad:
            raise ValueError("RigL grows from dense gradients: build the MaskEnforcer with keep_dense_grad=True")
        self.model = model
        self.enforcer = enforcer
        self.regrowth = regrowth
        self.optimizer = optimizer
        self.interval = options.interval
        self.alpha = options.alpha
        self.end_step = int(options.stop_fraction * total_steps)
        self.total = total_entries(model)
        if generator is None:
            # a private generator whose state can be saved; seeded from the run's seed
            generator = torch.Generator().manual_seed(torch.initial_seed() % (2 ** 63))
        self.generator = generator
        self.history: list[dict] = []
        enforcer.set_masks(masks)

    def is_update_step(self, step: int) -> bool:
        return step > 0 and step % self.interval == 0 and step < self.end_step

    def _grow_scores(self, name: str, param: torch.Tensor) -> torch.Tensor:
        if self.regrowth == "random":
            return random_scores_like(param, self.generator)
        if name not in self.enforcer.dense_grads:
            raise RuntimeError(f"no dense gradient for {name}: call after_step after backward and step")
        return self.enforcer.dense_grads[name].abs()

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        if not self.is_update_step(step):
            return
        fraction = drop_fraction(step, self.alpha, self.end_step)
        params = self.enforcer.params
        new_masks: Masks = {}
        regrown: Masks = {}
        changed = 0
        for name, mask in self.enforcer.masks.items():
            param = params[name]
            n_active = int(mask.sum())
            k = int(fraction * n_active)
            grow_score = self._grow_scores(name, param)  # drawn for every layer: SET's RNG use is step-determined
            if k == 0:
                new_masks[name] = mask
                continue
            # drop: keep the n_active - k largest |theta| among active entries
            kept_after_drop = keep_top(torch.where(mask, param.detach().abs(), torch.full_like(param, -1.0)),
                                       n_active - k)
            # grow: k entries among the inactive ones (after the drop)
            lifted = torch.where(kept_after_drop, torch.full_like(grow_score, -1.0), grow_score)
            grown = keep_top(lifted, k) & ~kept_after_drop
            new_masks[name] = kept_after_drop | grown
            regrown[name] = grown & ~mask
            changed += int((new_masks[name] != mask).sum())
        self.enforcer.set_masks(new_masks)
        for name, grown in regrown.items():
            params[name][grown] = 0.0
            self._reset_optimizer_state(params[name], grown)
        self.history.append({"step": step, "drop_fraction": fraction, "changed": changed})

    def _reset_optimizer_state(self, param: torch.Tensor, grown: torch.Tensor) -> None:
        if self.optimizer is None:
            return
        state = self.optimizer.state.get(param, {})
        for key in _OPTIMIZER_STATE_KEYS:
            buf = state.get(key)
            if isinstance(buf, torch.Tensor) and buf.shape == param.shape:
                buf[grown] = 0.0

    def current_sparsity(self) -> float:
        return 1.0 - kept_entries(self.enforcer.masks) / self.total

    def state_dict(self) -> dict:
        return {"masks": self.enforcer.state_dict(), "generator": self.generator.get_state(),
                "history": copy.deepcopy(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self.enforcer.set_masks(state["masks"])
        self.generator.set_state(state["generator"])
        self.history = copy.deepcopy(state["history"])


def random_scores_like(param: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(param.shape, generator=generator, dtype=torch.float64).to(param.device)


def _erk_start(model: nn.Module, req: PruneRequest):
    counts = layer_counts(model, req.keep_total, req.options.distribution, req.options.erk_power_scale)
    return select_with_counts(random_scores(model, req.generator), counts), None


register_method("rigl", "dst", "RigL: ERK start, drop smallest |theta|, grow largest |dense grad|",
                options=DstOptions, params_key="dst", needs_dense_grad=True)(_erk_start)
register_method("set", "dst", "SET: ERK start, drop smallest |theta|, grow at random",
                options=DstOptions, params_key="dst")(_erk_start)


@register_hook("rigl")
def _rigl_hook(model, masks, enforcer, *, total_steps, sparsity, generator=None, options=None,
               fb_in_budget=False, scope="global", optimizer=None):
    return DSTHook(model, masks, enforcer, total_steps, options, "gradient", generator, optimizer)


@register_hook("set")
def _set_hook(model, masks, enforcer, *, total_steps, sparsity, generator=None, options=None,
              fb_in_budget=False, scope="global", optimizer=None):
    return DSTHook(model, masks, enforcer, total_steps, options, "random", generator, optimizer)
