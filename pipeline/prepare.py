"""Stage `prepare`: load the dataset, take the fixed training subset and the metric slice,
and cache it in data/prepared.pt.

In-memory datasets (Fashion-MNIST, CIFAR) are cached as tensors.  ImageFolder datasets
(Tiny-ImageNet, ImageNet) are cached as their file index (the fixed subsets of it) plus
the metric slice as tensors; training and evaluation stream from the files under
``data.root``."""
from __future__ import annotations

import torch

from ip.data import DatasetError, prepared_cache

from .common import PREPARED, setup, stage


@stage
def main() -> None:
    p = setup()
    try:
        blob, summary = prepared_cache(p.data)
    except DatasetError as exc:
        raise SystemExit(f"error: {exc}")
    PREPARED.parent.mkdir(parents=True, exist_ok=True)
    tmp = PREPARED.with_suffix(".tmp")
    torch.save(blob, tmp)
    tmp.replace(PREPARED)
    print(f"prepared {p.data.name}: {summary}")


if __name__ == "__main__":
    main()
