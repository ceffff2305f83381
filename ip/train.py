"""The training loop: SGD with schedules, masks enforced, DST/GMP hooks, checkpoints, resume.

A run is a pure function of its inputs: the epoch's batch order and augmentation depend
only on (seed, epoch), and a checkpoint holds everything that changes during training
(weights, optimiser and schedule state, masks, hook state), so a killed run resumed from
its last checkpoint ends with exactly the metrics of an uninterrupted run.

With a process group of more than one rank (``torchrun``), the same loop trains data-parallel
(see :mod:`ip.distributed`): each rank takes its shard of every global batch, DDP averages
the gradients, masks stay identical on every rank, and only rank 0 evaluates, logs and
writes checkpoints.  A single process runs exactly the code path it always did.
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Literal, Protocol, get_args

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from . import distributed as dist_utils
from .data import TrainLoader
from .interspace import InterspaceConfig, basis_parameters
from .masks import MaskEnforcer, Masks
from .onednn_guard import guard_convs

Schedule = Literal["cosine", "step", "constant"]
Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "bf16", "fp64"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)


class DivergenceError(RuntimeError):
    """The loss became non-finite; the run stops and records nothing as finished."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (unreadable, or from another run)."""


class TrainConfig(BaseModel):
    """The optimisation schedule of a run (params.yaml's ``train`` section extends it)."""
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    epochs: int = Field(5, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.1, ge=0.0)
    momentum: float = Field(0.9, ge=0.0, le=1.0)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0.0)
    schedule: Schedule = "cosine"
    warmup_epochs: float = Field(0, ge=0)   # a linear warm-up over this many epochs (rounded to steps)
    milestones: list[float] = Field([0.5, 0.75], description="fractions of training (step schedule)")
    gamma: float = Field(0.1, ge=0.0)
    label_smoothing: float = Field(0.0, ge=0.0, le=1.0)
    # BN running statistics are re-estimated on this many fixed training batches before every
    # evaluation (0: never); see ip.metrics.batchnorm.recalibrate_bn and STUDY_SPEC section 3
    bn_recalibration_batches: int = Field(20, ge=0)
    # batch size of every evaluation pass (no gradients); large batches are slower on a CPU
    # (benchmarks/eval_batch_size.py), and the split changes a result only by round-off
    eval_batch_size: int = Field(128, ge=1)
    device: Device = Field("cpu", description="cpu, cuda, or auto (a GPU when there is one)")
    precision: Precision = Field("fp32", description="fp32; bf16 autocast of forward and loss (weights, "
                                                     "gradients and optimizer stay fp32); or fp64 (network and "
                                                     "data in float64: a reference whose round-off stays small)")
    channels_last: bool = Field(False, description="model and input batches in torch.channels_last")
    compile: bool = Field(False, description="run the training step's forward (and so its backward) through "
                          "torch.compile; evaluation and metrics stay eager")


def compile_unavailable(cfg: TrainConfig) -> str | None:
    """Why ``cfg.compile`` cannot work on this machine (None: it can, or compile is off).

    On the CPU, torch.compile's code generator builds C++: it needs a compiler ($CXX, or
    g++, c++ or clang++ on the PATH)."""
    on_cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
    if not cfg.compile or not on_cpu:
        return None
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]
    if any(shutil.which(n) for n in names):
        return None
    return (f"torch.compile on the CPU needs a C++ compiler and none of {', '.join(names)} was found; "
            "install one (Debian: g++) or set train.compile: false")


def resolve_device(name: str) -> torch.device:
    """``TrainConfig.device`` as a torch device ("auto": the current GPU if any, else the CPU)."""
    if name == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here; allowed: cpu, auto")
    return torch.device(name)


def autocast_context(device: torch.device, precision: str):
    """The context the forward pass and the loss run in: bf16 autocast, or nothing for fp32
    and fp64 (then the step is exactly the plain one in the network's own dtype)."""
    if precision in ("fp32", "fp64"):
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ValueError(f"precision must be one of {get_args(Precision)}, got {precision!r}")


def model_dtype(precision: str) -> torch.dtype:
    """The dtype of a network's parameters (and of the data fed to it) under ``precision``."""
    return torch.float64 if precision == "fp64" else torch.float32


class TrainHook(Protocol):
    def after_step(self, step: int) -> None: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


