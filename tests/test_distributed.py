"""Data-parallel training (ip.distributed + Trainer): 2 CPU ranks with gloo, spawned with
torch.multiprocessing, against single-process runs of the same global batches.

BatchNorm uses the batch statistics of a rank's shard (SyncBatchNorm is GPU-only), so a
network with BN cannot match a single process exactly.  The comparisons with a single
process therefore use a BN-free network (two interspace convs that share one filter basis,
and a linear layer): there the only difference is the order of floating-point sums (DDP
averages two half-batch gradients instead of taking one mean), and after 12 SGD steps the
weights agree to ATOL + RTOL * |w| below.  A plausible bug (overlapping shards, summed
instead of averaged gradients, a rank training on its own data order) moves weights by
~1e-2.  With BN (ResNet-20) we check what must hold regardless: every rank has bitwise the
same weights and masks.  All scenarios run in one spawn (two processes, one thread each).
"""
from __future__ import annotations

import copy
import os

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from ip import distributed as dist_utils
from ip.data import TensorLoader
from ip.interspace import to_interspace
from ip.models import get_model
from ip.pruning import find_masks, make_train_hook
from ip.train import DivergenceError, TrainConfig, Trainer

WORLD = 2
ATOL, RTOL = 1e-5, 1e-4
DST = {"interval": 2, "alpha": 0.3, "stop_fraction": 0.9}
HOOK_OPTIONS = {"rigl": DST, "set": DST, "gmp": {"start_fraction": 0.1, "end_fraction": 0.8, "interval": 2}}


