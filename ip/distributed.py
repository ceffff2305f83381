"""Data-parallel training over several processes: torch.distributed and DistributedDataParallel.

One process per rank (``torchrun`` starts them); every rank builds the same model from the
same files, and :class:`ip.train.Trainer` with ``distributed`` on (the default when a process
group of more than one rank is initialised):

- gives each rank a disjoint, contiguous shard of every global batch
  (:func:`shard_batch`).  The global batch and its order are those of a single process
  (the loader is a function of (seed, epoch) only), and DDP averages the gradients of the
  shards, so the update is the single-process update of the global batch -- up to the
  order of floating-point sums, and except for BatchNorm, whose batch statistics are
  those of a rank's shard (as usual with DDP; SyncBatchNorm exists only for GPUs);
- keeps the masks identical on every rank.  At the start rank 0's masks are broadcast.
  RigL grows from the dense gradient of the *global* batch: before a mask update the
  per-rank dense gradients are averaged (:func:`average_dense_grads`), so every rank
  computes the update a single process would.  After every mask change rank 0's masks
  are broadcast (:func:`broadcast_masks`); a rank whose own result differed (it should
  not: its inputs are bitwise those of rank 0) also takes rank 0's parameters, buffers and
  optimiser state (:func:`broadcast_state`), so the ranks cannot drift apart silently;
- runs the per-epoch evaluation, the logging and the checkpoint on rank 0 only, and
  shares the epoch's record with the other ranks.

Backends: gloo for CPU tensors, NCCL for CUDA tensors (both are set up when CUDA is
present, and a collective uses the one of its tensors' device).
"""
from __future__ import annotations

import datetime
import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

TORCHRUN_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


# -- process group ---------------------------------------------------------------------------
def launched_by_torchrun() -> bool:
    """Whether this process is one rank of a ``torchrun`` launch (its environment says so)."""
    return all(k in os.environ for k in TORCHRUN_ENV)


def default_backend() -> str:
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def init_distributed(backend: str | None = None, init_method: str = "env://", rank: int | None = None,
                     world_size: int | None = None, timeout_s: float = 1800.0) -> tuple[int, int]:
    """Join the process group; returns (rank, world size).

    Under torchrun the defaults read everything from the environment; tests pass
    ``init_method='file://...'`` with an explicit ``rank`` and ``world_size``.
    """
    if not dist.is_initialized():
        kwargs = {} if rank is None else {"rank": rank, "world_size": world_size}
        dist.init_process_group(backend or default_backend(), init_method=init_method,
                                timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", dist.get_rank() % torch.cuda.device_count())))
    return dist.get_rank(), dist.get_world_size()


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """A process group of more than one rank is up."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def torchrun_command(nproc: int, module: str, args: list[str]) -> list[str]:
    """``python -m torch.distributed.run`` (torchrun) starting ``nproc`` ranks of ``python -m module args``
    on this machine; ``--standalone`` picks a free rendezvous port, so concurrent launches do not clash."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", module, *args]


# -- data --------------------------------------------------------------------------------------
def shard_batch(x: torch.Tensor, y: torch.Tensor, rank: int, world_size: int,
                device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank ``rank``'s contiguous 1/world_size of a global batch.  Shards must be equal:
    DDP averages per-rank gradients, which equals the global-batch gradient only then."""
    n = x.shape[0]
    if n % world_size:
        raise ValueError(f"a global batch of {n} samples does not split into {world_size} equal shards: "
                         "make the batch size a multiple of the world size")
    per = n // world_size
    xs, ys = x[rank * per:(rank + 1) * per], y[rank * per:(rank + 1) * per]
    if device is not None and xs.device != device:
        xs, ys = xs.to(device, non_blocking=True), ys.to(device, non_blocking=True)
    return xs, ys


def wrap_ddp(model: nn.Module, **kwargs) -> DistributedDataParallel:
    """``model`` in DistributedDataParallel (rank 0's parameters and buffers are broadcast now).

    Parameters shared between modules (a filter basis with ``share='network'``) and
    parametrised weights (interspace convs) are ordinary parameters to DDP: it reduces each
    shared parameter once.  The plain ``model`` stays the one to read and save.
    """
    if not is_distributed():
        raise RuntimeError("wrap_ddp needs an initialised process group of more than one rank")
    device = next(model.parameters()).device
    if device.type == "cuda":
        kwargs.setdefault("device_ids", [device.index])
        kwargs.setdefault("output_device", device.index)
    return DistributedDataParallel(model, **kwargs)


# -- collectives -------------------------------------------------------------------------------
def global_sum(values: list[float]) -> list[float]:
    """Sum of each value over all ranks (float64, so counts stay exact)."""
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def any_rank(flag: bool) -> bool:
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s ``obj`` (any picklable object) on every rank."""
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


@torch.no_grad()
def average_dense_grads(enforcer) -> None:
    """Average the dense gradients a :class:`ip.masks.MaskEnforcer` kept (``keep_dense_grad``)
    over the ranks: each rank saw the gradient of its shard; RigL must grow from the
    gradient of the global batch."""
    names = [n for n in enforcer.masks if n in enforcer.dense_grads]
    if not names:
        return
    grads = [enforcer.dense_grads[n] for n in names]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(dist.get_world_size())
    start = 0
    for n, g in zip(names, grads):
        enforcer.dense_grads[n] = flat[start:start + g.numel()].view_as(g).clone()
        start += g.numel()


@torch.no_grad()
def broadcast_masks(enforcer, src: int = 0) -> bool:
    """Make every rank's masks rank ``src``'s; returns whether this rank's masks differed.

    All masks travel as one uint8 tensor (gloo does not broadcast bool tensors)."""
    names = list(enforcer.masks)
    if not names:
        return False
    local = [enforcer.masks[n] for n in names]
    flat = torch.cat([m.reshape(-1).to(torch.uint8) for m in local])
    mine = flat.clone()
    dist.broadcast(flat, src=src)
    differed = not torch.equal(flat, mine)
    if differed:
        new, start = {}, 0
        for n, m in zip(names, local):
            new[n] = flat[start:start + m.numel()].view(m.shape).to(torch.bool)
            start += m.numel()
        enforcer.set_masks(new)
    return differed


@torch.no_grad()
def broadcast_state(model: nn.Module, optimizer: torch.optim.Optimizer | None = None, src: int = 0) -> None:
    """Rank ``src``'s parameters, buffers and optimiser state tensors on every rank."""
    for p in model.parameters():
        dist.broadcast(p.data, src=src)
    for b in model.buffers():
        dist.broadcast(b, src=src)
    if optimizer is None:
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for key in sorted(state):
                if isinstance(state[key], torch.Tensor) and state[key].dim() > 0:
                    dist.broadcast(state[key], src=src)
