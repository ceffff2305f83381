"""Pruning methods for SP and IP: one entry point for masks, one for training-time schedules.

    masks, start_state = find_masks("snip", model, 0.98, batches=batches)
    hook = make_train_hook("rigl", model, masks, enforcer, total_steps=T, sparsity=0.98)

``model`` is already in its representation (plain = SP, ``to_interspace`` = IP); every
score is computed on ``prunable_parameters(model)`` (lambda for interspace convs).  Every
method keeps exactly ``kept_budget(model, sparsity, fb_in_budget)`` entries (``dense``
ignores sparsity; ``gmp`` starts dense and its hook reaches the budget during training).

Methods (``METHODS``; ``method_info(name)`` gives the family, options model and capabilities):

=========  ==========  ===================================================================
dense      baseline    all-ones masks
random     pai         random mask; ``distribution`` 'uniform' (default) or 'erk'
magnitude  pai         largest |theta|
snip       pai         |theta * dL/dtheta|, gradients summed over ``batches``
grasp      pai         remove the largest S = -theta * Hg (temperature on the logits)
synflow    pai         iterative SynFlow on the |.|-linearised network (|F| for IP), data-free
lt         lt          iterative magnitude pruning with rewinding (needs ``train_fn``)
rigl       dst         ERK random start (option ``distribution``); hook: RigL updates
set        dst         ERK random start; hook: SET updates (random regrowth)
gmp        gradual     dense start; hook: cubic-schedule global magnitude pruning
oneshot    pretrained  train dense, prune |theta| once (needs ``train_fn``)
=========  ==========  ===================================================================

``options``: each method's typed options model, the single home of its defaults and allowed
values (``method_info(name).options``; unknown keys are an error): ``RandomOptions``,
``ScoreOptions`` (snip), ``GraspOptions``, ``SynflowOptions``, ``LotteryOptions``,
``DstOptions`` (rigl, set), ``GmpOptions``, ``OneshotOptions``.  A dict is validated
into the model; ``{}`` or None gives the defaults.

Adding a method: a module in this package with one function registered by
:func:`register_method` (and its options model); every module of the package is imported
here, so nothing else changes.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..masks import Masks, kept_budget, restrict_pruning
from .registry import (DISTRIBUTIONS, SCOPES, DenseRun, MethodInfo, MethodOptions, PruneRequest, method_info,
                       option_sections, register_hook, register_method, registered_methods, resolve_options,
                       select_top)
from . import pai, lottery, dst, gradual  # noqa: E402,F401  (registration side effects, in METHODS order)

# further methods: every other module of this package registers its own on import
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in ("registry", "pai", "lottery", "dst", "gradual"):
        importlib.import_module(f"{__name__}.{_module}")

METHODS: tuple[str, ...] = registered_methods()


def find_masks(method: str, model: nn.Module, sparsity: float, *, batches=None,
               loss_fn: Callable = F.cross_entropy, scope: str = "global", distribution: str = "uniform",
               fb_in_budget: bool = False, generator: torch.Generator | None = None,
               train_fn: Callable | None = None, options: MethodOptions | dict | None = None,
               epochs: int | None = None, input_shape: tuple[int, ...] | None = None,
               dense_run: DenseRun | None = None, layers=None, exclude=None) -> tuple[Masks, dict | None]:
    """Masks of ``method`` at ``sparsity`` for ``model`` (SP or IP), and the state to train from.

    - ``batches``: list of (x, y) for data-dependent methods (snip, grasp); synflow only
      reads the input shape from it.
    - ``scope``: 'global' (one ranking over all layers) or 'layer' (equal density per
      layer) for score-based methods (magnitude, snip, grasp, synflow, lt, oneshot).
    - ``distribution``: layer densities of the ``random`` method, 'uniform' or 'erk'
      (other methods ignore it; rigl/set take ``DstOptions.distribution``, default
      'erk', so a pipeline-wide distribution for random pruning cannot turn RigL's
      ERK start into a uniform one).  random/rigl/set ignore ``scope``.
    - ``fb_in_budget``: charge the filter-basis entries to the budget.
    - ``generator``: randomness of random, rigl, set (global RNG if None).
    - ``train_fn(model, masks, start_step=0, keep_step=None)``: trains in place with masks
      enforced, from global step ``start_step`` to the end of the run's schedule, and
      returns a copy of the state dict after step ``keep_step`` (None when not asked);
      required by methods that need training (lt, oneshot), with ``epochs``, the length of
      one training run.
    - ``dense_run``: a finished dense run (:class:`DenseRun`) of the same seed, network and
      schedule, which methods with ``starts_from_dense`` (lt, oneshot) use instead of
      training one; lt needs its state after ``options.rewind_step``.
    - ``input_shape``: (C, H, W) for synflow when no ``batches`` are given.
    - ``options``: the method's options (model instance or dict; see the module docstring).
    - ``layers`` / ``exclude``: the layers to prune / to leave dense (module names, glob
      patterns or a predicate ``f(name, module)``); the budget is over the selected
      layers.  The choice stays on the model (:func:`ip.masks.restrict_pruning`), so the
      enforcer, training hooks and cost reports see the same layers.

    Returns ``(masks, start_state)``: masks keyed by prunable parameter name; start_state
    is None (train from the model's current initialisation) except for lt (rewind
    weights, masked) and oneshot (trained dense weights, masked).  The model is left
    with the weights it came with, on the device it came on.

    Device: scores are computed where the model's parameters live (a model on a GPU is
    scored on it), and masks and start_state are returned on that same device.  Random
    draws are made on the CPU first, so a seeded generator gives the same masks anywhere.
    """
    info = method_info(method)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    opts = resolve_options(method, options)
    if info.needs_data and not batches:
        raise ValueError(f"{method} needs data: pass batches=[(x, y), ...]")
    if info.needs_training and train_fn is None:
        raise ValueError(f"{method} trains the model: pass train_fn(model, masks, start_step, keep_step)")
    if dense_run is not None and not info.starts_from_dense:
        raise ValueError(f"{method} does not start from a dense run; dense_run is for "
                         f"{', '.join(m for m in registered_methods() if method_info(m).starts_from_dense)}")
    if layers is not None or exclude is not None:
        restrict_pruning(model, layers, exclude)
    keep_total = kept_budget(model, sparsity, fb_in_budget) if info.uses_sparsity else None
    request = PruneRequest(sparsity, keep_total, list(batches) if batches else None, loss_fn, scope,
                           distribution, fb_in_budget, generator, train_fn, opts, epochs,
                           tuple(input_shape) if input_shape is not None else None, dense_run)
    device = next(model.parameters()).device
    masks, start_state = info.find(model, request)
    # methods that train (lt, oneshot) hand the model to a train_fn that may leave it on
    # another device: everything returns to the device the model came on
    model.to(device)
    masks = {name: mask.to(device) for name, mask in masks.items()}
    if start_state is not None:
        start_state = {key: value.to(device) if isinstance(value, torch.Tensor) else value
                       for key, value in start_state.items()}
    return masks, start_state


def make_train_hook(method: str, model: nn.Module, masks: Masks, enforcer, *, total_steps: int, sparsity: float,
                    generator: torch.Generator | None = None, options: MethodOptions | dict | None = None,
                    fb_in_budget: bool = False, scope: str = "global",
                    optimizer: torch.optim.Optimizer | None = None):
    """The training-time schedule of ``method`` (rigl, set, gmp), or None for methods without one.

    The hook's ``after_step(step)`` must be called after every optimizer step, step =
    1..total_steps; it changes masks through ``enforcer.set_masks``.  ``state_dict`` /
    ``load_state_dict`` make a resumed run continue identically (masks, RNG state of
    SET, update log); ``current_sparsity()`` is the actual sparsity of the enforcer's masks.

    The hook adopts ``masks`` (``enforcer.set_masks``, which zeroes pruned storage).  To
    resume a run: build enforcer and hook, call ``hook.load_state_dict(saved)`` (restores
    the masks), then load the model and optimizer state.

    rigl requires ``MaskEnforcer(model, masks, keep_dense_grad=True)``.  With
    ``optimizer`` given, the optimizer state (momentum, Adam moments) of entries that
    DST activates is reset to zero.  ``fb_in_budget`` and ``scope`` matter for gmp only
    (its final budget and ranking), and must match those given to find_masks.
    """
    info = method_info(method)
    if info.make_hook is None:
        return None
    if total_steps < 1:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    return info.make_hook(model, masks, enforcer, total_steps=total_steps, sparsity=sparsity, generator=generator,
                          options=resolve_options(method, options), fb_in_budget=fb_in_budget, scope=scope,
                          optimizer=optimizer)


__all__ = ["METHODS", "DenseRun", "MethodInfo", "MethodOptions", "method_info", "option_sections", "register_hook",
           "register_method", "registered_methods", "resolve_options", "find_masks", "make_train_hook", "select_top"]
