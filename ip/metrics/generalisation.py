"""Loss, accuracy and generalisation gaps (STUDY_SPEC section 3)."""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .gradient_flow import LossFn


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000,
             loss_fn: LossFn = F.cross_entropy) -> tuple[float, float]:
    """(mean loss, top-1 accuracy) of ``model`` on (x, y) in eval mode.

    No augmentation is applied: ``x`` is used as given.  ``loss_fn`` returns a batch
    mean; batches are weighted by their size, so the result is the mean over all
    samples whatever ``batch_size``.  The model's train/eval flags are restored.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{x.shape[0]} inputs but {y.shape[0]} targets")
    return evaluate_batches(model, ((x[i:i + batch_size], y[i:i + batch_size])
                                    for i in range(0, x.shape[0], batch_size)), loss_fn)


@torch.inference_mode()
def evaluate_batches(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                     loss_fn: LossFn = F.cross_entropy) -> tuple[float, float]:
    """:func:`evaluate` over an iterable of (x, y) batches (e.g. streamed from files)."""
    flags = {m: m.training for m in model.modules()}
    model.eval()
    p = next(model.parameters())
    loss_sum, correct, seen = 0.0, 0, 0
    try:
        for xb, yb in batches:
            xb = xb.to(p.device)
            xb = xb.to(p.dtype) if xb.is_floating_point() else xb
            yb = yb.to(p.device)
            out = model(xb)
            loss_sum += float(loss_fn(out, yb)) * yb.shape[0]
            correct += int((out.argmax(dim=1) == yb).sum())
            seen += yb.shape[0]
    finally:
        for m, flag in flags.items():
            m.training = flag
    if seen == 0:
        raise ValueError("cannot evaluate on an empty set")
    return loss_sum / seen, correct / seen


def generalisation_gaps(train_loss: float, train_acc: float, test_loss: float, test_acc: float) -> dict[str, float]:
    """Accuracy gap (train - test) and loss gap (test - train): both positive when overfitting."""
    return {"gap_acc": train_acc - test_acc, "gap_loss": test_loss - train_loss}