def make_optimizer(model: nn.Module, cfg: TrainConfig, interspace: InterspaceConfig | None = None) -> torch.optim.SGD:
    """SGD; filter bases get lr * fb_lr_scale and their own weight decay (none by default)."""
    interspace = interspace or InterspaceConfig()
    fb_ids = {id(p) for p in basis_parameters(model)}
    fb = [p for p in model.parameters() if id(p) in fb_ids and p.requires_grad]
    rest = [p for p in model.parameters() if id(p) not in fb_ids and p.requires_grad]
    groups = [{"params": rest, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "name": "weights", "lr_scale": 1.0}]
    if fb:
        groups.append({"params": fb, "lr": cfg.lr * interspace.fb_lr_scale, "weight_decay": interspace.fb_weight_decay,
                       "lr_scale": interspace.fb_lr_scale,
                       "name": "filter_bases"})
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


def lr_factor(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Multiplier of the base learning rate at a (0-based) global step."""
    total = cfg.epochs * steps_per_epoch
    warm = int(round(cfg.warmup_epochs * steps_per_epoch))
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "cosine":
        t = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * t))
    factor = 1.0
    for m in cfg.milestones:
        if step >= m * total:
            factor *= cfg.gamma
    return factor


class Trainer:
    """Trains ``model`` with ``masks`` enforced; ``hook`` (DST, GMP) runs after every step.

    ``epoch_end(epoch, model, enforcer) -> dict`` adds metrics to the epoch's record
    (evaluation, gradient flow...); ``log(record)`` receives it (DVCLive in the pipeline).
    ``step_end(step, model)`` runs after every optimisation step (``step``: global, 1-based,
    after the step's hook), e.g. to keep the weights at a lottery ticket's rewind point.
    A run resumed from a checkpoint first passes the restored epochs' records to ``log``,
    so a log opened for this ``fit`` sees every epoch of the run, in order.

    ``loader``: any :class:`ip.data.TrainLoader`; data-parallel, every rank trains on
    ``loader.shard(rank, world_size)``.

    ``distributed``: train data-parallel over the ranks of the process group (None: when one
    of more than one rank is initialised, e.g. under torchrun).  ``model`` stays the plain
    module (checkpoints and outputs have the same keys either way); ``train_module`` is
    what the training step runs through (``model``, or its DDP wrapper).
    """

    def __init__(self, model: nn.Module, masks: Masks, loader: TrainLoader, cfg: TrainConfig,
                 hook_factory: Callable[[nn.Module, MaskEnforcer, int, torch.optim.Optimizer], TrainHook | None] | None = None,
                 keep_dense_grad: bool = False, checkpoint: str | os.PathLike | None = None,
                 epoch_end: Callable[[int, nn.Module, MaskEnforcer], dict] | None = None,
                 log: Callable[[dict], None] | None = None, progress: bool = False, desc: str = "train",
                 distributed: bool | None = None, interspace: InterspaceConfig | None = None,
                 step_end: Callable[[int, nn.Module], None] | None = None):
        self.model = model
        self.cfg = cfg
        self.loader = loader
        self.device = resolve_device(cfg.device)
        model.to(self.device)     # before the enforcer and the optimizer take the parameters
        guard_convs(model)        # a user's own model too (ip.onednn_guard)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        self.enforcer = MaskEnforcer(model, masks, keep_dense_grad=keep_dense_grad)
        self.optimizer = make_optimizer(model, cfg, interspace)
        self.enforcer.attach(self.optimizer)
        self.steps_per_epoch = len(loader)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.hook = hook_factory(model, self.enforcer, self.total_steps, self.optimizer) if hook_factory else None
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.epoch_end = epoch_end
        self.step_end = step_end
        self.log = log
        self.progress = progress
        self.desc = desc
        self.history: list[dict] = []
        self.step_seconds: list[float] = []  # wall time of each optimisation step (this process)
        self.distributed = dist_utils.is_distributed() if distributed is None else distributed
        self.rank = dist_utils.get_rank() if self.distributed else 0
        self.world_size = dist_utils.get_world_size() if self.distributed else 1
        self.mask_resyncs = 0  # mask updates after which a rank had to take rank 0's state (expected: 0)
        self.train_module: nn.Module = model
        if self.distributed:
            if not dist_utils.is_distributed():
                raise RuntimeError("distributed=True needs an initialised process group of more than one rank "
                                   "(ip.distributed.init_distributed, e.g. under torchrun)")
            if loader.batch_size % self.world_size:
                raise ValueError(f"batch size {loader.batch_size} is not a multiple of the world size "
                                 f"{self.world_size}: every rank needs an equal shard of each global batch")
            self.loader = loader.shard(self.rank, self.world_size)   # this rank's part of every global batch
            dist_utils.broadcast_masks(self.enforcer)  # rank 0's masks everywhere, before DDP syncs the weights
            self.train_module = dist_utils.wrap_ddp(model)
        if cfg.compile:
            if (why := compile_unavailable(cfg)) is not None:
                raise RuntimeError(why)
            # parameters and buffers are graph inputs: mask updates, rewinds and checkpoint loads
            # change them in place and need no recompilation
            self.train_module = torch.compile(self.train_module)

    # -- checkpoints -------------------------------------------------------------------------
    def _state(self, epoch: int) -> dict:
        return {"epoch": epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "masks": self.enforcer.state_dict(), "hook": self.hook.state_dict() if self.hook else None,
                "history": self.history, "config": self.cfg.model_dump()}

    def save(self, epoch: int) -> None:
        if self.checkpoint is None or self.rank != 0:
            return
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_suffix(".tmp")
        torch.save(self._state(epoch), tmp)
        os.replace(tmp, self.checkpoint)  # atomic: a kill never leaves a half-written checkpoint

    def _read_checkpoint(self) -> dict | None:
        if self.checkpoint is None or not self.checkpoint.exists():
            return None
        try:
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=False)
            if state.get("config") != self.cfg.model_dump():
                raise CheckpointError(f"checkpoint {self.checkpoint} was written with another training config; "
                                      "delete it to start over")
        except CheckpointError:
            raise
        except Exception as exc:  # noqa: BLE001 - a corrupt file of any kind is reported the same way
            raise CheckpointError(f"checkpoint {self.checkpoint} is unreadable or corrupt "
                                  f"({type(exc).__name__}); delete it to start over") from exc
        return state

    def resume(self) -> int:
        """Load the last checkpoint if there is one; returns the epoch to continue from.

        Distributed: rank 0 reads the file and every rank loads rank 0's copy (so a
        checkpoint need not be on a shared file system, and a bad one fails every rank)."""
        if self.distributed:
            outcome = None
            if self.rank == 0:
                try:
                    outcome = ("ok", self._read_checkpoint())
                except CheckpointError as exc:
                    outcome = ("error", str(exc))
            status, payload = dist_utils.broadcast_object(outcome)
            if status == "error":
                raise CheckpointError(payload)
            state = payload
        else:
            state = self._read_checkpoint()
        if state is None:
            return 0
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.enforcer.set_masks(state["masks"])
            if self.hook is not None and state["hook"] is not None:
                self.hook.load_state_dict(state["hook"])
        except Exception as exc:  # noqa: BLE001 - a corrupt file of any kind is reported the same way
            raise CheckpointError(f"checkpoint {self.checkpoint} is unreadable or corrupt "
                                  f"({type(exc).__name__}); delete it to start over") from exc
        self.history = state["history"]
        return int(state["epoch"])

    # -- training ----------------------------------------------------------------------------
    def fit(self, start_epoch: int = 0, end_epoch: int | None = None, *, start_step: int | None = None) -> list[dict]:
        """Train from the start of ``start_epoch`` (or from global step ``start_step``, which may
        fall inside an epoch: that epoch's earlier batches are skipped) to the end of ``end_epoch``
        (default: the whole schedule); a checkpoint further on is resumed instead."""
        end_epoch = self.cfg.epochs if end_epoch is None else end_epoch
        start_step = start_epoch * self.steps_per_epoch if start_step is None else start_step
        if not 0 <= start_step <= self.total_steps:
            raise ValueError(f"start_step {start_step} is outside the schedule's {self.total_steps} steps")
        resumed = self.resume()
        start_step = max(start_step, resumed * self.steps_per_epoch)
        if resumed and self.log is not None and self.rank == 0:
            for record in self.history:   # the epochs before the checkpoint, trained by an earlier process
                self.log(record)
        bar = None
        if self.progress and self.rank == 0:
            from tqdm.auto import tqdm
            bar = tqdm(total=max(0, end_epoch * self.steps_per_epoch - start_step), desc=self.desc, leave=False,
                       mininterval=10.0, disable=None)  # disable=None: silent when not on a terminal
        self.model.train()
        first_epoch, skip = divmod(start_step, self.steps_per_epoch)
        for epoch in range(first_epoch, end_epoch):
            running, seen, correct = 0.0, 0, 0
            batches = self.loader.epoch(epoch)
            if epoch == first_epoch and skip:
                batches = itertools.islice(batches, skip, None)   # the same batches as a run from step 0
            for i, (xb, yb) in enumerate(batches, start=skip if epoch == first_epoch else 0):
                if xb.device != self.device:
                    xb, yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
                if self.cfg.channels_last and xb.dim() == 4:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                step = epoch * self.steps_per_epoch + i
                factor = lr_factor(step, self.steps_per_epoch, self.cfg)
                for group in self.optimizer.param_groups:
                    scale = group["lr_scale"]
                    group["lr"] = self.cfg.lr * scale * factor
                tic = time.perf_counter()
                with autocast_context(self.device, self.cfg.precision):
                    out = self.train_module(xb)
                    loss = F.cross_entropy(out, yb, label_smoothing=self.cfg.label_smoothing)
                batch_loss, batch_correct, batch_seen = (loss.item() * yb.shape[0], (out.argmax(1) == yb).sum().item(),
                                                         yb.shape[0])
                if self.distributed:  # global batch; every rank sees a divergence at the same step
                    batch_loss, batch_correct, batch_seen = dist_utils.global_sum([batch_loss, batch_correct,
                                                                                   batch_seen])
                if not math.isfinite(batch_loss):
                    raise DivergenceError(f"non-finite loss ({batch_loss / batch_seen}) at epoch {epoch + 1}, "
                                          f"step {i + 1}; lower train.lr or check the data")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                if self.hook is not None:
                    try:
                        self._run_hook(step + 1)
                    except Exception as exc:  # a mask update on non-finite weights fails in its own words
                        self._check_finite_weights(epoch, i)
                        raise
                self.step_seconds.append(time.perf_counter() - tic)
                if self.step_end is not None:
                    self.step_end(step + 1, self.model)
                running += batch_loss
                correct += int(batch_correct)
                seen += int(batch_seen)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{running / seen:.3f}")
            record = {"epoch": epoch + 1, "lr": self.cfg.lr * lr_factor((epoch + 1) * self.steps_per_epoch - 1,
                                                                         self.steps_per_epoch, self.cfg),
                      "train_loss_running": running / max(1, seen), "train_acc_running": correct / max(1, seen)}
            kept = sum(int(m.sum()) for m in self.enforcer.masks.values())
            total = sum(m.numel() for m in self.enforcer.masks.values())
            record["sparsity"] = 1.0 - kept / total if total else 0.0
            # the last step's update can make the weights non-finite with a finite loss: never
            # evaluate or checkpoint such weights
            self._check_finite_weights(epoch, self.steps_per_epoch - 1)
            if self.epoch_end is not None and self.rank == 0:
                record.update(self.epoch_end(epoch + 1, self.model, self.enforcer))
                self.model.train()
            if self.distributed:
                record = dist_utils.broadcast_object(record)  # every rank keeps rank 0's history
            self.history.append(record)
            if self.log is not None and self.rank == 0:
                self.log(record)
            self.save(epoch + 1)
        if bar is not None:
            bar.close()
        return self.history

    def _check_finite_weights(self, epoch: int, i: int) -> None:
        bad = next((n for n, p in self.model.named_parameters() if not torch.isfinite(p).all()), None)
        if bad is not None:
            raise DivergenceError(f"non-finite weights ({bad}) after the update at epoch {epoch + 1}, step {i + 1}; "
                                  "lower train.lr or check the data")

    def _run_hook(self, step: int) -> None:
        if not self.distributed:
            self.hook.after_step(step)
            return
        if self.enforcer.keep_dense_grad and getattr(self.hook, "is_update_step", lambda _: True)(step):
            dist_utils.average_dense_grads(self.enforcer)  # RigL grows from the global batch's gradient
        before = self.enforcer.masks
        self.hook.after_step(step)
        # hooks change masks through enforcer.set_masks, which installs a new dict
        if dist_utils.any_rank(self.enforcer.masks is not before):
            differed = dist_utils.broadcast_masks(self.enforcer)
            if dist_utils.any_rank(differed):
                dist_utils.broadcast_state(self.model, self.optimizer)
                self.mask_resyncs += 1

    @property
    def masks(self) -> Masks:
        return self.enforcer.state_dict()


# ---------------------------------------------------------------------------------------
# checkpoint files named by their run's inputs

def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_file(directory: Path, name: str, identity: dict, inputs: list[Path]) -> Path:
    """``<directory>/<name>-<digest>.pt``, the digest taken over ``identity`` (a run's spec as
    JSON-able data) and the contents of its input files: a checkpoint left by a killed run is
    never resumed after any of them changed."""
    h = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode())
    for path in inputs:
        h.update(_file_digest(path).encode())
    return Path(directory) / f"{name}-{h.hexdigest()[:16]}.pt"


def remove_stale_checkpoints(directory: Path, name: str, keep: Path) -> None:
    """Delete checkpoints of run ``name`` written for other inputs than ``keep``'s."""
    directory = Path(directory)
    for old in [directory / f"{name}.pt", *directory.glob(f"{name}-" + "[0-9a-f]" * 16 + ".pt")]:
        if old != keep and old.exists():
            print(f"{name}: removing checkpoint {old}, written for other inputs")
            old.unlink()
