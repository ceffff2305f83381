"""Datasets as in-memory tensors, and a tensor loader with augmentation.

Small datasets (Fashion-MNIST, CIFAR) are held as float tensors and augmented on tensors,
so they pay no DataLoader overhead.  ImageFolder datasets (Tiny-ImageNet, ImageNet) are
indexed (:func:`image_folder_index`) and stream from their files through torch's
DataLoader (:class:`StreamingLoader`, :func:`stream_batches`).

What a run needs from its data is declared by two protocols: :class:`RunData` (what
:class:`PreparedData` and :class:`StreamedData` provide to a run) and :class:`TrainLoader`
(what :class:`TensorLoader` and :class:`StreamingLoader` provide to the trainer, data-parallel
sharding included).
"""
from __future__ import annotations

import dataclasses

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from .files import RunFileError, load_file

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


# ------------------------------------------------------------------ interfaces

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


@runtime_checkable
class RunData(Protocol):
    """What a run needs from its dataset, whether held in memory or streamed from files."""
    num_classes: int
    eval_samples: int   # size of the per-epoch evaluation slices

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    def train_loader(self, batch_size: int, seed: int, augment: bool = True) -> TrainLoader: ...

    def eval_batches(self, split: str, n: int | None = None, batch_size: int = ...) -> Iterable[Batch]: ...

    def sample_train(self, n: int, generator: torch.Generator) -> Batch: ...

    def metric_batches(self, batch_size: int = 256) -> Iterable[Batch]: ...

    def astype(self, dtype: torch.dtype) -> "RunData": ...


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
STREAMED = ("tiny_imagenet", "imagenet")   # see IMAGE_FOLDER_DATASETS below


def register_dataset(name: str):
    def deco(fn):
        _REGISTRY[name] = fn
        return fn
    return deco


def available_datasets() -> list[str]:
    return sorted([*_REGISTRY, *STREAMED])


def load_dataset(name: str, root: str | os.PathLike | None = None) -> TensorDataset:
    if name in STREAMED:
        raise DatasetError(f"{name} is an ImageFolder dataset, streamed from its files: use image_folder_index "
                           "and StreamingLoader, it is not held in memory")
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


# ------------------------------------------------------------------ ImageFolder datasets (streamed)

# image_size: the network's input; resize: the shorter side before the centre crop in evaluation;
# train_crop: "pad" (random crop of a padded image, the small-image recipe) or "random_resized"
# (RandomResizedCrop, the ImageNet recipe).  Normalisation: the ImageNet statistics.
IMAGE_FOLDER_DATASETS = {
    "tiny_imagenet": {"image_size": 64, "resize": 64, "train_crop": "pad", "padding": 8},
    "imagenet": {"image_size": 224, "resize": 256, "train_crop": "random_resized", "padding": 0},
}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp")


@dataclass
class ImageFolderIndex:
    """The files of an ImageFolder dataset: paths relative to ``root`` and class indices."""
    root: str
    classes: list[str]
    train_files: list[str]
    train_labels: list[int]
    test_files: list[str]
    test_labels: list[int]


def _images_under(directory: Path) -> list[Path]:
    return sorted(f for f in directory.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())


def image_folder_index(name: str, root: str | os.PathLike) -> ImageFolderIndex:
    """List ``root/train/<class>/...`` and the validation split used as test set:
    ``root/val/<class>/...``, or Tiny-ImageNet's own layout (``val/images`` with
    ``val/val_annotations.txt``).  A missing or empty split is a :class:`DatasetError`."""
    if name not in IMAGE_FOLDER_DATASETS:
        raise ValueError(f"unknown ImageFolder dataset {name!r}; available: {', '.join(IMAGE_FOLDER_DATASETS)}")
    root = Path(root)
    how = (f"point data.root at a folder with train/ and val/ subfolders of class directories "
           f"({name}: see docs/scaling.md)")
    train_dir, val_dir = root / "train", root / "val"
    if not train_dir.is_dir() or not val_dir.is_dir():
        raise DatasetError(f"{name}: {train_dir} or {val_dir} not found: {how}")
    classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir())
    if not classes:
        raise DatasetError(f"{name}: no class directories in {train_dir}: {how}")
    index = {c: i for i, c in enumerate(classes)}
    train_files, train_labels = [], []
    for c in classes:
        files = _images_under(train_dir / c)
        train_files += [str(f.relative_to(root)) for f in files]
        train_labels += [index[c]] * len(files)
    annotations = val_dir / "val_annotations.txt"
    test_files, test_labels = [], []
    if annotations.exists():
        for line_no, line in enumerate(annotations.read_text().splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2 or fields[1] not in index:
                raise DatasetError(f"{annotations}:{line_no}: expected '<file>\\t<class of train/>', "
                                   f"got {line[:80]!r}")
            test_files.append(str((val_dir / "images" / fields[0]).relative_to(root)))
            test_labels.append(index[fields[1]])
    else:
        for d in sorted(x for x in val_dir.iterdir() if x.is_dir()):
            if d.name not in index:
                raise DatasetError(f"{name}: validation class {d.name!r} has no training directory in {train_dir}")
            files = _images_under(d)
            test_files += [str(f.relative_to(root)) for f in files]
            test_labels += [index[d.name]] * len(files)
    if not train_files or not test_files:
        raise DatasetError(f"{name}: no images found in {train_dir if not train_files else val_dir}: {how}")
    return ImageFolderIndex(str(root), classes, train_files, train_labels, test_files, test_labels)


def image_transform(name: str, train: bool, augment: bool = True, image_size: int | None = None):
    """torchvision transform of an ImageFolder dataset: the training recipe (``train`` and
    ``augment``) or the evaluation one (resize, centre crop), both normalised."""
    from torchvision import transforms as T
    spec = IMAGE_FOLDER_DATASETS[name]
    size = image_size or spec["image_size"]
    resize = round(spec["resize"] * size / spec["image_size"])
    norm = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if train and augment:
        if spec["train_crop"] == "random_resized":
            return T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), *norm])
        return T.Compose([T.Resize(size), T.CenterCrop(size), T.RandomCrop(size, padding=spec["padding"]),
                          T.RandomHorizontalFlip(), *norm])
    return T.Compose([T.Resize(resize), T.CenterCrop(size), *norm])


