"""Stage `prepare`: load the dataset, take the fixed training subset and the metric slice,
and cache it in data/prepared.pt.

In-memory datasets (Fashion-MNIST, CIFAR) are cached as tensors.  ImageFolder datasets
(Tiny-ImageNet, ImageNet) are cached as their file index (the fixed subsets of it) plus
the metric slice as tensors; training and evaluation stream from the files under
``data.root``."""
from __future__ import annotations

import torch

from ip.data import (STREAMED, DatasetError, ImageFiles, fixed_subset, image_folder_index, image_transform,
                     load_dataset)

from .common import PREPARED, setup


def _metric_indices(n_train: int, p) -> torch.Tensor:
    # the metric slice is a fixed part of the training subset (GF and Hessians are about the training loss)
    g = torch.Generator().manual_seed(p.data.subset_seed + 1)
    return torch.randperm(n_train, generator=g)[: p.data.metric_samples].sort().values


def tensor_blob(p) -> tuple[dict, str]:
    ds = load_dataset(p.data.name, p.data.root)
    idx = fixed_subset(ds.x_train.shape[0], p.data.train_subset, p.data.subset_seed)
    x_train, y_train = ds.x_train[idx].contiguous(), ds.y_train[idx].contiguous()
    t_idx = fixed_subset(ds.x_test.shape[0], p.data.test_subset, p.data.subset_seed + 2)
    x_test, y_test = ds.x_test[t_idx].contiguous(), ds.y_test[t_idx].contiguous()
    m_idx = _metric_indices(x_train.shape[0], p)
    blob = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "x_metric": x_train[m_idx].contiguous(), "y_metric": y_train[m_idx].contiguous(),
            "num_classes": torch.tensor(ds.num_classes),
            "crop_padding": torch.tensor(ds.crop_padding if p.data.augment else 0),
            "hflip": torch.tensor(ds.hflip and p.data.augment), "eval_samples": torch.tensor(p.data.eval_samples)}
    return blob, f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}, metric slice {len(m_idx)}"


def streamed_blob(p) -> tuple[dict, str]:
    index = image_folder_index(p.data.name, p.data.root)
    idx = fixed_subset(len(index.train_files), p.data.train_subset, p.data.subset_seed).tolist()
    t_idx = fixed_subset(len(index.test_files), p.data.test_subset, p.data.subset_seed + 2).tolist()
    train_files, train_labels = [index.train_files[i] for i in idx], [index.train_labels[i] for i in idx]
    m_idx = _metric_indices(len(train_files), p).tolist()
    metric = ImageFiles(index.root, [train_files[i] for i in m_idx], [train_labels[i] for i in m_idx],
                        image_transform(p.data.name, train=False, image_size=p.data.image_size))
    items = [metric[i] for i in range(len(metric))]
    x_metric = torch.stack([x for x, _ in items])
    blob = {"kind": "image_folder", "name": p.data.name, "root": index.root,
            "train_files": train_files, "train_labels": train_labels,
            "test_files": [index.test_files[i] for i in t_idx], "test_labels": [index.test_labels[i] for i in t_idx],
            "x_metric": x_metric, "y_metric": torch.tensor([y for _, y in items], dtype=torch.long),
            "num_classes": len(index.classes), "image_size": int(x_metric.shape[-1]),
            "eval_samples": p.data.eval_samples, "loader_workers": p.data.loader_workers}
    return blob, (f"{len(train_files)} training and {len(t_idx)} test images in {len(index.classes)} classes "
                  f"(streamed from {index.root}), metric slice {tuple(x_metric.shape)}")


def main() -> None:
    p = setup()
    try:
        blob, summary = (streamed_blob if p.data.name in STREAMED else tensor_blob)(p)
    except DatasetError as exc:
        raise SystemExit(f"error: {exc}")
    PREPARED.parent.mkdir(parents=True, exist_ok=True)
    tmp = PREPARED.with_suffix(".tmp")
    torch.save(blob, tmp)
    tmp.replace(PREPARED)
    print(f"prepared {p.data.name}: {summary}")


if __name__ == "__main__":
    main()
