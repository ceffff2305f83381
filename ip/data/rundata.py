"""A run's data: what a run needs from its dataset (:class:`RunData`), held in memory
(:class:`PreparedData`) or streamed from files (:class:`StreamedData`), and the ``prepare``
stage's cache of either."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Iterable, Protocol, runtime_checkable

import torch

from ..files import RunFileError, load_file
from .datasets import STREAMED, ImageFiles, image_folder_index, image_transform, load_dataset
from .loaders import Batch, StreamingLoader, TensorLoader, TrainLoader, batches_of, fixed_subset, stream_batches


@runtime_checkable
class RunData(Protocol):
    """What a run needs from its dataset, whether held in memory or streamed from files."""
    num_classes: int
    eval_samples: int   # size of the per-epoch evaluation slices
    train_eval_samples: int | None   # the final training-set metrics use this many training images (None: all)

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    def train_loader(self, batch_size: int, seed: int, augment: bool = True) -> TrainLoader: ...

    def eval_batches(self, split: str, n: int | None = None, batch_size: int = ...) -> Iterable[Batch]: ...

    def sample_train(self, n: int, generator: torch.Generator) -> Batch: ...

    def metric_batches(self, batch_size: int = 256) -> Iterable[Batch]: ...

    def astype(self, dtype: torch.dtype) -> "RunData": ...


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
    train_eval_samples: int | None = None   # final train metrics on this many training images (None: all)

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
    train_eval_samples: int | None = None

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
            "hflip": torch.tensor(ds.hflip and d.augment), "eval_samples": torch.tensor(d.eval_samples),
            "train_eval_samples": d.train_eval_samples}
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
            "eval_samples": d.eval_samples, "loader_workers": d.loader_workers,
            "train_eval_samples": d.train_eval_samples}
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