class ImageFiles(torch.utils.data.Dataset):
    """(image, label) pairs read from files on demand; a file that cannot be decoded is a
    :class:`DatasetError` naming it."""

    def __init__(self, root: str | os.PathLike, files: list[str], labels: list[int], transform):
        self.root, self.files, self.labels, self.transform = Path(root), list(files), list(labels), transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from PIL import Image
        path = self.root / self.files[i]
        try:
            with Image.open(path) as img:
                image = img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path} cannot be read as an image ({exc}); restore or remove the file") from exc
        return self.transform(image), self.labels[i]


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


# ------------------------------------------------------------------ a run's data


@dataclass
class PreparedData:
    """A dataset held in memory as tensors (the ``prepare`` stage's cache).

    What a run needs from its data goes through four methods (:class:`RunData`), which
    :class:`StreamedData` provides for datasets streamed from files: ``train_loader``,
    ``eval_batches``, ``sample_train`` and ``metric_batches``.
    """
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_metric: torch.Tensor       # fixed slice of the training data for GF / Hessian
    y_metric: torch.Tensor
    num_classes: int
    crop_padding: int = 0
    hflip: bool = False
    eval_samples: int = 1000     # per-epoch evaluation slices

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def astype(self, dtype: torch.dtype) -> "PreparedData":
        """This data with its images in ``dtype`` (itself when they already are; copies are kept)."""
        if self.x_train.dtype == dtype:
            return self
        copies = self.__dict__.setdefault("_copies", {})
        if dtype not in copies:
            copies[dtype] = dataclasses.replace(self, x_train=self.x_train.to(dtype), x_test=self.x_test.to(dtype),
                                                x_metric=self.x_metric.to(dtype))
        return copies[dtype]

    def metric_batches(self, batch_size: int = 256):
        return batches_of(self.x_metric, self.y_metric, batch_size)

    def train_loader(self, batch_size: int, seed: int, augment: bool = True) -> TensorLoader:
        return TensorLoader(self.x_train, self.y_train, batch_size, seed, augment, self.crop_padding, self.hflip)

    def eval_batches(self, split: str, n: int | None = None, batch_size: int = 1000):
        """The first ``n`` samples (None: all) of ``split`` ('train' or 'test'), unaugmented."""
        x, y = (self.x_train, self.y_train) if split == "train" else (self.x_test, self.y_test)
        return batches_of(x[:n], y[:n], batch_size)

    def sample_train(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` training samples drawn without replacement (unaugmented)."""
        idx = torch.randperm(self.x_train.shape[0], generator=generator)[:n]
        return self.x_train[idx], self.y_train[idx]


@dataclass
class StreamedData:
    """An ImageFolder dataset (Tiny-ImageNet, ImageNet) read from its files while training;
    only the index and the metric slice are cached by the ``prepare`` stage."""
    name: str
    root: str
    train_files: list[str]
    train_labels: list[int]
    test_files: list[str]
    test_labels: list[int]
    x_metric: torch.Tensor
    y_metric: torch.Tensor
    num_classes: int
    image_size: int
    eval_samples: int = 1000
    loader_workers: int = 4

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (3, self.image_size, self.image_size)

    def astype(self, dtype: torch.dtype) -> "StreamedData":
        """Streamed images are decoded as float32: other dtypes are not supported."""
        if dtype != torch.float32:
            raise ValueError(f"{self.name} is streamed from files as float32 images; train.precision: fp64 "
                             "needs an in-memory dataset (fashion_mnist, cifar10, cifar100)")
        return self

    def _files(self, split: str, train_transform: bool, augment: bool = True) -> ImageFiles:
        files, labels = ((self.train_files, self.train_labels) if split == "train" else
                         (self.test_files, self.test_labels))
        return ImageFiles(self.root, files, labels, image_transform(self.name, train_transform, augment,
                                                                    self.image_size))

    def metric_batches(self, batch_size: int = 256):
        return batches_of(self.x_metric, self.y_metric, batch_size)

    def train_loader(self, batch_size: int, seed: int, augment: bool = True) -> StreamingLoader:
        return StreamingLoader(self._files("train", True, augment), batch_size, seed, self.loader_workers)

    def eval_batches(self, split: str, n: int | None = None, batch_size: int = 250):
        ds = self._files(split, False)
        if n is not None and n < len(ds):
            ds = torch.utils.data.Subset(ds, range(n))
        return stream_batches(ds, batch_size, self.loader_workers)

    def sample_train(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randperm(len(self.train_files), generator=generator)[:n].tolist()
        ds = self._files("train", False)
        items = [ds[i] for i in idx]
        return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items], dtype=torch.long)


# ---------------------------------------------------------------------------------------
# the prepare stage's cache

def _metric_indices(n_train: int, subset_seed: int, metric_samples: int) -> torch.Tensor:
    # the metric slice is a fixed part of the training subset (GF and Hessians are about the training loss)
    g = torch.Generator().manual_seed(subset_seed + 1)
    return torch.randperm(n_train, generator=g)[:metric_samples].sort().values


def _tensor_cache(d) -> tuple[dict, str]:
    ds = load_dataset(d.name, d.root)
    idx = fixed_subset(ds.x_train.shape[0], d.train_subset, d.subset_seed)
    x_train, y_train = ds.x_train[idx].contiguous(), ds.y_train[idx].contiguous()
    t_idx = fixed_subset(ds.x_test.shape[0], d.test_subset, d.subset_seed + 2)
    x_test, y_test = ds.x_test[t_idx].contiguous(), ds.y_test[t_idx].contiguous()
    m_idx = _metric_indices(x_train.shape[0], d.subset_seed, d.metric_samples)
    blob = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "x_metric": x_train[m_idx].contiguous(), "y_metric": y_train[m_idx].contiguous(),
            "num_classes": torch.tensor(ds.num_classes),
            "crop_padding": torch.tensor(ds.crop_padding if d.augment else 0),
            "hflip": torch.tensor(ds.hflip and d.augment), "eval_samples": torch.tensor(d.eval_samples)}
    return blob, f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}, metric slice {len(m_idx)}"


def _streamed_cache(d) -> tuple[dict, str]:
    index = image_folder_index(d.name, d.root)
    idx = fixed_subset(len(index.train_files), d.train_subset, d.subset_seed).tolist()
    t_idx = fixed_subset(len(index.test_files), d.test_subset, d.subset_seed + 2).tolist()
    train_files, train_labels = [index.train_files[i] for i in idx], [index.train_labels[i] for i in idx]
    m_idx = _metric_indices(len(train_files), d.subset_seed, d.metric_samples).tolist()
    metric = ImageFiles(index.root, [train_files[i] for i in m_idx], [train_labels[i] for i in m_idx],
                        image_transform(d.name, train=False, image_size=d.image_size))
    items = [metric[i] for i in range(len(metric))]
    x_metric = torch.stack([x for x, _ in items])
    blob = {"kind": "image_folder", "name": d.name, "root": index.root,
            "train_files": train_files, "train_labels": train_labels,
            "test_files": [index.test_files[i] for i in t_idx], "test_labels": [index.test_labels[i] for i in t_idx],
            "x_metric": x_metric, "y_metric": torch.tensor([y for _, y in items], dtype=torch.long),
            "num_classes": len(index.classes), "image_size": int(x_metric.shape[-1]),
            "eval_samples": d.eval_samples, "loader_workers": d.loader_workers}
    return blob, (f"{len(train_files)} training and {len(t_idx)} test images in {len(index.classes)} classes "
                  f"(streamed from {index.root}), metric slice {tuple(x_metric.shape)}")


def prepared_cache(settings) -> tuple[dict, str]:
    """What the ``prepare`` stage caches for a dataset, and a one-line summary of it.

    ``settings`` has the fields of params.yaml's ``data`` section: in-memory datasets
    (Fashion-MNIST, CIFAR) are cached as tensors of the fixed subsets; ImageFolder datasets
    (Tiny-ImageNet, ImageNet) as their file index plus the metric slice as tensors.  The
    metric slice is a fixed part of the training subset (GF and Hessians are about the
    training loss)."""
    return (_streamed_cache if settings.name in STREAMED else _tensor_cache)(settings)


def read_prepared_cache(path: str | os.PathLike) -> "PreparedData | StreamedData":
    """The data a ``prepared_cache`` blob saved at ``path`` describes."""
    blob = load_file(path, "prepared data")
    try:
        if blob.pop("kind", None) == "image_folder":
            return StreamedData(**blob)
        return PreparedData(**{k: (v if not isinstance(v, torch.Tensor) or v.dim() else v.item())
                               for k, v in blob.items()})
    except TypeError as exc:
        raise RunFileError(path, f"prepared data has other fields than this code expects ({exc})") from None