class TinyConvNet(nn.Module):
    """No BatchNorm, so data-parallel training can match one process; two 3x3 convs for a shared FB."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return self.fc(x.mean((2, 3)))


def _data():
    g = torch.Generator().manual_seed(123)
    return torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g)


def _loader():
    x, y = _data()
    return TensorLoader(x, y, batch_size=16, seed=0, augment=True, crop_padding=1, hflip=True)


def _tiny_ip():
    torch.manual_seed(0)
    model = TinyConvNet()
    model = to_interspace(model, fb_init="dct", share="network")  # one FB shared by both convs
    return model


def _resnet():
    torch.manual_seed(0)
    return get_model("resnet20", num_classes=10, in_channels=1, width=4)


def _hook_factory(method, sparsity, seed_of_rank=None):
    def factory(model, enforcer, total_steps, optimizer):
        seed = 7 if seed_of_rank is None else seed_of_rank
        return make_train_hook(method, model, enforcer.masks, enforcer, total_steps=total_steps, sparsity=sparsity,
                               generator=torch.Generator().manual_seed(seed), options=HOOK_OPTIONS[method],
                               optimizer=optimizer)
    return factory


class MaskLog:
    """Wraps a hook factory; records the masks after every step at which they changed."""

    def __init__(self, factory):
        self.factory = factory
        self.updates: list[tuple[int, dict]] = []

    def __call__(self, model, enforcer, total_steps, optimizer):
        hook = self.factory(model, enforcer, total_steps, optimizer)
        log = self

        class Logged:
            def __getattr__(self, name):
                return getattr(hook, name)

            def after_step(self, step):
                before = enforcer.masks
                hook.after_step(step)
                if enforcer.masks is not before:
                    log.updates.append((step, enforcer.state_dict()))
        return Logged()


def _cfg(**kw):
    # CPU ranks (gloo) even where a GPU is visible: the default device is "auto"
    return TrainConfig(**{"epochs": 3, "batch_size": 16, "lr": 0.05, "momentum": 0.9, "device": "cpu", **kw})


def train_bn_free(distributed: bool, checkpoint=None, end_epoch=None):
    model = _tiny_ip()
    masks, _ = find_masks("random", model, 0.5, generator=torch.Generator().manual_seed(1))
    trainer = Trainer(model, masks, _loader(), _cfg(), checkpoint=checkpoint, distributed=distributed)
    history = trainer.fit(end_epoch=end_epoch)
    return model.state_dict(), trainer.masks, history


def train_rigl_bn_free(distributed: bool):
    model = _tiny_ip()
    masks, _ = find_masks("rigl", model, 0.6, generator=torch.Generator().manual_seed(2))
    log = MaskLog(_hook_factory("rigl", 0.6))
    trainer = Trainer(model, masks, _loader(), _cfg(), hook_factory=log, keep_dense_grad=True,
                      distributed=distributed)
    trainer.fit()
    return model.state_dict(), log.updates, trainer.mask_resyncs


def _worker(rank: int, store: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist_utils.init_distributed("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    results = {}
    try:
        results["bn_free"] = train_bn_free(True)
        results["rigl"] = train_rigl_bn_free(True)

        # ResNet-20 (BN) with GMP: ranks must agree on every mask update and on the weights
        model = _resnet()
        masks, _ = find_masks("gmp", model, 0.8)
        log = MaskLog(_hook_factory("gmp", 0.8))
        trainer = Trainer(model, masks, _loader(), _cfg(epochs=2), hook_factory=log)  # distributed=None: auto
        trainer.fit()
        results["gmp_resnet"] = ({n: p.detach().clone() for n, p in model.named_parameters()}, log.updates,
                                 trainer.mask_resyncs, trainer.distributed)

        # SET seeded differently on each rank: the ranks' own mask updates differ, so every
        # update must be replaced by rank 0's (masks, weights and optimiser state)
        model = _resnet()
        model = to_interspace(model)
        masks, _ = find_masks("set", model, 0.8, generator=torch.Generator().manual_seed(3))
        trainer = Trainer(model, masks, _loader(), _cfg(epochs=2), hook_factory=_hook_factory("set", 0.8, rank))
        trainer.fit()
        momentum = [trainer.optimizer.state[p]["momentum_buffer"].clone() for p in model.parameters()]
        results["set_resync"] = ({n: p.detach().clone() for n, p in model.named_parameters()}, trainer.masks,
                                 trainer.mask_resyncs, momentum)

        # checkpoints: rank 0 writes; a run stopped after epoch 1 resumes on every rank from rank 0's file
        ckpt = f"{out_dir}/ckpt-rank{rank}.pt"
        train_bn_free(True, checkpoint=ckpt, end_epoch=1)
        results["ckpt_written"] = os.path.exists(ckpt)
        results["resumed"] = train_bn_free(True, checkpoint=f"{out_dir}/ckpt-rank0.pt" if rank == 0 else ckpt)

        # divergence: every rank stops at the same step with the same message
        model = _tiny_ip()
        trainer = Trainer(model, find_masks("dense", model, 0.0)[0], _loader(), _cfg(lr=1e6, weight_decay=0.0))
        try:
            trainer.fit()
            results["diverged"] = None
        except DivergenceError as exc:
            results["diverged"] = str(exc)
    finally:
        torch.save(results, f"{out_dir}/rank{rank}.pt")
        dist_utils.teardown()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(str(out / "store"), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _max_gap(a: dict, b: dict) -> float:
    return max(float(((a[n] - b[n]).abs() - RTOL * b[n].abs()).max()) for n in a)


def test_ddp_matches_single_process_on_bn_free_interspace_net(ranks):
    single_state, single_masks, single_history = train_bn_free(distributed=False)
    for r in ranks:
        state, masks, history = r["bn_free"]
        assert set(state) == set(single_state)  # plain keys: DDP's "module." prefix never reaches outputs
        assert _max_gap(state, single_state) <= ATOL
        assert all(torch.equal(masks[n], single_masks[n]) for n in masks)
        for rec, ref in zip(history, single_history):  # running metrics are over the global batch
            assert rec["train_acc_running"] == ref["train_acc_running"]
            assert rec["train_loss_running"] == pytest.approx(ref["train_loss_running"], rel=1e-5)
    # the two convs' shared filter basis was trained (DDP reduced its gradient once) and stayed shared
    fb = [n for n in single_state if n.endswith("basis")]
    assert fb and not torch.allclose(ranks[0]["bn_free"][0][fb[0]], _tiny_ip().state_dict()[fb[0]])
    # same weights bitwise on both ranks
    assert all(torch.equal(ranks[0]["bn_free"][0][n], ranks[1]["bn_free"][0][n]) for n in single_state)


def test_rigl_grows_from_the_global_batch_gradient(ranks):
    single_state, single_updates, _ = train_rigl_bn_free(distributed=False)
    assert len(single_updates) >= 4
    for r in ranks:
        state, updates, resyncs = r["rigl"]
        assert resyncs == 0  # ranks computed identical updates by themselves
        assert [s for s, _ in updates] == [s for s, _ in single_updates]
        for (_, masks), (_, ref) in zip(updates, single_updates):
            assert all(torch.equal(masks[n], ref[n]) for n in ref)
        assert _max_gap(state, single_state) <= ATOL


def test_gmp_on_resnet_keeps_masks_and_weights_identical_across_ranks(ranks):
    (w0, up0, resync0, auto0), (w1, up1, resync1, auto1) = (r["gmp_resnet"] for r in ranks)
    assert auto0 and auto1  # Trainer found the process group by itself
    assert len(up0) >= 3 and [s for s, _ in up0] == [s for s, _ in up1]
    for (_, m0), (_, m1) in zip(up0, up1):
        assert all(torch.equal(m0[n], m1[n]) for n in m0)
    final = up0[-1][1]
    kept = sum(int(m.sum()) for m in final.values())
    total = sum(m.numel() for m in final.values())
    assert kept == round(0.2 * total)
    assert all(torch.equal(w0[n], w1[n]) for n in w0)
    assert resync0 == resync1 == 0


def test_rank_dependent_mask_updates_are_replaced_by_rank_zero(ranks):
    (w0, m0, n0, mom0), (w1, m1, n1, mom1) = (r["set_resync"] for r in ranks)
    assert n0 == n1 >= 2  # every SET update differed across ranks and was resynchronised
    assert all(torch.equal(m0[n], m1[n]) for n in m0)
    assert all(torch.equal(w0[n], w1[n]) for n in w0)
    assert all(torch.equal(a, b) for a, b in zip(mom0, mom1))


def test_only_rank_zero_checkpoints_and_resume_is_exact(ranks):
    assert ranks[0]["ckpt_written"] and not ranks[1]["ckpt_written"]
    for r in ranks:
        resumed, uninterrupted = r["resumed"], r["bn_free"]
        assert all(torch.equal(resumed[0][n], uninterrupted[0][n]) for n in uninterrupted[0])
        assert resumed[2] == uninterrupted[2]


def test_divergence_stops_every_rank_at_the_same_step(ranks):
    messages = [r["diverged"] for r in ranks]
    assert messages[0] is not None and messages[0] == messages[1]
    assert "non-finite loss" in messages[0] and "epoch 1, step" in messages[0]


def test_shard_batch_splits_a_global_batch_into_disjoint_equal_parts():
    x = torch.arange(12).view(12, 1).float()
    y = torch.arange(12)
    shards = [dist_utils.shard_batch(x, y, r, 3) for r in range(3)]
    assert torch.equal(torch.cat([s[1] for s in shards]), y)
    assert all(s[0].shape[0] == 4 for s in shards)
    with pytest.raises(ValueError, match="multiple of the world size"):
        dist_utils.shard_batch(x, y, 0, 5)


def test_single_process_is_untouched_without_a_process_group():
    assert not dist_utils.is_distributed()
    trainer = Trainer(_tiny_ip(), {}, _loader(), _cfg(epochs=1))
    assert not trainer.distributed and trainer.train_module is trainer.model
    with pytest.raises(RuntimeError, match="process group"):
        dist_utils.wrap_ddp(copy.deepcopy(trainer.model))
    with pytest.raises(RuntimeError, match="process group"):
        Trainer(_tiny_ip(), {}, _loader(), _cfg(epochs=1), distributed=True)
