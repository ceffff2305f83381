"""Loaders: the training-batch interface (:class:`TrainLoader`), a tensor loader with
augmentation (:class:`TensorLoader`) and a streaming one over files (:class:`StreamingLoader`),
both shardable for data-parallel runs, and helpers for fixed subsets and batches."""
from __future__ import annotations

from typing import Iterator, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

Batch = tuple[torch.Tensor, torch.Tensor]


@runtime_checkable
class TrainLoader(Protocol):
    """Shuffled training mini-batches; an epoch's batches are a function of (seed, epoch) only.

    ``shard(rank, world_size)`` is the loader of one rank of a data-parallel run: every rank
    walks the same global batches in the same order and gets its contiguous
    1/world_size of each, so the ranks together see exactly what one process sees.
    """
    batch_size: int   # of a global batch, whether the loader is a shard or not

    def __len__(self) -> int: ...

    def epoch(self, epoch: int) -> Iterator[Batch]: ...

    def shard(self, rank: int, world_size: int) -> "TrainLoader": ...


def _check_shardable(n_samples: int, batch_size: int, drop_last: bool, world_size: int) -> None:
    """Every global batch, the last one included, must split into equal shards: DDP averages
    the per-rank gradients, which equals the global batch's gradient only then."""
    if batch_size % world_size:
        raise ValueError(f"batch size {batch_size} is not a multiple of the world size {world_size}")
    last = n_samples % batch_size
    if not drop_last and last % world_size:
        raise ValueError(f"the last batch of {last} samples does not split into {world_size} equal shards: "
                         "drop it (drop_last) or make the sample count fit")


def _rank_part(batch_size: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s contiguous part of a global batch of ``batch_size`` samples."""
    per = batch_size // world_size
    return slice(rank * per, (rank + 1) * per)


class StreamingLoader:
    """Mini-batches streamed from files by torch's DataLoader, with the interface of
    :class:`TensorLoader`: the order and the augmentation of an epoch are a function of
    (seed, epoch) only, whatever the number of ``workers``, so a resumed run sees the
    same batches.

    Data-parallel training: :meth:`shard` gives rank ``rank``'s loader, which reads only
    its contiguous 1/world_size of every global batch (the files of the other ranks' parts
    are never opened).
    """

    def __init__(self, dataset: torch.utils.data.Dataset, batch_size: int, seed: int, workers: int = 4,
                 drop_last: bool = True, rank: int = 0, world_size: int = 1):
        _check_shardable(len(dataset), batch_size, drop_last, world_size)
        self.dataset, self.batch_size, self.seed, self.workers = dataset, batch_size, seed, workers
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size

    def shard(self, rank: int, world_size: int) -> "StreamingLoader":
        return StreamingLoader(self.dataset, self.batch_size, self.seed, self.workers, self.drop_last, rank,
                               world_size)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.dataset), generator=g).tolist()
        batches = [order[i * self.batch_size:(i + 1) * self.batch_size] for i in range(len(self))]
        if self.world_size > 1:
            batches = [b[_rank_part(len(b), self.rank, self.world_size)] for b in batches]
        samples = _SeededSamples(self.dataset, int(torch.randint(1 << 62, (1,), generator=g)))
        yield from torch.utils.data.DataLoader(samples, batch_sampler=batches, num_workers=self.workers,
                                               generator=g, pin_memory=torch.cuda.is_available())


class _SeededSamples(torch.utils.data.Dataset):
    """Sample ``i`` drawn with the torch RNG seeded by (epoch seed, i): the augmentation of a
    sample does not depend on which worker process reads it, nor on the caller's RNG (which
    is left as it was)."""

    def __init__(self, dataset: torch.utils.data.Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed + 0x9E3779B97F4A7C15 * (i + 1)) % (1 << 63))
            return self.dataset[i]


def stream_batches(dataset: torch.utils.data.Dataset, batch_size: int, workers: int = 4
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The dataset in order, in batches (evaluation)."""
    yield from torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)


def augment(x: torch.Tensor, generator: torch.Generator, crop_padding: int, hflip: bool) -> torch.Tensor:
    """Random crop after zero padding (zero is the mean pixel in normalised space) and random
    horizontal flip, applied to a batch of tensors."""
    n, _, h, w = x.shape
    if crop_padding > 0:
        p = crop_padding
        padded = F.pad(x, (p, p, p, p))
        dx = torch.randint(0, 2 * p + 1, (n,), generator=generator)
        dy = torch.randint(0, 2 * p + 1, (n,), generator=generator)
        rows = (dy[:, None] + torch.arange(h)[None, :])  # (n, h)
        cols = (dx[:, None] + torch.arange(w)[None, :])  # (n, w)
        idx_n = torch.arange(n)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if hflip:
        flip = torch.rand(n, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x.contiguous()


class TensorLoader:
    """Shuffled mini-batches of in-memory tensors; the epoch's order and augmentation are a
    function of (seed, epoch) only, so a resumed run sees exactly the same batches.

    Data-parallel training: :meth:`shard` gives rank ``rank``'s loader, which yields its
    contiguous 1/world_size of every global batch.  The whole global batch is still drawn
    and augmented on every rank, so the augmentation RNG advances exactly as in one
    process and a rank's part is bitwise that part of the single-process batch.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, augment: bool = True,
                 crop_padding: int = 0, hflip: bool = False, drop_last: bool = True, rank: int = 0,
                 world_size: int = 1):
        _check_shardable(x.shape[0], batch_size, drop_last, world_size)
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.seed = seed
        self.augment = augment
        self.crop_padding = crop_padding
        self.hflip = hflip
        self.drop_last = drop_last
        self.rank, self.world_size = rank, world_size

    def shard(self, rank: int, world_size: int) -> "TensorLoader":
        return TensorLoader(self.x, self.y, self.batch_size, self.seed, self.augment, self.crop_padding, self.hflip,
                            self.drop_last, rank, world_size)

    def __len__(self) -> int:
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(self.x.shape[0], generator=g)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            xb, yb = self.x[idx], self.y[idx]
            if self.augment:
                xb = augment(xb, g, self.crop_padding, self.hflip)
            if self.world_size > 1:
                part = _rank_part(yb.shape[0], self.rank, self.world_size)
                xb, yb = xb[part], yb[part]
            yield xb, yb


def fixed_subset(n_total: int, n: int | None, seed: int) -> torch.Tensor:
    """Indices of a fixed random subset (all indices when n is None or >= n_total)."""
    if n is None or n >= n_total:
        return torch.arange(n_total)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n_total, generator=g)[:n].sort().values


def batches_of(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]
