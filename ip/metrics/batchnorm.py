"""Batch normalisation during measurement and before evaluation (STUDY_SPEC section 3).

Two BN modes exist for every trainability metric (gradient flow, Hessian spectra, the
Thm 1 checks):

- ``"batch"``: BN in train mode, normalising with the batch statistics of the batches
  being measured: the loss a training step actually sees.  This is the study's
  default (``trainability.bn_mode: batch``), exposed as :data:`DEFAULT_BN_MODE`.
- ``"running"``: BN in eval mode with the running statistics.  At initialisation these
  are (mean 0, variance 1), so BN is the identity and a deep ResNet's activations
  explode (the dense ResNet-20's GF at init is 1e3..1e4 instead of ~10); after a change
  of weights or masks they are stale.  Use it after :func:`recalibrate_bn`.

The old names ``"train"`` and ``"eval"`` are accepted as aliases of ``"batch"`` and
``"running"``.  Measuring never changes the model: :func:`preserved_state` restores
every buffer (running statistics, ``num_batches_tracked``) and every module's
``training`` flag, in place, whatever the measurement did in between (forward passes
in train mode, double backward for Hessian-vector products, an exception).

:func:`recalibrate_bn` is the BN recalibration pass of STUDY_SPEC section 3: running
statistics re-estimated by a no-gradient train-mode pass with cumulative averaging over
fixed training batches, before any eval-mode evaluation of a network whose weights or
masks changed without training updating them.
"""
from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import torch
from torch import nn

BN_MODES = ("batch", "running")
BN_MODE_ALIASES = {"train": "batch", "eval": "running"}
BN_MODE_NAMES = BN_MODES + tuple(BN_MODE_ALIASES)
DEFAULT_BN_MODE = "batch"


def resolve_bn_mode(mode: str) -> str:
    """The canonical name (``"batch"`` or ``"running"``) of a BN mode or its alias."""
    if mode in BN_MODES:
        return mode
    if mode in BN_MODE_ALIASES:
        return BN_MODE_ALIASES[mode]
    raise ValueError(f"bn_mode must be one of {BN_MODE_NAMES}, got {mode!r}")


def batchnorm_modules(model: nn.Module) -> list[nn.modules.batchnorm._NormBase]:
    """Normalisation modules that keep running statistics (BatchNorm*d, SyncBatchNorm, ...)."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats
            and m.running_mean is not None]


@contextlib.contextmanager
def preserved_state(model: nn.Module) -> Iterator[nn.Module]:
    """Restore every buffer and every module's ``training`` flag of ``model`` on exit.

    Buffers are copied back into the same tensors (not rebound), so references held
    elsewhere (an optimiser, a state-dict view) stay valid and see the old values.
    Parameters are not saved: a measurement must not write them.
    """
    flags = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)


@contextlib.contextmanager
def bn_context(model: nn.Module, mode: str = "eval") -> Iterator[nn.Module]:
    """Run ``model`` with BN in ``mode`` and leave no trace.

    ``"batch"`` (alias ``"train"``): the whole model in train mode, BN normalises with
    the statistics of each batch; the running statistics these forwards update are
    restored on exit.  ``"running"`` (alias ``"eval"``): the whole model in eval mode,
    BN uses the running statistics, so the loss is a fixed, per-sample separable
    function of the parameters.  In both modes the buffers and the train/eval flags of
    all modules are as before on exit (see :func:`preserved_state`).

    The default is ``"eval"`` for backward compatibility; the study's default is
    :data:`DEFAULT_BN_MODE`.
    """
    canonical = resolve_bn_mode(mode)
    with preserved_state(model):
        model.train(canonical == "batch")
        yield model


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype | None]:
    for tensor in model.parameters():
        return tensor.device, tensor.dtype
    for tensor in model.buffers():
        return tensor.device, (tensor.dtype if tensor.is_floating_point() else None)
    return torch.device("cpu"), None


def _inputs_of(batch) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise TypeError(f"a batch must be a tensor or an (inputs, targets) pair, got {type(batch).__name__}")


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable, num_batches: int | None = None) -> int:
    """Re-estimate BN running statistics on fixed batches (STUDY_SPEC section 3).

    Running statistics are reset and re-estimated by a no-gradient train-mode pass
    with cumulative averaging (``momentum=None``: after n batches the running mean is
    the plain mean of the n batch means, and likewise the variance), over the first
    ``num_batches`` of ``batches`` (all when None).  A batch is an (inputs, targets)
    pair or an input tensor; inputs go to the model's device (and floating dtype).

    Only the running statistics and ``num_batches_tracked`` of BN modules change: each
    module's momentum and train/eval flag are restored, other buffers and all
    parameters are untouched.  Nothing changes at all when no batch is given (a
    ValueError) or the pass fails.  Returns the number of batches used (0 for a model
    without running statistics, which is left alone).
    """
    if num_batches is not None and num_batches < 1:
        raise ValueError(f"num_batches must be positive or None, got {num_batches}")
    bn_layers = batchnorm_modules(model)
    if not bn_layers:
        return 0
    device, dtype = _model_device_dtype(model)
    flags = [(m, m.training) for m in model.modules()]
    momenta = [(m, m.momentum) for m in bn_layers]
    saved_stats = [(b, b.clone()) for m in bn_layers
                   for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None]
    # non-BN buffers: a train-mode forward must not move them, restoring them makes sure
    bn_buffer_ids = {id(b) for b, _ in saved_stats}
    other_buffers = [(b, b.clone()) for b in model.buffers() if id(b) not in bn_buffer_ids]
    used = 0
    completed = False
    try:
        for batch in batches:
            if num_batches is not None and used >= num_batches:
                break
            x = _inputs_of(batch).to(device)
            if dtype is not None and x.is_floating_point():
                x = x.to(dtype)
            if used == 0:
                # reset only once a batch is at hand, so an empty iterable changes nothing
                for m in bn_layers:
                    m.reset_running_stats()
                    m.momentum = None
                model.train()
            model(x)
            used += 1
        if used == 0:
            raise ValueError("recalibrate_bn needs at least one batch")
        completed = True
    finally:
        for module, flag in flags:
            module.training = flag
        for module, momentum in momenta:
            module.momentum = momentum
        for buffer, saved in other_buffers:
            buffer.copy_(saved)
        if not completed:
            for buffer, saved in saved_stats:
                buffer.copy_(saved)
    return used
