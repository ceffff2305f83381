"""One sparse-training experiment, composed from the library's parts.

``RunSpec`` names everything that defines a run; SP and IP runs of the same seed differ
only in ``repr``: they share the initial weights, the data order, the pruning data, the
budget and the schedule.  The pipeline's stages and the sweep/ablation loops all go
through these functions, so every run of the study is made the same way.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .data import PreparedData, RunData, StreamedData, batches_of
from .interspace import InterspaceConfig, to_interspace
from .masks import Masks, cost_report, mask_summary
from .metrics.generalisation import evaluate_batches, generalisation_gaps
from .connectivity import connectivity_report
from .metrics.batchnorm import DEFAULT_BN_MODE, recalibrate_bn, resolve_bn_mode
from .metrics.gradient_flow import gradient_flow
from .models import get_model
from .pruning import DenseRun, MethodOptions, find_masks, make_train_hook, method_info, resolve_options
from .train import TrainConfig, Trainer, model_dtype, resolve_device

Data = RunData   # in memory (PreparedData) or streamed from files (StreamedData)
__all__ = ["REPRS", "Data", "DenseRun", "KeepState", "PreparedData", "StreamedData", "RunSpec", "build_model",
           "compute_masks", "initial_state", "is_timing", "run_data", "run_experiment", "train_run"]


def is_timing(key: str) -> bool:
    """Whether a metrics key is a wall time (``seconds``, ``step_seconds``, ``time_<phase>``):
    it depends on the machine and its load, never on what the run computed."""
    return key in ("seconds", "step_seconds") or key.startswith("time_")


#: the representations: SP; IP with the FB entries as overhead (the paper's accounting);
#: IP with the FB entries charged to its budget, storing exactly as many numbers as SP
REPRS = ("sp", "ip", "ip_eq")


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run.  ``options`` are the method's own (its registered
    options model; a dict or None is validated into it, defaults filled in).  ``repr``:
    one of :data:`REPRS`."""
    method: str
    repr: str
    seed: int
    sparsity: float
    model: str = "resnet20"
    width: int | None = None
    interspace: InterspaceConfig = field(default_factory=InterspaceConfig)
    scope: str = "global"
    distribution: str = "uniform"
    prune_batches: int = 1
    prune_batch_size: int = 256
    options: MethodOptions | dict | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: bool = True
    gf_every_epoch: bool = True
    metric_bn_mode: str = DEFAULT_BN_MODE   # BN while measuring gradient flow: batch | running statistics

    def __post_init__(self):
        if self.repr not in REPRS:
            raise ValueError(f"repr must be one of {REPRS}, got {self.repr!r}")
        object.__setattr__(self, "options", resolve_options(self.method, self.options))

    @property
    def interspace_form(self) -> bool:
        """Whether the network is in its interspace form (IP, under either accounting)."""
        return self.repr != "sp"

    @property
    def fb_in_budget(self) -> bool:
        """Whether the FB entries are charged to the kept budget: always for ``ip_eq`` (it
        stores what SP stores), else as ``interspace.fb_in_budget`` says."""
        return self.repr == "ip_eq" or self.interspace.fb_in_budget

    @property
    def run_id(self) -> str:
        return f"{self.method}-{self.repr}-s{self.seed}"


def initial_state(model_name: str, width: int | None, num_classes: int, in_channels: int, seed: int) -> dict:
    """The dense initial weights of a seed (spatial form), shared by SP and IP runs."""
    torch.manual_seed(seed)
    return get_model(model_name, num_classes, in_channels, width).state_dict()


def build_model(spec: RunSpec, init_state: dict, num_classes: int, in_channels: int) -> nn.Module:
    """The network of a run at initialisation: SP is the plain net, IP its interspace form
    (lambda = F^-1 w, so both compute the same function at the start), in the dtype of the
    run's precision (float64 for fp64: the same initial values, held in double precision)."""
    model = get_model(spec.model, num_classes, in_channels, spec.width)
    model.load_state_dict(init_state)
    if spec.interspace_form:
        gen = torch.Generator().manual_seed(10_007 + spec.seed)
        model = to_interspace(model, fb_init=spec.interspace.fb_init, share=spec.interspace.share, generator=gen,
                              inplace=True)
    return model.to(model_dtype(spec.train.precision))


def run_data(spec: RunSpec, data: Data) -> Data:
    """The run's data in the dtype of its network (a float64 copy for ``precision: fp64``)."""
    return data.astype(model_dtype(spec.train.precision))


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
                               sparsity=spec.sparsity, generator=gen, options=spec.options,
                               fb_in_budget=spec.fb_in_budget, scope=spec.scope, optimizer=optimizer)
    return factory


class KeepState:
    """``step_end`` callback that keeps a copy of the model's state dict after one global step."""

    def __init__(self, step: int | None):
        self.step = step
        self.state: dict | None = None

    def __call__(self, step: int, model: nn.Module) -> None:
        if step == self.step:
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}


