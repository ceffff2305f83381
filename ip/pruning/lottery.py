"""Lottery tickets: iterative magnitude pruning with rewinding (Frankle & Carbin 2019;
Frankle et al. 2020, "linear mode connectivity" rewinding).

Schedule with R = ``rounds``, k = ``rewind_step`` (a global step of the run's schedule):

1. train dense through the whole schedule, keeping the whole state dict after step k
   (the rewind point; for IP it holds lambda AND the filter bases, and BN); this is the
   dense run of the same seed and representation, so a caller that has it passes it as
   ``dense_run`` instead of training it again;
2. for r = 1..R: keep the round(P * d^(r/R)) largest |theta| among the still-kept entries
   (d = budget / P: per-round pruning rate 1 - d^(1/R), exactly the budget at r = R) of
   the weights trained last, rewind every tensor to the rewind point; for r < R train
   again from step k to the end with the new mask.

``start_state`` is the rewind state dict with the final mask applied; the sparse training
from it (the ticket, from step k on) is the caller's.  The model passed in is put back
to its initial state afterwards.
"""
from __future__ import annotations

import copy

import torch
from pydantic import Field
from torch import nn

from ..masks import Masks, dense_masks, prunable_parameters
from .pai import magnitude_scores
from .registry import MethodOptions, PruneRequest, register_method, schedule_keep, select_top, total_entries


class LotteryOptions(MethodOptions):
    rounds: int = Field(3, ge=1, description="train-prune-rewind rounds")
    rewind_step: int = Field(0, ge=0, description="rewind point, a global training step (0: the initialisation)")

    @property
    def start_step(self) -> int:
        # the ticket's final training continues the schedule from the rewind point, so that it
        # trains for as many steps in all as the other methods (Frankle et al. 2020)
        return self.rewind_step


def masked_state(model: nn.Module, masks: Masks) -> dict:
    """A copy of the model's state dict with pruned entries set to exactly zero."""
    state = copy.deepcopy(model.state_dict())
    for name, mask in masks.items():
        state[name] = state[name] * mask.to(state[name].device)
    return state


def load_masked(model: nn.Module, state: dict, masks: Masks) -> None:
    model.load_state_dict(state)
    params = prunable_parameters(model)
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask.to(params[name].device))


def training_epochs(req: PruneRequest, method: str) -> int:
    epochs = req.epochs
    if epochs is None or int(epochs) != epochs or epochs < 1:
        raise ValueError(f"{method} needs epochs, a positive integer; got {epochs!r}")
    return int(epochs)


def magnitude_prune(model: nn.Module, masks: Masks, keep: int, scope: str) -> Masks:
    """Keep the ``keep`` largest |theta| among the entries ``masks`` still keeps."""
    return select_top(magnitude_scores(model), keep, scope, candidates=masks)


def dense_start(model: nn.Module, req: PruneRequest, method: str, keep_step: int | None = None) -> dict | None:
    """Bring ``model`` to the end of a dense run of the schedule (``req.dense_run``, or trained
    now by ``req.train_fn``); returns its state after step ``keep_step`` (None: not asked)."""
    run = req.dense_run
    if run is None:
        return req.train_fn(model, dense_masks(model), start_step=0, keep_step=keep_step)
    if keep_step is not None and (run.rewind_step != keep_step or run.rewind_state is None):
        raise ValueError(f"{method}: the dense run kept its state after step {run.rewind_step}, "
                         f"but the rewind point is step {keep_step}")
    model.load_state_dict(run.final_state)
    return run.rewind_state if keep_step is not None else None


@register_method("lt", "lt", "lottery ticket: iterative magnitude pruning with rewinding",
                 options=LotteryOptions, needs_training=True, starts_from_dense=True)
def _lottery(model: nn.Module, req: PruneRequest):
    training_epochs(req, "lt")
    rounds = req.options.rounds
    rewind_step = req.options.rewind_step
    init_state = copy.deepcopy(model.state_dict())
    total = total_entries(model)
    try:
        rewind_state = copy.deepcopy(dense_start(model, req, "lt", keep_step=rewind_step))
        masks = dense_masks(model)
        for r in range(1, rounds + 1):
            masks = magnitude_prune(model, masks, schedule_keep(total, req.keep_total, r / rounds), req.scope)
            load_masked(model, rewind_state, masks)
            if r < rounds:
                req.train_fn(model, masks, start_step=rewind_step)
        start_state = masked_state(model, masks)
    finally:
        model.load_state_dict(init_state)
    return masks, start_state
