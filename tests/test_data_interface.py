"""The declared data interface: both kinds of run data are RunData, both loaders are
TrainLoaders, and a TensorLoader's shards are exactly the parts of the single-process
batches that ip.distributed.shard_batch cut before (the single-process batches unchanged)."""
from __future__ import annotations

import pytest
import torch

from ip import distributed as dist_utils
from ip.data import (PreparedData, RunData, StreamedData, StreamingLoader, TensorLoader, TrainLoader, augment,
                     batches_of)


def _tensors(n=40, seed=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 6, 6, generator=g), torch.arange(n)   # label = sample number


def _loader(n=40, batch_size=8, **kw):
    x, y = _tensors(n)
    return TensorLoader(x, y, batch_size, seed=7, augment=True, crop_padding=2, hflip=True, **kw)


def _epoch(loader, epoch=1):
    return [(x.clone(), y.clone()) for x, y in loader.epoch(epoch)]


def _single_process_reference(x, y, batch_size, seed, epoch, crop_padding, hflip):
    """The batches of one epoch as the loader has always drawn them (before it could shard)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(x.shape[0], generator=g)
    for i in range(x.shape[0] // batch_size):
        idx = order[i * batch_size:(i + 1) * batch_size]
        yield augment(x[idx], g, crop_padding, hflip), y[idx]


def test_both_kinds_of_run_data_satisfy_the_protocol():
    x, y = _tensors()
    prepared = PreparedData(x, y, x[:10], y[:10], x[:4], y[:4], num_classes=40, crop_padding=2, hflip=True)
    streamed = StreamedData("tiny_imagenet", "/nonexistent", ["a.png"] * 8, [0] * 8, ["b.png"], [0], x[:4], y[:4],
                            num_classes=1, image_size=6, loader_workers=0)
    for data in (prepared, streamed):
        assert isinstance(data, RunData)
        assert isinstance(data.train_loader(4, seed=0), TrainLoader)
    assert prepared.input_shape == (3, 6, 6) and streamed.input_shape == (3, 6, 6)
    assert [len(b[1]) for b in prepared.eval_batches("test", n=7, batch_size=3)] == [3, 3, 1]
    assert [len(b[1]) for b in prepared.metric_batches(batch_size=3)] == [3, 1]
    xs, ys = prepared.sample_train(5, torch.Generator().manual_seed(0))
    assert torch.equal(xs, x[ys]) and len(set(ys.tolist())) == 5
    assert not isinstance(object(), RunData) and not isinstance(batches_of(x, y, 4), TrainLoader)


def test_single_process_batches_are_unchanged():
    x, y = _tensors()
    loader = _loader()
    reference = list(_single_process_reference(x, y, 8, 7, 1, 2, True))
    batches = _epoch(loader)
    assert len(batches) == len(reference) == len(loader) == 5
    for (xb, yb), (xr, yr) in zip(batches, reference):
        assert torch.equal(yb, yr) and torch.equal(xb, xr)
    one = loader.shard(0, 1)   # a world of one rank is the whole loader
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(_epoch(one), batches))


@pytest.mark.parametrize("world_size", [2, 4])
def test_tensor_shards_are_the_parts_shard_batch_cut(world_size):
    loader = _loader()
    whole = _epoch(loader)
    shards = [loader.shard(rank, world_size) for rank in range(world_size)]
    assert all(isinstance(s, TrainLoader) and len(s) == len(loader) and s.batch_size == 8 for s in shards)
    parts = [_epoch(s) for s in shards]
    for i, (xb, yb) in enumerate(whole):
        for rank in range(world_size):
            x_expected, y_expected = dist_utils.shard_batch(xb, yb, rank, world_size)
            assert torch.equal(parts[rank][i][0], x_expected) and torch.equal(parts[rank][i][1], y_expected)
        assert torch.equal(torch.cat([p[i][1] for p in parts]), yb)   # disjoint, and together the batch


def test_shards_must_be_equal():
    with pytest.raises(ValueError, match="multiple of the world size"):
        _loader().shard(0, 3)
    with pytest.raises(ValueError, match="last batch"):
        _loader(n=42, drop_last=False).shard(0, 4)   # 42 = 5 * 8 + 2: the last batch of 2 does not split in 4
    shards = [_loader(n=42, drop_last=False).shard(r, 2) for r in range(2)]
    assert [len(y) for _, y in _epoch(shards[1])] == [4, 4, 4, 4, 4, 1]


def test_streaming_loader_checks_shards_the_same_way():
    dataset = torch.utils.data.TensorDataset(*_tensors(n=42))
    loader = StreamingLoader(dataset, 8, seed=0, workers=0, drop_last=False)
    assert isinstance(loader, TrainLoader)
    with pytest.raises(ValueError, match="last batch"):
        loader.shard(1, 4)
    halves = [_epoch(loader.shard(r, 2)) for r in range(2)]
    for i, (_, y) in enumerate(_epoch(loader)):
        assert torch.equal(torch.cat([halves[0][i][1], halves[1][i][1]]), y)