def make_train_fn(spec: RunSpec, data: Data, train_cfg: TrainConfig | None = None) -> Callable:
    """``train_fn(model, masks, start_step=0, keep_step=None)`` as the lottery-ticket and
    one-shot methods need it: trains in place on the run's data and schedule, from global
    step ``start_step`` to the end, exactly as a run of the same spec does (a dense one is
    the dense run of that seed), and returns the state after step ``keep_step``."""
    cfg = train_cfg or spec.train

    def train_fn(model: nn.Module, masks: Masks, start_step: int = 0, keep_step: int | None = None) -> dict | None:
        keep = KeepState(keep_step)
        trainer = Trainer(model, masks, make_loader(spec, data), cfg, interspace=spec.interspace, step_end=keep)
        if keep_step is not None and not start_step <= keep_step < trainer.total_steps:
            raise ValueError(f"{spec.method}: step {keep_step} is outside [{start_step}, {trainer.total_steps}), "
                             f"the steps of this training ({cfg.epochs} epochs of {trainer.steps_per_epoch})")
        if keep_step == start_step:
            keep(start_step, model)
        trainer.fit(start_step=start_step)
        trainer.enforcer.remove()
        model.to("cpu")   # pruning continues on the CPU, where the masks are found
        return keep.state
    return train_fn


def compute_masks(spec: RunSpec, model: nn.Module, data: Data,
                  dense_run: DenseRun | None = None) -> tuple[Masks, dict | None]:
    """Masks (and the state to train from) of a run, scored on the training device.

    ``dense_run``: the finished dense run of this seed and representation, for the methods
    that start by training one (lt, oneshot): the same masks as training it again.
    Masks and start_state are returned on the CPU and the model is left there, so what
    follows (saving, the Trainer's own placement) never depends on where scoring ran."""
    info = method_info(spec.method)
    data = run_data(spec, data)
    gen = torch.Generator().manual_seed(40_009 + spec.seed)
    model.to(resolve_device(spec.train.device))
    try:
        masks, start_state = find_masks(
            spec.method, model, spec.sparsity,
            batches=pruning_batches(spec, data) if info.needs_data else None,
            scope=spec.scope, distribution=spec.distribution, fb_in_budget=spec.fb_in_budget,
            generator=gen, train_fn=make_train_fn(spec, data) if info.needs_training else None,
            options=spec.options, epochs=spec.train.epochs, input_shape=data.input_shape,
            dense_run=dense_run if info.starts_from_dense else None)
    finally:
        model.to("cpu")
    masks = {name: mask.cpu() for name, mask in masks.items()}
    if start_state is not None:
        start_state = {key: value.cpu() if isinstance(value, torch.Tensor) else value
                       for key, value in start_state.items()}
    return masks, start_state


def recalibrate(model: nn.Module, spec: RunSpec, data: Data) -> None:
    """Re-estimate BN running statistics on the first ``bn_recalibration_batches`` unaugmented
    training batches (fixed, the same for SP and IP).  Every evaluation in eval mode runs
    after it: pruning, rewinding or a DST update change the weights without updating the
    running statistics, and momentum averages lag behind the weights (STUDY_SPEC section 3)."""
    size = spec.train.batch_size
    if spec.train.bn_recalibration_batches:
        recalibrate_bn(model, data.eval_batches("train", spec.train.bn_recalibration_batches * size, size))


def measure_gradient_flow(model: nn.Module, spec: RunSpec, data: Data, masks: Masks) -> dict:
    """Gradient flow on the metric slice with the run's BN mode (running statistics only
    after a recalibration: they are meaningless at initialisation and stale after changes)."""
    if resolve_bn_mode(spec.metric_bn_mode) == "running":
        recalibrate(model, spec, data)
    return gradient_flow(model, data.metric_batches(), masks, bn_mode=spec.metric_bn_mode)


class PhaseTimes(dict):
    """Wall seconds a run spends in each phase besides its training steps (``with times("gf"): ...``)."""

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self[phase] = self.get(phase, 0.0) + time.perf_counter() - start


def evaluate_split(model: nn.Module, spec: RunSpec, data: Data, split: str, n: int | None) -> tuple[float, float]:
    """(loss, accuracy) on the first ``n`` unaugmented samples of ``split`` (None: all)."""
    return evaluate_batches(model, data.eval_batches(split, n, spec.train.eval_batch_size))


class EpochEvaluator:
    """Per-epoch record: losses and accuracies on fixed train/test slices (after a BN
    recalibration), gradient flow.  It remembers the epoch it last measured, so that the
    final evaluation reuses what did not change since (the recalibration, the gradient flow)."""

    def __init__(self, spec: RunSpec, data: Data, times: PhaseTimes | None = None):
        self.spec, self.data = spec, data
        self.times = PhaseTimes() if times is None else times
        self.last_epoch: int | None = None
        self.last_gf: dict | None = None

    def __call__(self, epoch: int, model: nn.Module, enforcer) -> dict:
        spec, data, times, n = self.spec, self.data, self.times, self.data.eval_samples
        with times("recalibration"):
            recalibrate(model, spec, data)
        with times("evaluation"):
            train_loss, train_acc = evaluate_split(model, spec, data, "train", n)
            test_loss, test_acc = evaluate_split(model, spec, data, "test", n)
        record = {"train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc,
                  **generalisation_gaps(train_loss, train_acc, test_loss, test_acc)}
        self.last_gf = None
        if spec.gf_every_epoch:
            with times("gradient_flow"):
                self.last_gf = measure_gradient_flow(model, spec, data, enforcer.masks)
            record.update({"gf": self.last_gf["total"], "gf_shared": self.last_gf["shared"],
                           "gf_fb": self.last_gf["fb"]})
        self.last_epoch = epoch
        return record


