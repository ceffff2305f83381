"""Lottery tickets: iterative magnitude pruning with rewinding (Frankle & Carbin 2019;
Frankle et al. 2020, "linear mode connectivity" rewinding).

Schedule with R = ``lt_rounds``, k = ``lt_rewind_epoch``, E = ``epochs``:

1. train dense for k epochs from the initialisation and store the whole state dict
   (the rewind point; for IP it holds lambda AND the filter bases, and BN);
2. for r = 1..R: train (the mask of round r-1 enforced) from epoch k to E, keep the
   round(P * d^(r/R)) largest |theta| among the still-kept entries (d = budget / P:
   per-round pruning rate 1 - d^(1/R), exactly the budget at r = R), rewind every
   tensor to the rewind point.

``start_state`` is the rewind state dict with the final mask applied; the sparse
training from it is the caller's (it is not part of mask finding).  The model passed
in is put back to its initial state afterwards.
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
    rewind_epoch: int = Field(1, ge=0, description="rewind point in epochs (0: the initialisation)")

    @property
    def start_epoch(self) -> int:
        # the ticket's final training continues the schedule from the rewind point, so that it
        # trains for as many epochs in all as the other methods (Frankle et al. 2020)
        return self.rewind_epoch


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


@register_method("lt", "lt", "lottery ticket: iterative magnitude pruning with rewinding",
                 options=LotteryOptions, needs_training=True)
def _lottery(model: nn.Module, req: PruneRequest):
    epochs = training_epochs(req, "lt")
    rounds = req.options.rounds
    rewind_epoch = req.options.rewind_epoch
    if not 0 <= rewind_epoch < epochs:
        raise ValueError(f"rewind_epoch must be in [0, epochs={epochs}), got {rewind_epoch}")
    init_state = copy.deepcopy(model.state_dict())
    masks = dense_masks(model)
    total = total_entries(model)
    try:
        if rewind_epoch > 0:
            req.train_fn(model, masks, rewind_epoch, start_epoch=0)
        rewind_state = copy.deepcopy(model.state_dict())
        for r in range(1, rounds + 1):
            req.train_fn(model, masks, epochs - rewind_epoch, start_epoch=rewind_epoch)
            masks = magnitude_prune(model, masks, schedule_keep(total, req.keep_total, r / rounds), req.scope)
            load_masked(model, rewind_state, masks)
        start_state = masked_state(model, masks)
    finally:
        model.load_state_dict(init_state)
    return masks, start_state
