"""Typed, validated view of params.yaml: one dataclass per section, defaults and allowed values
next to each field.  Any problem is reported as one line naming the key and what is allowed,
before a stage does any work (exit code 2, nothing written)."""
from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

METHOD_NAMES = ("dense", "random", "magnitude", "snip", "grasp", "synflow", "lt", "rigl", "set", "gmp", "oneshot")
REPR_NAMES = ("sp", "ip")
DATASETS = ("fashion_mnist", "cifar10", "cifar100", "tiny_imagenet", "imagenet")
MODELS = ("resnet20", "resnet32", "resnet56", "vgg11", "vgg16", "vgg19", "resnet18", "resnet50")


class ParamsError(ValueError):
    """A bad value in params.yaml; the message is one line naming the key and what is allowed."""


def _opt(default, **meta):
    return field(default=default, metadata=meta)


def _lst(default, **meta):
    return field(default_factory=lambda: list(default), metadata=meta)


@dataclass
class DataParams:
    name: str = _opt("fashion_mnist", choices=DATASETS)
    root: str | None = _opt(None)
    train_subset: int | None = _opt(None, min=1)      # None: the full training split
    test_subset: int | None = _opt(None, min=1)       # None: the full test split
    subset_seed: int = _opt(0, min=0)
    metric_samples: int = _opt(256, min=1)           # fixed slice of the training subset for GF/Hessian
    eval_samples: int = _opt(1000, min=1)            # per-epoch evaluation slices (train and test)
    augment: bool = _opt(True)
    image_size: int | None = _opt(None, min=8)       # ImageFolder datasets: input size (None: 64 / 224)
    loader_workers: int = _opt(4, min=0)             # ImageFolder datasets: DataLoader worker processes


@dataclass
class ModelParams:
    name: str = _opt("resnet20", choices=MODELS)
    width: int | None = _opt(None, min=1)


@dataclass
class InterspaceParams:
    fb_init: str = _opt("spatial", choices=("spatial", "dct", "random_orthogonal"))
    share: str = _opt("layer", choices=("layer", "network"))
    fb_lr_scale: float = _opt(1.0, min=0.0)
    fb_weight_decay: float = _opt(0.0, min=0.0)
    fb_in_budget: bool = _opt(False)


@dataclass
class LotteryParams:
    rounds: int = _opt(2, min=1)
    rewind_epoch: int = _opt(1, min=0)


@dataclass
class DstParams:
    interval: int = _opt(50, min=1)
    alpha: float = _opt(0.3, min=0.0, max=1.0)
    stop_fraction: float = _opt(0.75, min=0.0, max=1.0)


@dataclass
class GmpParams:
    start_fraction: float = _opt(0.1, min=0.0, max=1.0)
    end_fraction: float = _opt(0.75, min=0.0, max=1.0)
    interval: int = _opt(10, min=1)


@dataclass
class PruneParams:
    scope: str = _opt("global", choices=("global", "layer"))
    distribution: str = _opt("uniform", choices=("uniform", "erk"))
    batches: int = _opt(1, min=1)
    batch_size: int = _opt(256, min=1)
    synflow_rounds: int = _opt(100, min=1)
    grasp_temperature: float = _opt(200.0, min=0.0)
    oneshot_finetune_epochs: int | None = _opt(None, min=1)  # None: train.epochs
    lt: LotteryParams = field(default_factory=LotteryParams)
    dst: DstParams = field(default_factory=DstParams)
    gmp: GmpParams = field(default_factory=GmpParams)


@dataclass
class TrainParams:
    epochs: int = _opt(5, min=1)
    batch_size: int = _opt(128, min=1)
    lr: float = _opt(0.1, min=0.0)
    momentum: float = _opt(0.9, min=0.0, max=1.0)
    nesterov: bool = _opt(True)
    weight_decay: float = _opt(5e-4, min=0.0)
    schedule: str = _opt("cosine", choices=("cosine", "step", "constant"))
    warmup_epochs: int = _opt(0, min=0)
    milestones: list[float] = _lst([0.5, 0.75])
    gamma: float = _opt(0.1, min=0.0)
    label_smoothing: float = _opt(0.0, min=0.0, max=1.0)
    threads: int = _opt(1, min=1)      # torch threads of a stage; shared out among its `workers`
    workers: int = _opt(1, min=1)      # processes for the stages that make many independent runs
    device: str = _opt("auto", choices=("auto", "cpu", "cuda"))   # auto: a GPU when there is one
    world_size: int = _opt(1, min=1)
    gf_every_epoch: bool = _opt(True)


@dataclass
class TrainabilityParams:
    seeds: list[int] | None = _opt(None)   # None: all seeds
    samples: int = _opt(128, min=1)        # first samples of the metric slice used for Hessians
    hessian_top_k: int = _opt(3, min=1)
    hessian_tol: float = _opt(1e-3, min=0.0)
    hutchinson_probes: int = _opt(20, min=1)
    slq_probes: int = _opt(3, min=1)
    slq_steps: int = _opt(24, min=2)
    slq_sigma: float = _opt(0.02, min=0.0)   # smoothing width relative to the spectrum's range


@dataclass
class TheoremParams:
    etas: list[float] = _lst([1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0])
    seed: int = _opt(0, min=0)
    fd_samples: int | None = _opt(32, min=1)   # samples for the finite-difference check of grad F (None: all)