def train_run(spec: RunSpec, model: nn.Module, masks: Masks, data: Data,
              checkpoint: str | Path | None = None, log: Callable[[dict], None] | None = None,
              progress: bool = False, step_end: Callable[[int, nn.Module], None] | None = None
              ) -> tuple[dict, list[dict], Masks]:
    """Train a pruned network and measure it. Returns (final metrics, per-epoch history, final masks).

    ``step_end(step, model)`` runs after every training step (e.g. :class:`KeepState`)."""
    torch.manual_seed(spec.seed)
    info = method_info(spec.method)
    data = run_data(spec, data)
    cfg = spec.train
    if info.finetunes and spec.options.finetune_epochs:
        cfg = cfg.model_copy(update={"epochs": spec.options.finetune_epochs})
    times = PhaseTimes()
    evaluator = EpochEvaluator(spec, data, times)
    trainer = Trainer(model, masks, make_loader(spec, data), cfg,
                      hook_factory=hook_factory(spec) if info.has_train_hook else None,
                      keep_dense_grad=info.needs_dense_grad, checkpoint=checkpoint,
                      epoch_end=evaluator, log=log, progress=progress, desc=spec.run_id,
                      interspace=spec.interspace, step_end=step_end)
    # at the start of sparse training (after the enforcer zeroed pruned entries); a lottery
    # ticket starts at its rewind point, so its value is gf_rewind, not a GF at initialisation
    with times("gradient_flow"):
        gf_start = measure_gradient_flow(model, spec, data, masks)
    start_step = spec.options.start_step
    start = time.perf_counter()
    history = trainer.fit(start_step=start_step)
    seconds = time.perf_counter() - start
    final_masks = trainer.masks
    trainer.enforcer.remove()
    # the last epoch's record was taken on these very weights and masks (this process trained
    # that epoch): its BN recalibration and gradient flow are reused, not recomputed
    measured_last = evaluator.last_epoch == cfg.epochs
    if not measured_last:
        with times("recalibration"):
            recalibrate(model, spec, data)
    with times("evaluation"):
        train_loss, train_acc = evaluate_split(model, spec, data, "train", data.train_eval_samples)
        test_loss, test_acc = evaluate_split(model, spec, data, "test", None)
    if measured_last and evaluator.last_gf is not None:
        gf_final = evaluator.last_gf
    else:
        with times("gradient_flow"):
            gf_final = measure_gradient_flow(model, spec, data, final_masks)
    with times("costs_and_connectivity"):
        costs = cost_report(model, final_masks, data.input_shape)
        summary = mask_summary(final_masks)
        connectivity = connectivity_report(model, final_masks, data.input_shape)
    steps_total = float(sum(trainer.step_seconds))
    at_init = start_step == 0
    nan = float("nan")
    metrics = {
        "method": spec.method, "repr": spec.repr, "seed": spec.seed, "sparsity": spec.sparsity,
        "test_acc": test_acc, "train_acc": train_acc, "test_loss": test_loss, "train_loss": train_loss,
        **generalisation_gaps(train_loss, train_acc, test_loss, test_acc),
        "sparsity_actual": costs["sparsity_actual"], "kept_params": costs["kept_params"],
        "fb_overhead_params": costs["fb_overhead_params"], "stored_params": costs["stored_params"],
        "total_params": costs["total_params"], "flops_dense": costs["flops_dense"],
        "flops_sparse": costs["flops_sparse"],
        "gf_init": gf_start["total"] if at_init else nan, "gf_init_shared": gf_start["shared"] if at_init else nan,
        "gf_rewind": nan if at_init else gf_start["total"], "gf_final": gf_final["total"],
        "gf_final_shared": gf_final["shared"], "collapsed_layers": len(summary.collapsed_layers),
        # a logit that no kept path reaches from the input: two such networks are no evidence either way
        "disconnected": connectivity["unconnected_outputs"] > 0,
        "unconnected_outputs": connectivity["unconnected_outputs"], "start_step": start_step,
        "epochs": cfg.epochs, "steps": trainer.total_steps, "steps_trained": trainer.total_steps - start_step,
        # mask changes of a training-time schedule (RigL/SET updates, GMP pruning steps)
        "mask_updates": len(trainer.hook.history) if getattr(trainer.hook, "history", None) is not None else 0,
        "seconds": seconds,
        "step_seconds": float(torch.tensor(trainer.step_seconds).median()) if trainer.step_seconds else float("nan"),
        # wall seconds by phase (timing, like seconds: never part of a result's identity)
        "time_steps": steps_total, **{f"time_{phase}": value for phase, value in times.items()},
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
