"""One sparse-training experiment, composed from the library's parts.

``RunSpec`` names everything that defines a run; SP and IP runs of the same seed differ
only in ``repr``: they share the initial weights, the data order, the pruning data, the
budget and the schedule.  The pipeline's stages and the sweep/ablation loops all go
through these functions, so every run of the study is made the same way.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .data import ImageFiles, StreamingLoader, TensorLoader, batches_of, image_transform, stream_batches
from .interspace import to_interspace
from .masks import Masks, cost_report, mask_summary
from .metrics.generalisation import evaluate_batches, generalisation_gaps
from .metrics.gradient_flow import gradient_flow
from .models import get_model
from .pruning import find_masks, make_train_hook, method_info
from .train import TrainConfig, Trainer


@dataclass
class PreparedData:
    """A dataset held in memory as tensors (the ``prepare`` stage's cache).

    What a run needs from its data goes through four methods, which :class:`StreamedData`
    provides for datasets streamed from files: ``train_loader``, ``eval_batches``,
    ``sample_train`` and ``metric_batches``.
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


Data = PreparedData | StreamedData


@dataclass
class RunSpec:
    method: str
    repr: str
    seed: int
    sparsity: float
    model: str = "resnet20"
    width: int | None = None
    fb_init: str = "spatial"
    share: str = "layer"
    fb_in_budget: bool = False
    scope: str = "global"
    distribution: str = "uniform"
    prune_batches: int = 1
    prune_batch_size: int = 256
    prune_options: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune_epochs: int | None = None   # oneshot: epochs of fine-tuning after pruning (None: train.epochs)
    augment: bool = True
    gf_every_epoch: bool = True

    @property
    def run_id(self) -> str:
        return f"{self.method}-{self.repr}-s{self.seed}"


def initial_state(model_name: str, width: int | None, num_classes: int, in_channels: int, seed: int) -> dict:
    """The dense initial weights of a seed (spatial form), shared by SP and IP runs."""
    torch.manual_seed(seed)
    return get_model(model_name, num_classes, in_channels, width).state_dict()


def build_model(spec: RunSpec, init_state: dict, num_classes: int, in_channels: int) -> nn.Module:
    """The network of a run at initialisation: SP is the plain net, IP its interspace form
    (lambda = F^-1 w, so both compute the same function at the start)."""
    model = get_model(spec.model, num_classes, in_channels, spec.width)
    model.load_state_dict(init_state)
    if spec.repr == "ip":
        gen = torch.Generator().manual_seed(10_007 + spec.seed)
        to_interspace(model, fb_init=spec.fb_init, share=spec.share, generator=gen)
    elif spec.repr != "sp":
        raise ValueError(f"repr must be 'sp' or 'ip', got {spec.repr!r}")
    return model


def pruning_batches(spec: RunSpec, data: Data) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Data for data-dependent scores: the same samples for SP and IP of a seed."""
    g = torch.Generator().manual_seed(20_011 + spec.seed)
    x, y = data.sample_train(spec.prune_batches * spec.prune_batch_size, g)
    return batches_of(x, y, spec.prune_batch_size)


def make_loader(spec: RunSpec, data: Data):
    return data.train_loader(spec.train.batch_size, spec.seed, spec.augment)


def hook_factory(spec: RunSpec):
    def factory(model, enforcer, total_steps, optimizer):
        gen = torch.Generator().manual_seed(30_013 + spec.seed)
        return make_train_hook(spec.method, model, enforcer.masks, enforcer, total_steps=total_steps,
                               sparsity=spec.sparsity, generator=gen, options=spec.prune_options,
                               fb_in_budget=spec.fb_in_budget, scope=spec.scope, optimizer=optimizer)
    return factory


def make_train_fn(spec: RunSpec, data: Data, train_cfg: TrainConfig | None = None) -> Callable:
    """``train_fn(model, masks, epochs, start_epoch=0)`` as the lottery-ticket and one-shot
    methods need it: trains in place on the run's data and schedule."""
    cfg = train_cfg or spec.train

    def train_fn(model: nn.Module, masks: Masks, epochs: int, start_epoch: int = 0) -> None:
        trainer = Trainer(model, masks, make_loader(spec, data), cfg)
        trainer.fit(start_epoch=start_epoch, end_epoch=min(cfg.epochs, start_epoch + epochs))
        trainer.enforcer.remove()
        model.to("cpu")   # pruning continues on the CPU, where the masks are found
    return train_fn


def compute_masks(spec: RunSpec, model: nn.Module, data: Data) -> tuple[Masks, dict | None]:
    info = method_info(spec.method)
    gen = torch.Generator().manual_seed(40_009 + spec.seed)
    options = dict(spec.prune_options)
    options.setdefault("epochs", spec.train.epochs)
    options.setdefault("input_shape", data.input_shape)
    return find_masks(spec.method, model, spec.sparsity,
                      batches=pruning_batches(spec, data) if info.needs_data else None,
                      scope=spec.scope, distribution=spec.distribution, fb_in_budget=spec.fb_in_budget,
                      generator=gen, train_fn=make_train_fn(spec, data) if info.needs_training else None,
                      options=options)


def epoch_evaluator(spec: RunSpec, data: Data):
    """Per-epoch record: losses and accuracies on fixed train/test slices, gradient flow."""
    n = data.eval_samples
    batches = data.metric_batches()

    def epoch_end(epoch, model, enforcer):
        train_loss, train_acc = evaluate_batches(model, data.eval_batches("train", n))
        test_loss, test_acc = evaluate_batches(model, data.eval_batches("test", n))
        record = {"train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc,
                  **generalisation_gaps(train_loss, train_acc, test_loss, test_acc)}
        if spec.gf_every_epoch:
            gf = gradient_flow(model, batches, enforcer.masks)
            record.update({"gf": gf["total"], "gf_shared": gf["shared"], "gf_fb": gf["fb"]})
        return record
    return epoch_end


def train_run(spec: RunSpec, model: nn.Module, masks: Masks, data: Data,
              checkpoint: str | Path | None = None, log: Callable[[dict], None] | None = None,
              progress: bool = False) -> tuple[dict, list[dict], Masks]:
    """Train a pruned network and measure it. Returns (final metrics, per-epoch history, final masks)."""
    torch.manual_seed(spec.seed)
    info = method_info(spec.method)
    cfg = spec.train
    if spec.method == "oneshot" and spec.finetune_epochs:
        cfg = replace(cfg, epochs=spec.finetune_epochs)
    trainer = Trainer(model, masks, make_loader(spec, data), cfg,
                      hook_factory=hook_factory(spec) if info.family in ("dst", "gradual") else None,
                      keep_dense_grad=spec.method == "rigl", checkpoint=checkpoint,
                      epoch_end=epoch_evaluator(spec, data), log=log, progress=progress, desc=spec.run_id)
    gf_init = gradient_flow(model, data.metric_batches(), masks)  # after the enforcer zeroed pruned entries
    start = time.perf_counter()
    history = trainer.fit()
    seconds = time.perf_counter() - start
    final_masks = trainer.masks
    trainer.enforcer.remove()
    train_loss, train_acc = evaluate_batches(model, data.eval_batches("train"))
    test_loss, test_acc = evaluate_batches(model, data.eval_batches("test"))
    gf_final = gradient_flow(model, data.metric_batches(), final_masks)
    costs = cost_report(model, final_masks, data.input_shape)
    summary = mask_summary(final_masks)
    metrics = {
        "method": spec.method, "repr": spec.repr, "seed": spec.seed, "sparsity": spec.sparsity,
        "test_acc": test_acc, "train_acc": train_acc, "test_loss": test_loss, "train_loss": train_loss,
        **generalisation_gaps(train_loss, train_acc, test_loss, test_acc),
        "sparsity_actual": costs["sparsity_actual"], "kept_params": costs["kept_params"],
        "fb_overhead_params": costs["fb_overhead_params"], "stored_params": costs["stored_params"],
        "total_params": costs["total_params"], "flops_dense": costs["flops_dense"],
        "flops_sparse": costs["flops_sparse"],
        "gf_init": gf_init["total"], "gf_init_shared": gf_init["shared"], "gf_final": gf_final["total"],
        "gf_final_shared": gf_final["shared"], "collapsed_layers": len(summary.collapsed_layers),
        "epochs": cfg.epochs, "seconds": seconds,
        "step_seconds": float(torch.tensor(trainer.step_seconds).median()) if trainer.step_seconds else float("nan"),
    }
    return metrics, history, final_masks


def run_experiment(spec: RunSpec, init_state: dict, data: Data) -> tuple[dict, list[dict]]:
    """Masks, training and metrics of one run in memory (the sweep and ablation stages)."""
    in_channels = data.input_shape[0]
    model = build_model(spec, init_state, data.num_classes, in_channels)
    masks, start_state = compute_masks(spec, model, data)
    if start_state is not None:
        model.load_state_dict(start_state)
    metrics, history, _ = train_run(spec, model, masks, data)
    return metrics, history


def clone_state(state: dict) -> dict:
    return copy.deepcopy(state)