@dataclass
class SweepParams:
    sparsities: list[float] = _lst([0.9, 0.95, 0.98, 0.99, 0.995])
    methods: list[str] = _lst(["random", "snip", "synflow"])
    seeds: list[int] | None = _opt(None)   # None: the top-level seeds
    epochs: int | None = _opt(None, min=1)  # None: train.epochs


@dataclass
class AblationParams:
    method: str = _opt("snip", choices=METHOD_NAMES)
    fb_inits: list[str] = _lst(["spatial", "dct", "random_orthogonal"])
    shares: list[str] = _lst(["layer", "network"])
    fair_budget: bool = _opt(True)
    seeds: list[int] | None = _opt(None)


@dataclass
class Params:
    sparsity: float = _opt(0.98, min=0.0, max_exclusive=1.0)
    seeds: list[int] = _lst([0, 1, 2])
    methods: list[str] = _lst(["dense", "random", "snip", "grasp", "synflow", "lt", "rigl", "gmp"])
    reprs: list[str] = _lst(["sp", "ip"])
    data: DataParams = field(default_factory=DataParams)
    model: ModelParams = field(default_factory=ModelParams)
    interspace: InterspaceParams = field(default_factory=InterspaceParams)
    prune: PruneParams = field(default_factory=PruneParams)
    train: TrainParams = field(default_factory=TrainParams)
    trainability: TrainabilityParams = field(default_factory=TrainabilityParams)
    theorem1: TheoremParams = field(default_factory=TheoremParams)
    sweep: SweepParams = field(default_factory=SweepParams)
    ablation: AblationParams = field(default_factory=AblationParams)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _check_scalar(key: str, value: Any, tp, meta: dict) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        tp = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"{key}: expected a list, got {value!r}")
        return [_check_scalar(f"{key}[{i}]", v, args[0], meta) for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: expected true or false, got {value!r}")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: expected an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: expected a number, got {value!r}")
        value = float(value)
    elif tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key}: expected a string, got {value!r}")
    if "choices" in meta and value not in meta["choices"]:
        raise ParamsError(f"{key}: {value!r} is not allowed; allowed: {', '.join(meta['choices'])}")
    if "min" in meta and value < meta["min"]:
        raise ParamsError(f"{key}: {value!r} is below the minimum {meta['min']}")
    if "max" in meta and value > meta["max"]:
        raise ParamsError(f"{key}: {value!r} is above the maximum {meta['max']}")
    if "max_exclusive" in meta and value >= meta["max_exclusive"]:
        raise ParamsError(f"{key}: {value!r} is out of range; allowed: [{meta.get('min', '-inf')}, "
                          f"{meta['max_exclusive']})")
    return value


def _build(cls, raw: Any, prefix: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{prefix or 'params'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ParamsError(f"unknown key {where}{unknown[0]}; allowed keys: {', '.join(sorted(names))}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if f.name not in raw:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build(tp, raw[f.name], key)
        else:
            kwargs[f.name] = _check_scalar(key, raw[f.name], tp, dict(f.metadata))
    return cls(**kwargs)


def _check_members(key: str, values: list, allowed: tuple) -> None:
    for v in values:
        if v not in allowed:
            raise ParamsError(f"{key}: {v!r} is not allowed; allowed: {', '.join(allowed)}")
    if not values:
        raise ParamsError(f"{key}: must not be empty; allowed: {', '.join(allowed)}")
    if len(set(values)) != len(values):
        raise ParamsError(f"{key}: duplicate entries in {values}")


def validate(raw: dict) -> Params:
    p = _build(Params, raw, "")
    _check_members("methods", p.methods, METHOD_NAMES)
    _check_members("reprs", p.reprs, REPR_NAMES)
    _check_members("sweep.methods", p.sweep.methods, METHOD_NAMES)
    _check_members("ablation.fb_inits", p.ablation.fb_inits, ("spatial", "dct", "random_orthogonal"))
    _check_members("ablation.shares", p.ablation.shares, ("layer", "network"))
    if not p.seeds or len(set(p.seeds)) != len(p.seeds) or any(s < 0 for s in p.seeds):
        raise ParamsError(f"seeds: need distinct non-negative integers, got {p.seeds}")
    for i, s in enumerate(p.sweep.sparsities):
        if not 0.0 <= s < 1.0:
            raise ParamsError(f"sweep.sparsities[{i}]: {s} must be in [0, 1)")
    if p.prune.lt.rewind_epoch >= p.train.epochs:
        raise ParamsError(f"prune.lt.rewind_epoch: {p.prune.lt.rewind_epoch} must be below train.epochs "
                          f"({p.train.epochs})")
    if p.prune.gmp.start_fraction >= p.prune.gmp.end_fraction:
        raise ParamsError("prune.gmp.start_fraction must be below prune.gmp.end_fraction")
    if p.data.name in ("tiny_imagenet", "imagenet") and p.data.root is None:
        raise ParamsError(f"data.root: required for {p.data.name} (an ImageFolder directory with train/ and val/)")
    return p


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found; run from the repository root")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    return validate(raw or {})


def load_or_exit(path: str | Path = "params.yaml") -> Params:
    """Validated params, or a one-line error on stderr and exit code 2."""
    try:
        return load_params(path)
    except ParamsError as exc:
        print(f"error: params.yaml: {exc}", file=sys.stderr)
        raise SystemExit(2)
