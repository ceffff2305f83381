"""Stage `prepare`: load the dataset, take the fixed training subset and the metric slice,
and cache everything as tensors in data/prepared.pt."""
from __future__ import annotations

import torch

from ip.data import DatasetError, fixed_subset, load_dataset

from .common import PREPARED, setup


def main() -> None:
    p = setup()
    try:
        ds = load_dataset(p.data.name, p.data.root)
    except DatasetError as exc:
        raise SystemExit(f"error: {exc}")
    idx = fixed_subset(ds.x_train.shape[0], p.data.train_subset, p.data.subset_seed)
    x_train, y_train = ds.x_train[idx].contiguous(), ds.y_train[idx].contiguous()
    t_idx = fixed_subset(ds.x_test.shape[0], p.data.test_subset, p.data.subset_seed + 2)
    x_test, y_test = ds.x_test[t_idx].contiguous(), ds.y_test[t_idx].contiguous()
    # the metric slice is a fixed part of the training subset (GF and Hessians are about the training loss)
    g = torch.Generator().manual_seed(p.data.subset_seed + 1)
    m_idx = torch.randperm(x_train.shape[0], generator=g)[: p.data.metric_samples].sort().values
    blob = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "x_metric": x_train[m_idx].contiguous(), "y_metric": y_train[m_idx].contiguous(),
            "num_classes": torch.tensor(ds.num_classes), "crop_padding": torch.tensor(ds.crop_padding if p.data.augment else 0),
            "hflip": torch.tensor(ds.hflip and p.data.augment), "eval_samples": torch.tensor(p.data.eval_samples)}
    PREPARED.parent.mkdir(parents=True, exist_ok=True)
    tmp = PREPARED.with_suffix(".tmp")
    torch.save(blob, tmp)
    tmp.replace(PREPARED)
    print(f"prepared {p.data.name}: train {tuple(x_train.shape)}, test {tuple(x_test.shape)}, "
          f"metric slice {len(m_idx)}")


if __name__ == "__main__":
    main()
