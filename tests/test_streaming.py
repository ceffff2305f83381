"""ImageFolder datasets (Tiny-ImageNet, ImageNet) streamed from their files: the index, the
loader's determinism and sharding, bad files, and the prepare/masks/train stages on a small
generated image tree."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ip.data import (DatasetError, ImageFiles, RunData, StreamedData, StreamingLoader, TrainLoader,
                     image_folder_index, image_transform)
from ip.experiment import pruning_batches, RunSpec
from ip.train import TrainConfig, resolve_device
from test_scaling import needs_dvc, project, python, tiny_params

CLASSES = ["n001", "n002", "n003"]


def make_tree(root: Path, tiny_layout: bool = True, per_class: int = 6, val_per_class: int = 2,
              size: int = 16) -> Path:
    """An ImageFolder tree of random RGB images; validation in Tiny-ImageNet's layout
    (val/images + val_annotations.txt) or as class folders."""
    from PIL import Image
    g = torch.Generator().manual_seed(0)

    def save(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(path)

    for c in CLASSES:
        for i in range(per_class):
            save(root / "train" / c / "images" / f"{c}_{i}.JPEG")
    lines = []
    for k, c in enumerate(CLASSES):
        for i in range(val_per_class):
            if tiny_layout:
                save(root / "val" / "images" / f"val_{k}_{i}.JPEG")
                lines.append(f"val_{k}_{i}.JPEG\t{c}\t0\t0\t{size - 1}\t{size - 1}")
            else:
                save(root / "val" / c / f"val_{i}.png")
    if tiny_layout:
        (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("tiny_layout", [True, False], ids=["annotations", "class-folders"])
def test_index_lists_both_splits_with_their_classes(tmp_path, tiny_layout):
    index = image_folder_index("tiny_imagenet", make_tree(tmp_path, tiny_layout))
    assert index.classes == CLASSES
    assert len(index.train_files) == 18 and sorted(set(index.train_labels)) == [0, 1, 2]
    assert len(index.test_files) == 6 and sorted(index.test_labels) == [0, 0, 1, 1, 2, 2]
    for f, y in zip(index.train_files, index.train_labels):
        assert f.split("/")[1] == CLASSES[y]          # train/<class>/...
    assert all((tmp_path / f).is_file() for f in index.test_files)


def test_index_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(DatasetError, match="data.root"):
        image_folder_index("imagenet", tmp_path / "missing")
    root = make_tree(tmp_path / "tree")
    (root / "val" / "val_annotations.txt").write_text("val_0_0.JPEG\tn999\t0\t0\t1\t1\n")
    with pytest.raises(DatasetError, match=r"val_annotations.txt:1"):
        image_folder_index("tiny_imagenet", root)


def test_unreadable_image_is_an_error_naming_the_file(tmp_path):
    root = make_tree(tmp_path)
    index = image_folder_index("tiny_imagenet", root)
    (root / index.train_files[0]).write_bytes(b"not an image")
    ds = ImageFiles(root, index.train_files, index.train_labels, image_transform("tiny_imagenet", False, image_size=16))
    assert ds[1][0].shape == (3, 16, 16)
    with pytest.raises(DatasetError, match=Path(index.train_files[0]).name):
        ds[0]


def _loader(tmp_path, workers=0, batch_size=4, **kw):
    root = make_tree(tmp_path)
    index = image_folder_index("tiny_imagenet", root)
    ds = ImageFiles(root, index.train_files, list(range(len(index.train_files))),  # label = file number
                    image_transform("tiny_imagenet", True, True, 16))
    return StreamingLoader(ds, batch_size, seed=3, workers=workers, **kw)


def _epoch(loader, epoch):
    return [(x.clone(), y.clone()) for x, y in loader.epoch(epoch)]


@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_epoch_is_a_function_of_seed_and_epoch(tmp_path, workers):
    loader = _loader(tmp_path, workers)
    assert len(loader) == 18 // 4
    first, again, other = _epoch(loader, 1), _epoch(loader, 1), _epoch(loader, 2)
    assert len(first) == len(loader) and all(x.shape == (4, 3, 16, 16) for x, _ in first)
    for (x1, y1), (x2, y2) in zip(first, again):
        assert torch.equal(y1, y2) and torch.equal(x1, x2)          # same order, same augmentation
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first, other))
    seen = torch.cat([y for _, y in first])
    assert len(set(seen.tolist())) == len(seen)                     # without replacement
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)                                          # the caller's RNG plays no part ...
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, _epoch(loader, 1)))
    assert torch.equal(torch.rand(3), expected)                     # ... and is left as it was


def test_streaming_augmentation_does_not_depend_on_worker_count(tmp_path):
    one, two = _loader(tmp_path / "a", workers=0), _loader(tmp_path / "b", workers=2)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(_epoch(one, 0), _epoch(two, 0)))


def test_sharded_loaders_split_every_global_batch(tmp_path):
    loader = _loader(tmp_path, batch_size=6)
    whole = _epoch(loader, 0)
    shards = [_epoch(loader.shard(r, 2), 0) for r in range(2)]
    assert all(isinstance(s, TrainLoader) and len(s) == len(loader) for s in (loader.shard(0, 2), loader.shard(1, 2)))
    for i, (_, y) in enumerate(whole):
        assert torch.equal(torch.cat([shards[0][i][1], shards[1][i][1]]), y)
    with pytest.raises(ValueError, match="multiple of the world size"):
        loader.shard(0, 4)


def test_streamed_data_serves_runs_like_tensors(tmp_path):
    root = make_tree(tmp_path)
    index = image_folder_index("tiny_imagenet", root)
    x_metric = torch.zeros(4, 3, 16, 16)
    data = StreamedData("tiny_imagenet", str(root), index.train_files, index.train_labels, index.test_files,
                        index.test_labels, x_metric, torch.zeros(4, dtype=torch.long), 3, 16, eval_samples=4,
                        loader_workers=0)
    assert isinstance(data, RunData) and data.input_shape == (3, 16, 16)
    xs = [x for x, _ in data.eval_batches("test", n=5, batch_size=2)]
    assert [x.shape[0] for x in xs] == [2, 2, 1]
    spec = RunSpec(method="snip", repr="sp", seed=0, sparsity=0.9, prune_batches=2, prune_batch_size=4)
    a, b = pruning_batches(spec, data), pruning_batches(spec, data)
    assert [x.shape[0] for x, _ in a] == [4, 4] and all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, b))


def test_device_names_resolve_on_this_machine():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    assert TrainConfig().device == "cpu"


@needs_dvc
def test_pipeline_stages_stream_an_image_folder_dataset(tmp_path):
    root = make_tree(tmp_path / "tiny-imagenet", per_class=8, size=24)
    params = tiny_params(**{"data.name": "tiny_imagenet", "data.root": str(root), "data.train_subset": 20,
                            "data.test_subset": None, "data.metric_samples": 8, "data.eval_samples": 4,
                            "data.image_size": 16, "data.loader_workers": 0, "train.batch_size": 8,
                            "prune.batch_size": 8, "methods": ["snip"], "reprs": ["ip"]})
    repo = project(tmp_path / "proj", params, commit=False)   # no commit yet: DVCLive must cope with that
    out = python(["pipeline.prepare"], repo).stdout
    assert "20 training and 6 test images in 3 classes" in out
    blob = torch.load(repo / "data" / "prepared.pt", weights_only=True)
    assert blob["kind"] == "image_folder" and len(blob["train_files"]) == 20 and "x_train" not in blob
    assert blob["x_metric"].shape == (8, 3, 16, 16)
    python(["pipeline.init"], repo)
    python(["pipeline.train", "--method", "snip"], repo)
    metrics = json.loads((repo / "results" / "runs" / "snip" / "ip-s0" / "metrics.json").read_text())
    assert metrics["sparsity_actual"] == pytest.approx(0.98, abs=1e-3)
    assert 0.0 <= metrics["test_acc"] <= 1.0 and metrics["epochs"] == 1
    live = json.loads((repo / "results" / "runs" / "snip" / "ip-s0" / "live" / "metrics.json").read_text())
    assert live["test_acc"] == pytest.approx(metrics["test_acc"], abs=0.5)   # last epoch's slice vs full split
