"""Controls beyond the paper (STUDY_SPEC section 6), for SP and IP alike.

- :func:`shuffle_masks`: a method's masks with the kept positions drawn again uniformly
  within each layer, per-layer counts unchanged (Frankle et al. 2021, "Pruning neural
  networks at initialization: why are we missing the mark?"). If a method's accuracy
  survives it, its masks carry no more than their layer densities.
- :func:`hold_out`: the training data split into the images a learning-rate control
  trains on and a validation slice it chooses the learning rate on (never the test set);
  :func:`best_scale` makes that choice.
"""
from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from typing import Iterable, Mapping

import torch

from .data import PreparedData
from .masks import Masks, layer_name

#: seeds of the generators below, apart from every other seed of a run
SHUFFLE_SEED = 50_021
HOLD_OUT_SEED = 60_029


def shuffle_masks(masks: Masks, seed: int) -> Masks:
    """``masks`` with the kept entries of each tensor moved to positions drawn uniformly
    without replacement (each tensor keeps its count and shape).

    One generator, seeded by ``seed``, runs over the layers in name order, so SP's weights
    and IP's coefficients of one seed are shuffled by the same rule (a layer's K x K filters
    and their K^2 coefficients have as many entries, so the same flat positions are drawn)."""
    gen = torch.Generator().manual_seed(SHUFFLE_SEED + seed)
    out: Masks = dict.fromkeys(masks)   # the caller's order
    for name in sorted(masks, key=layer_name):
        mask = masks[name]
        kept = int(mask.sum())
        flat = torch.zeros(mask.numel(), dtype=torch.bool)
        flat[torch.randperm(mask.numel(), generator=gen)[:kept]] = True
        out[name] = flat.reshape(mask.shape).to(mask.device)
    return out


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """The images a control trains on and the validation slice held out of them."""
    train: PreparedData          # the prepared data with the validation images removed from its training split
    x_val: torch.Tensor
    y_val: torch.Tensor
    val_index: torch.Tensor      # positions of the validation images in the original training split
    train_index: torch.Tensor    # positions of the images trained on, in their original order

    def val_batches(self, batch_size: int):
        for i in range(0, self.x_val.shape[0], batch_size):
            yield self.x_val[i:i + batch_size], self.y_val[i:i + batch_size]


def hold_out(data: PreparedData, samples: int, seed: int = 0) -> HeldOut:
    """Split the training images of ``data`` into a validation slice of ``samples`` images
    (a fixed random draw) and the rest, which keep their order; the test split, the metric
    slice and every setting stay as they are (the metric slice, used for gradient flow only,
    may hold validation images: nothing is trained or chosen on it)."""
    n = data.x_train.shape[0]
    if not 0 < samples < n:
        raise ValueError(f"validation slice of {samples} images: need between 1 and {n - 1} of the {n} training images")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(HOLD_OUT_SEED + seed))
    val_index = order[:samples].sort().values
    train_index = order[samples:].sort().values
    train = dataclasses.replace(data, x_train=data.x_train[train_index], y_train=data.y_train[train_index])
    return HeldOut(train, data.x_train[val_index], data.y_train[val_index], val_index, train_index)


def best_scale(runs: Iterable[Mapping], by: str = "val_acc") -> dict[tuple[str, str], float]:
    """(method, repr) -> the ``lr_scale`` whose runs have the highest mean ``by`` over seeds
    (the validation accuracy; ties go to the scale closest to 1, then the smaller one).
    Only ``by`` enters the choice: the test accuracy of the runs is never read.  ``runs``:
    rows with ``method``, ``repr``, ``lr_scale`` and ``by``."""
    values: dict[tuple[str, str, float], list[float]] = defaultdict(list)
    for row in runs:
        values[(row["method"], row["repr"], float(row["lr_scale"]))].append(float(row[by]))
    best: dict[tuple[str, str], tuple] = {}
    for (method, repr_, scale), vals in values.items():
        key = (-sum(vals) / len(vals), abs(math.log2(scale)), scale)
        if (method, repr_) not in best or key < best[(method, repr_)]:
            best[(method, repr_)] = key
    return {group: key[2] for group, key in sorted(best.items())}
