"""Datasets as in-memory tensors, and a tensor loader with augmentation.

Small datasets (Fashion-MNIST, CIFAR) are held as uint8/float tensors and augmented on
tensors, so they pay no DataLoader overhead.  ImageFolder datasets (Tiny-ImageNet,
ImageNet) stream through torchvision's DataLoader (:func:`image_folder_loader`).
"""
from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# sha256 of the *decompressed* idx files (independent of how the .gz was packed)
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


class DatasetError(RuntimeError):
    """A dataset that is missing or corrupt; the message says how to get it."""


@dataclass
class TensorDataset:
    """Images (N, C, H, W) float32, normalised; labels (N,) int64."""
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    hflip: bool  # whether horizontal flips are a valid augmentation
    crop_padding: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])


_REGISTRY: dict[str, Callable[..., TensorDataset]] = {}
STREAMED = ("tiny_imagenet", "imagenet")


def register_dataset(name: str):
    def deco(fn):
        _REGISTRY[name] = fn
        return fn
    return deco


def available_datasets() -> list[str]:
    return sorted([*_REGISTRY, *STREAMED])


def load_dataset(name: str, root: str | os.PathLike | None = None) -> TensorDataset:
    if name in STREAMED:
        raise DatasetError(f"{name} is an ImageFolder dataset: use image_folder_loader(root/'train'), "
                           "it is not held in memory")
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(available_datasets())}")
    return _REGISTRY[name](root)


def _read_idx(path: Path, expected_sha256: str | None) -> torch.Tensor:
    try:
        raw = gzip.open(path, "rb").read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path} is not a readable gzip file ({exc}); reinstall the dataset") from exc
    if expected_sha256 is not None and hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise DatasetError(f"{path} fails its checksum (sha256 of the decompressed file); "
                           "the file is corrupt or not the official release: reinstall it")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8)
    return data.reshape(dims)


def _find_fashion_mnist(root) -> Path:
    # an explicit root is the only place looked at: falling back elsewhere would hide a typo
    if root:
        candidates = [Path(root)]
    else:
        candidates = [Path(os.environ["IP_DATA_ROOT"]) / "fashion-mnist"] if os.environ.get("IP_DATA_ROOT") else []
        candidates.append(DEBIAN_FASHION_MNIST)
    for c in candidates:
        if all((c / f).exists() for f in FASHION_MNIST_FILES):
            return c
    raise DatasetError(
        "Fashion-MNIST not found in " + ", ".join(map(str, candidates))
        + ": install Debian's package (apt-get install dataset-fashion-mnist) or put the four idx .gz files "
        "in data.root")


@register_dataset("fashion_mnist")
def fashion_mnist(root=None, verify: bool = True) -> TensorDataset:
    base = _find_fashion_mnist(root)
    parts = {f: _read_idx(base / f, sha if verify else None) for f, sha in FASHION_MNIST_FILES.items()}
    mean, std = (0.2860,), (0.3530,)
    def norm(x):
        return ((x.float() / 255.0).unsqueeze(1) - mean[0]) / std[0]
    return TensorDataset(norm(parts["train-images-idx3-ubyte.gz"]), parts["train-labels-idx1-ubyte.gz"].long(),
                         norm(parts["t10k-images-idx3-ubyte.gz"]), parts["t10k-labels-idx1-ubyte.gz"].long(),
                         10, mean, std, hflip=True, crop_padding=2)


def _torchvision_cifar(cls_name: str, num_classes: int, root) -> TensorDataset:
    import torchvision
    root = Path(root or os.environ.get("IP_DATA_ROOT", "data/raw"))
    cls = getattr(torchvision.datasets, cls_name)
    try:
        train = cls(root, train=True, download=False)
        test = cls(root, train=False, download=False)
    except RuntimeError:
        try:
            train = cls(root, train=True, download=True)
            test = cls(root, train=False, download=True)
        except Exception as exc:  # noqa: BLE001 - no network or a broken archive: same advice
            raise DatasetError(f"{cls_name} not found under {root} and could not be downloaded ({type(exc).__name__}); "
                               f"put torchvision's {cls_name} files under data.root") from exc
    mean = (0.4914, 0.4822, 0.4465) if num_classes == 10 else (0.5071, 0.4865, 0.4409)
    std = (0.2470, 0.2435, 0.2616) if num_classes == 10 else (0.2673, 0.2564, 0.2762)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    def conv(ds):
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float() / 255.0
        return (x - m) / s, torch.tensor(ds.targets, dtype=torch.long)
    xtr, ytr = conv(train)
    xte, yte = conv(test)
    return TensorDataset(xtr, ytr, xte, yte, num_classes, mean, std, hflip=True, crop_padding=4)


register_dataset("cifar10")(lambda root=None: _torchvision_cifar("CIFAR10", 10, root))
register_dataset("cifar100")(lambda root=None: _torchvision_cifar("CIFAR100", 100, root))


def image_folder_loader(directory, batch_size: int, train: bool, workers: int = 8, image_size: int = 224,
                        sampler=None):
    """Streaming loader for Tiny-ImageNet/ImageNet ImageFolder directories."""
    import torchvision
    from torchvision import transforms as T
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"ImageFolder directory {directory} not found: point data.root at a folder with "
                           "train/ and val/ subfolders of class directories")
    norm = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    tf = (T.Compose([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(), T.ToTensor(), norm]) if train else
          T.Compose([T.Resize(int(image_size * 8 / 7)), T.CenterCrop(image_size), T.ToTensor(), norm]))
    ds = torchvision.datasets.ImageFolder(str(directory), tf)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=train and sampler is None,
                                       sampler=sampler, num_workers=workers, pin_memory=True, drop_last=train)


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
    function of (seed, epoch) only, so a resumed run sees exactly the same batches."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, augment: bool = True,
                 crop_padding: int = 0, hflip: bool = False, drop_last: bool = True):
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.seed = seed
        self.augment = augment
        self.crop_padding = crop_padding
        self.hflip = hflip
        self.drop_last = drop_last

    def __len__(self) -> int:
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(self.x.shape[0], generator=g)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            xb = self.x[idx]
            if self.augment:
                xb = augment(xb, g, self.crop_padding, self.hflip)
            yield xb, self.y[idx]


def fixed_subset(n_total: int, n: int | None, seed: int) -> torch.Tensor:
    """Indices of a fixed random subset (all indices when n is None or >= n_total)."""
    if n is None or n >= n_total:
        return torch.arange(n_total)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n_total, generator=g)[:n].sort().values


def batches_of(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]
