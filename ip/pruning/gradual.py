"""Pruning during and after training: gradual magnitude pruning (GMP) and one-shot.

GMP (Zhu & Gupta 2018): training starts dense; at the pruning steps
t = t0, t0 + dt, ..., and t_end the target sparsity is

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (t_end - t0))^3,   s_i = 0,

(the paper's n*dt is t_end - t0 here, so the final step lands on t_end even when dt
does not divide it) and the round((1 - s_t) * P) largest |theta| among the still-kept
entries are kept (global ranking by default).  s_f is the effective target
1 - budget/P, so the last pruning step keeps exactly the budget.

One-shot: train dense for ``epochs``, keep the budget's largest |theta| once; the
trained weights, masked, are the ``start_state`` of the fine-tuning run.
"""
from __future__ import annotations

import copy

from pydantic import Field, model_validator
from torch import nn

from ..masks import MaskEnforcer, Masks, dense_masks, kept_budget
from .lottery import dense_start, magnitude_prune, masked_state, training_epochs
from .registry import MethodOptions, PruneRequest, kept_entries, register_hook, register_method, total_entries


class GmpOptions(MethodOptions):
    start_fraction: float = Field(0.1, ge=0.0, le=1.0, description="first pruning step t0 / total steps")
    end_fraction: float = Field(0.75, ge=0.0, le=1.0, description="step reaching the target sparsity / total steps")
    interval: int = Field(100, ge=1, description="optimizer steps between pruning steps (Delta t)")

    @model_validator(mode="after")
    def _start_before_end(self):
        if self.start_fraction >= self.end_fraction:
            raise ValueError("start_fraction must be below end_fraction")
        return self


class OneshotOptions(MethodOptions):
    finetune_epochs: int | None = Field(None, ge=1, description="epochs of fine-tuning (None: the run's epochs)")


def cubic_sparsity(step: int, final_sparsity: float, start_step: int, end_step: int,
                   initial_sparsity: float = 0.0) -> float:
    """Zhu & Gupta's cubic schedule s_t (constant s_i before start_step, s_f from end_step)."""
    if step <= start_step:
        return initial_sparsity
    if step >= end_step:
        return final_sparsity
    progress = (step - start_step) / (end_step - start_step)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3


class GMPHook:
    """Training-time schedule of GMP; call :meth:`after_step` after every optimizer step.

    Options: :class:`GmpOptions`.
    """

    def __init__(self, model: nn.Module, masks: Masks, enforcer: MaskEnforcer, total_steps: int,
                 sparsity: float, options: GmpOptions, fb_in_budget: bool = False, scope: str = "global"):
        self.model = model
        self.enforcer = enforcer
        self.scope = scope
        self.total = total_entries(model)
        self.keep_final = kept_budget(model, sparsity, fb_in_budget)
        self.final_sparsity = 1.0 - self.keep_final / self.total
        self.end_step = max(1, int(round(options.end_fraction * total_steps)))
        self.start_step = min(int(round(options.start_fraction * total_steps)), self.end_step)
        self.interval = options.interval
        self.history: list[dict] = []
        enforcer.set_masks(masks)

    def is_pruning_step(self, step: int) -> bool:
        on_grid = step >= self.start_step and (step - self.start_step) % self.interval == 0
        return (on_grid and step <= self.end_step) or step == self.end_step

    def target_keep(self, step: int) -> int:
        if step >= self.end_step:
            return self.keep_final
        s = cubic_sparsity(step, self.final_sparsity, self.start_step, self.end_step)
        return max(self.keep_final, int(round((1.0 - s) * self.total)))

    def after_step(self, step: int) -> None:
        kept = kept_entries(self.enforcer.masks)
        # a run resumed past t_end without its last pruning step still ends at the budget
        due = self.is_pruning_step(step) or (step > self.end_step and kept > self.keep_final)
        if not due:
            return
        keep = min(self.target_keep(step), kept)
        if keep == kept:
            return
        masks = magnitude_prune(self.model, self.enforcer.masks, keep, self.scope)
        self.enforcer.set_masks(masks)
        self.history.append({"step": step, "kept": keep})

    def current_sparsity(self) -> float:
        return 1.0 - kept_entries(self.enforcer.masks) / self.total

    def state_dict(self) -> dict:
        return {"masks": self.enforcer.state_dict(), "history": copy.deepcopy(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self.enforcer.set_masks(state["masks"])
        self.history = copy.deepcopy(state["history"])


@register_method("gmp", "gradual", "gradual magnitude pruning, cubic schedule (Zhu & Gupta 2018); starts dense",
                 options=GmpOptions)
def _gmp(model: nn.Module, req: PruneRequest):
    # GMP starts dense; the budget is reached during training by the hook
    return dense_masks(model), None


@register_hook("gmp")
def _gmp_hook(model, masks, enforcer, *, total_steps, sparsity, generator=None, options=None,
              fb_in_budget=False, scope="global", optimizer=None):
    return GMPHook(model, masks, enforcer, total_steps, sparsity, options, fb_in_budget, scope)


@register_method("oneshot", "pretrained", "train dense, prune the smallest |theta| once, fine-tune",
                 options=OneshotOptions, needs_training=True, finetunes=True, starts_from_dense=True)
def _oneshot(model: nn.Module, req: PruneRequest):
    training_epochs(req, "oneshot")
    init_state = copy.deepcopy(model.state_dict())
    try:
        dense_start(model, req, "oneshot")
        masks = magnitude_prune(model, dense_masks(model), req.keep_total, req.scope)
        start_state = masked_state(model, masks)
    finally:
        model.load_state_dict(init_state)
    return masks, start_state
