"""params.yaml as typed models: one pydantic model per section, the single home of every
default, allowed value and range (the library's own models are reused where they exist:
``train`` extends :class:`ip.train.TrainConfig`, ``interspace`` is
:class:`ip.interspace.InterspaceConfig`, and ``prune.<method>`` is the options model that
the method registers in :mod:`ip.pruning`).

A stage validates params.yaml once, before any work; a bad value is one line naming the
key, the value and what is allowed (exit code 2, nothing written)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ip.data import STREAMED, available_datasets
from ip.interspace import FBInit, InterspaceConfig, ShareMode
from ip.models import available_models
from ip.pruning import MethodOptions, method_info, option_sections, registered_methods
from ip.train import TrainConfig, compile_unavailable

MethodName = Literal[registered_methods()]
Repr = Literal["sp", "ip", "ip_eq"]   # ip_eq: IP with its FB entries charged to the budget (equal storage)
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
Seed = Annotated[int, Field(ge=0)]


class ParamsError(ValueError):
    """A bad value in params.yaml; the message is one line naming the key and what is allowed."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DataParams(Section):
    name: Literal[tuple(available_datasets())] = "fashion_mnist"
    root: str | None = None                          # None: the dataset's standard location
    train_subset: int | None = Field(None, ge=1)     # None: the full training split
    test_subset: int | None = Field(None, ge=1)      # None: the full test split
    subset_seed: int = Field(0, ge=0)
    metric_samples: int = Field(256, ge=1)           # fixed slice of the training subset for GF/Hessian
    eval_samples: int = Field(1000, ge=1)            # per-epoch evaluation slices (train and test)
    train_eval_samples: int | None = Field(10_000, ge=1)   # final train metrics on this fixed slice (None: all)
    augment: bool = True
    image_size: int | None = Field(None, ge=8)       # ImageFolder datasets: input size (None: 64 / 224)
    loader_workers: int = Field(4, ge=0)             # ImageFolder datasets: DataLoader worker processes


class ModelParams(Section):
    name: Literal[tuple(available_models())] = "resnet20"
    width: int | None = Field(None, ge=1)            # base channel count (None: the model's own)


class PruneBase(Section):
    """Options every score-based method shares; each method's own options are added as the
    section of its registry entry (``prune.lt``, ``prune.dst``...), see :data:`PruneParams`."""
    scope: Literal["global", "layer"] = "global"
    # layer densities of random pruning: ERK (Evci et al. 2020); uniform at >= 0.98 disconnects small layers
    distribution: Literal["uniform", "erk"] = "erk"
    batches: int = Field(1, ge=1)                    # mini-batches for data-dependent scores
    batch_size: int = Field(256, ge=1)

    def options_for(self, method: str) -> MethodOptions:
        info = method_info(method)
        return getattr(self, info.params_key, None) or info.options()


PruneParams = create_model("PruneParams", __base__=PruneBase,
                           **{key: (cls, Field(default_factory=cls)) for key, cls in option_sections().items()})


class TrainParams(TrainConfig):
    """The library's training schedule plus how a stage runs it."""
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    threads: int = Field(1, ge=1)        # torch threads of a stage; shared out among its `workers`
    workers: int = Field(1, ge=1)        # processes for the stages that make many independent runs
    world_size: int = Field(1, ge=1)     # >1: the train stage runs under torchrun (DDP)
    gf_every_epoch: bool = True


class TrainabilityParams(Section):
    # BN while measuring GF, Hessians and the Thm 1 checks: the batch statistics of the metric slice
    # (what a training step sees), or running statistics after a recalibration (STUDY_SPEC section 3)
    bn_mode: Literal["batch", "running"] = "batch"
    seeds: list[Seed] | None = None       # Hessian spectra for these seeds (None: all)
    hessian_methods: list[MethodName] | None = None   # ... and these methods (None: dense and every method)
    hessian_reprs: list[Repr] | None = None           # ... and these representations (None: all)
    samples: int = Field(128, ge=1)       # first samples of the metric slice used for Hessians
    hessian_top_k: int = Field(3, ge=1)
    hessian_tol: float = Field(1e-3, ge=0.0)
    hutchinson_probes: int = Field(20, ge=1)
    slq_probes: int = Field(3, ge=1)
    slq_steps: int = Field(24, ge=2)
    slq_sigma: float = Field(0.02, ge=0.0)   # smoothing width relative to the spectrum's range


class Theorem1Params(Section):
    etas: list[Annotated[float, Field(gt=0.0)]] = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0]
    seed: int = Field(0, ge=0)
    batch_size: int = Field(128, ge=1)        # batches of the metric slice the checks run on
    fd_samples: int | None = Field(32, ge=1)  # samples for the finite-difference check of grad F (None: all)
    # 1e-7: a ReLU net has pre-activations within eps of a kink, and the central difference error from
    # crossing them grows with eps (dense ResNet-20: 2.6e-4 relative at 1e-6, 8e-7 at 1e-7, 1e-5 at 1e-8)
    fd_eps: float = Field(1e-7, gt=0.0)
    fd_entries_per_fb: int = Field(4, ge=1)        # FB entries checked by finite differences (headline masks)
    sweep_fd_entries_per_fb: int = Field(1, ge=1)  # the same for the sweep's masks (kept cheap)
    general_fb_init: FBInit | None = "dct"         # non-identity FB for the general-F comparison (headline masks)


class SweepParams(Section):
    """Empty ``sparsities`` or ``methods``: no sweep."""
    sparsities: list[Fraction] = [0.9, 0.95, 0.98, 0.99, 0.995]
    methods: list[MethodName] = ["random", "snip", "synflow"]
    seeds: list[Seed] | None = None       # None: the top-level seeds
    epochs: int | None = Field(None, ge=1)  # None: train.epochs


class AblationParams(Section):
    """Empty ``fb_inits`` and ``shares``: no ablation (the stage writes an empty list)."""
    method: MethodName = "snip"
    fb_inits: list[FBInit] = ["spatial", "dct", "random_orthogonal"]
    shares: list[ShareMode] = ["layer", "network"]
    fair_budget: bool = True
    seeds: list[Seed] | None = None


class ShuffleControlParams(Section):
    """Mask shuffling (Frankle et al. 2021): each method's masks with the kept positions permuted
    uniformly within each layer (per-layer counts unchanged), trained like the main runs.
    Empty ``methods``: no shuffle control."""
    methods: list[MethodName] = ["snip", "synflow"]
    reprs: list[Repr] = Field(["sp", "ip"], min_length=1)
    seeds: list[Seed] | None = None       # None: the top-level seeds (must be among them)


LRScale = Annotated[float, Field(gt=0.0)]


class LRControlParams(Section):
    """Learning-rate control: train.lr times each scale, per representation; each representation's
    learning rate is chosen on a validation slice held out of the training set (never the test set).
    Empty ``methods``: no learning-rate control."""
    methods: list[MethodName] = ["snip"]
    lr_scales: list[LRScale] = Field([0.25, 0.5, 1.0, 2.0, 4.0], min_length=2)
    # a scale above this trains with a linear warm-up of warmup_epochs (the same for every representation)
    warmup_above: float = Field(2.0, gt=0.0)
    warmup_epochs: float = Field(0.0, ge=0.0)
    # the grid grows by x2 beyond an edge that a representation chooses, at most this many times per edge
    max_growth: int = Field(2, ge=0)
    reprs: list[Repr] = Field(["sp", "ip"], min_length=1)
    seeds: list[Seed] | None = None       # None: the top-level seeds (must be among them)
    validation_samples: int = Field(5000, ge=1)   # held out of the training set; this control trains on the rest


class PublishedSchedules(Section):
    """At one length of the axis, methods whose schedules the 1-epoch headline had to squeeze,
    trained with their published options (``prune``: per method, keys of its ``prune``
    section that replace the headline's)."""
    epochs: int | None = Field(None, ge=1)
    methods: list[MethodName] = []
    prune: dict[MethodName, dict[str, Any]] = {}


class AxisParams(Section):
    """The training-length axis (STUDY_SPEC section 6, claim C10): ``methods`` at every length of
    ``epochs`` in every representation, the dense runs at ``dense_epochs``, and ``published``.
    Empty ``epochs``: no axis."""
    epochs: list[Annotated[int, Field(ge=1)]] = []
    seeds: list[Seed] = [0, 1, 2]
    methods: list[MethodName] = ["snip"]
    dense_epochs: list[Annotated[int, Field(ge=1)]] = []
    published: PublishedSchedules = PublishedSchedules()


class ControlsParams(Section):
    shuffle: ShuffleControlParams = ShuffleControlParams()
    lr: LRControlParams = LRControlParams()


class AnalysisParams(Section):
    # a part is supported when its (1 - alpha) paired interval lies on the claimed side; the other side
    # takes Holm-Bonferroni over the claim's parts at alpha (STUDY_SPEC section 5)
    alpha: float = Field(0.05, gt=0.0, lt=1.0)


class Params(Section):
    sparsity: float = Field(0.98, ge=0.0, lt=1.0)
    seeds: list[Seed] = Field([0, 1, 2], min_length=1)
    # the pruning methods; the dense runs are always trained (stage `dense`): they are the
    # reference of every comparison and the start of the methods that begin by training dense
    methods: list[MethodName] = Field(["random", "snip", "grasp", "synflow", "lt", "rigl", "gmp"], min_length=1)
    reprs: list[Repr] = Field(["sp", "ip"], min_length=1)
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    interspace: InterspaceConfig = InterspaceConfig()
    prune: PruneParams = Field(default_factory=PruneParams)
    train: TrainParams = TrainParams()
    trainability: TrainabilityParams = TrainabilityParams()
    theorem1: Theorem1Params = Theorem1Params()
    sweep: SweepParams = SweepParams()
    ablation: AblationParams = AblationParams()
    axis: AxisParams = AxisParams()
    controls: ControlsParams = ControlsParams()
    analysis: AnalysisParams = AnalysisParams()

    @property
    def run_methods(self) -> list[str]:
        """Every method with main runs: dense, then ``methods``."""
        return ["dense", *self.methods]

    def reprs_of(self, method: str) -> list[str]:
        """The representations ``method`` has main runs in: all of ``reprs``, except that a
        dense run keeps every entry, so it has no budget to charge and no ``ip_eq`` run."""
        return [r for r in self.reprs if method != "dense" or r != "ip_eq"]

    def ablation_variants(self) -> list[tuple[str, dict]]:
        """(name, interspace overrides) of the ablation's IP variants that differ from the main setting:
        other FB inits; other sharing modes, each also with its FB entries charged to the budget
        (``fair_budget``); and the main setting charged to the budget, unless the main runs have
        it already (``ip_eq`` in ``reprs``: the aggregate stage takes those runs as that variant)."""
        a, main = self.ablation, self.interspace
        if not a.fb_inits and not a.shares:
            return []   # the ablation switched off
        fair = a.fair_budget and not main.fb_in_budget
        out = [(f"fb_init={v}", {"fb_init": v}) for v in a.fb_inits if v != main.fb_init]
        for v in a.shares:
            if v != main.share:
                out.append((f"share={v}", {"share": v}))
                if fair:
                    out.append((f"share={v},fair_budget", {"share": v, "fb_in_budget": True}))
        if fair and "ip_eq" not in self.reprs:
            out.append(("fair_budget", {"fb_in_budget": True}))
        return out


# ---------------------------------------------------------------------------------------
# one-line errors

def _key(loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _annotation(loc) -> Any:
    """The annotation of the field at ``loc`` (list items: the item type)."""
    tp: Any = Params
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, int):
            tp = get_args(tp)[0] if get_args(tp) else Any
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        else:
            return None
    return _unwrap(tp)


def _unwrap(tp):
    while get_origin(tp) in (Union, getattr(__import__("types"), "UnionType", None)) or get_origin(tp) is Annotated:
        args = [a for a in get_args(tp) if a is not type(None)]
        tp = args[0]
    return tp


def _lower_bound(loc):
    """The ``ge`` bound of the field (or list item) at ``loc``, if it has one."""
    parent = _annotation(loc[:-1]) if not isinstance(loc[-1], int) else None
    if isinstance(parent, type) and issubclass(parent, BaseModel):
        metadata = parent.model_fields[loc[-1]].metadata
    else:
        item = get_args(_annotation(loc[:-1]))
        metadata = [m for a in item for m in getattr(a, "__metadata__", ())]
        metadata = [x for m in metadata for x in getattr(m, "metadata", [m])]
    return next((m.ge for m in metadata if getattr(m, "ge", None) is not None), None)


def _allowed(loc) -> str:
    tp = _annotation(loc)
    if get_origin(tp) is list:
        tp = _unwrap(get_args(tp)[0])
    return ", ".join(str(v) for v in get_args(tp)) if get_origin(tp) is Literal else ""


def _message(err: dict) -> str:
    loc, kind, value, ctx = err["loc"], err["type"], err.get("input"), err.get("ctx", {})
    key = _key(loc)
    if kind == "extra_forbidden":
        parent = _annotation(loc[:-1]) if len(loc) > 1 else Params
        names = sorted(parent.model_fields) if isinstance(parent, type) and issubclass(parent, BaseModel) else []
        return f"unknown key {key}; allowed keys: {', '.join(names)}"
    if kind == "literal_error":
        bare = _key(loc[:-1]) if isinstance(loc[-1], int) else key   # a list of choices names the list
        return f"{bare}: {value!r} is not allowed; allowed: {_allowed(loc)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{key or 'params'}: expected a mapping, got {value!r}"
    if kind == "too_short":
        return f"{key}: must not be empty" + (f"; allowed: {_allowed(loc)}" if _allowed(loc) else "")
    expected = {"int_type": "an integer", "int_from_float": "an integer", "int_parsing": "an integer",
                "float_type": "a number", "float_parsing": "a number", "string_type": "a string",
                "bool_type": "true or false", "bool_parsing": "true or false", "list_type": "a list"}
    if kind in expected:
        return f"{key}: expected {expected[kind]}, got {value!r}"
    if kind == "greater_than_equal":
        return f"{key}: {value!r} is below the minimum {ctx['ge']}"
    if kind == "greater_than":
        return f"{key}: {value!r} must be above {ctx['gt']}"
    if kind == "less_than_equal":
        return f"{key}: {value!r} is above the maximum {ctx['le']}"
    if kind == "less_than":
        low = _lower_bound(loc)
        return f"{key}: {value!r} is out of range; allowed: [{low if low is not None else '-inf'}, {ctx['lt']})"
    msg = str(err.get("msg", kind)).removeprefix("Value error, ")
    return f"{key}: {msg}" if key else msg


def _no_duplicates(key: str, values: list | None) -> None:
    if values and len(set(values)) != len(values):
        raise ParamsError(f"{key}: duplicate entries in {values}")


#: images in the training split of each dataset
TRAIN_SPLIT_SIZES = {"fashion_mnist": 60_000, "cifar10": 50_000, "cifar100": 50_000, "tiny_imagenet": 100_000,
                     "imagenet": 1_281_167}


def training_steps(p: Params) -> int | None:
    """Optimisation steps of a main run (None: the dataset's size is not known here)."""
    n = p.data.train_subset or TRAIN_SPLIT_SIZES.get(p.data.name)
    return None if n is None else p.train.epochs * (n // p.train.batch_size)


def _check_axis(p: Params) -> None:
    a = p.axis
    for key in ("epochs", "seeds", "methods", "dense_epochs"):
        _no_duplicates(f"axis.{key}", getattr(a, key))
    if not a.epochs:
        return
    if not a.seeds:
        raise ParamsError("axis.seeds: empty; give the seeds, or axis.epochs: [] switches the axis off")
    if "dense" in a.methods or "dense" in a.published.methods:
        raise ParamsError("axis.methods: leave out dense; axis.dense_epochs says at which lengths dense runs train")
    for key, values in (("axis.dense_epochs", a.dense_epochs),
                        ("axis.published.epochs", [a.published.epochs] if a.published.methods else [])):
        missing = [v for v in values if v not in a.epochs]
        if missing:
            raise ParamsError(f"{key}: {missing} not among axis.epochs {a.epochs}")
    for method, options in a.published.prune.items():
        if method not in a.published.methods:
            raise ParamsError(f"axis.published.prune.{method}: {method} is not in axis.published.methods")
        base = p.prune.options_for(method)
        unknown = sorted(set(options) - set(type(base).model_fields))
        if unknown:
            raise ParamsError(f"axis.published.prune.{method}: unknown key {unknown[0]}; allowed: "
                              f"{', '.join(sorted(type(base).model_fields))}")
        try:
            type(base).model_validate({**base.model_dump(), **options})
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ParamsError(f"axis.published.prune.{method}.{_key(err['loc'])}: {err['msg']}") from None


def _check_consistency(p: Params) -> None:
    """Rules that tie two keys together."""
    if len(set(p.seeds)) != len(p.seeds):
        raise ParamsError(f"seeds: need distinct non-negative integers, got {p.seeds}")
    for key in ("methods", "reprs", "sweep.methods", "sweep.sparsities", "ablation.fb_inits", "ablation.shares",
                "trainability.hessian_methods", "trainability.hessian_reprs", "controls.shuffle.methods",
                "controls.shuffle.reprs", "controls.lr.methods", "controls.lr.lr_scales", "controls.lr.reprs"):
        value: Any = p
        for part in key.split("."):
            value = getattr(value, part)
        _no_duplicates(key, value)
    for key, seeds in (("sweep.seeds", p.sweep.seeds), ("ablation.seeds", p.ablation.seeds),
                       ("controls.shuffle.seeds", p.controls.shuffle.seeds), ("controls.lr.seeds", p.controls.lr.seeds)):
        if seeds == []:
            part = key.rsplit(".", 1)[0]
            off = {"sweep": "sweep.sparsities: []", "ablation": "ablation.fb_inits: [] and ablation.shares: []"}.get(
                part, f"{part}.methods: []")
            raise ParamsError(f"{key}: empty; null takes the top-level seeds, and {off} switches it off")
    _check_axis(p)
    if "dense" in p.methods:
        raise ParamsError("methods: leave out dense: the dense runs are always trained (stage dense), as the "
                          "reference and the start of lt and oneshot")
    for key, values, allowed in (("trainability.hessian_methods", p.trainability.hessian_methods, p.run_methods),
                                 ("trainability.hessian_reprs", p.trainability.hessian_reprs, p.reprs),
                                 ("controls.shuffle.methods", p.controls.shuffle.methods, p.methods),
                                 ("controls.shuffle.reprs", p.controls.shuffle.reprs, p.reprs),
                                 ("controls.shuffle.seeds", p.controls.shuffle.seeds, p.seeds),
                                 ("controls.lr.seeds", p.controls.lr.seeds, p.seeds)):
        missing = [v for v in values or () if v not in allowed]
        if missing:
            raise ParamsError(f"{key}: {missing} not among the main runs' {allowed}")
    for m in p.controls.shuffle.methods:
        if method_info(m).has_train_hook:
            raise ParamsError(f"controls.shuffle.methods: {m} changes its masks during training, so there is no "
                              "fixed mask to shuffle; use a method whose masks are fixed before training")
    if (why := compile_unavailable(p.train)) is not None:
        raise ParamsError(f"train.compile: {why}")
    steps = training_steps(p)
    n_train = p.data.train_subset or TRAIN_SPLIT_SIZES.get(p.data.name)
    if n_train is not None and p.controls.lr.validation_samples >= n_train:
        raise ParamsError(f"controls.lr.validation_samples: {p.controls.lr.validation_samples} leaves no training "
                          f"images of the {n_train}; use fewer")
    if "lt" in registered_methods() and steps is not None and p.prune.options_for("lt").rewind_step >= steps:
        raise ParamsError(f"prune.lt.rewind_step: {p.prune.options_for('lt').rewind_step} must be below the "
                          f"{steps} steps of training (train.epochs x the training images // train.batch_size)")
    if p.data.name in STREAMED and p.data.root is None:
        raise ParamsError(f"data.root: required for {p.data.name} (an ImageFolder directory with train/ and val/)")
    if p.train.world_size > 1 and p.train.batch_size % p.train.world_size:
        raise ParamsError(f"train.batch_size: {p.train.batch_size} must be a multiple of train.world_size "
                          f"({p.train.world_size})")


def validate(raw: Any) -> Params:
    """``raw`` (params.yaml as loaded) as :class:`Params`, or :class:`ParamsError`."""
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError(f"params: expected a mapping, got {raw!r}")
    try:
        params = Params.model_validate(raw or {})
    except ValidationError as exc:
        raise ParamsError(_message(exc.errors()[0])) from None
    _check_consistency(params)
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found; run from the repository root")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    return validate(raw)


def load_or_exit(path: str | Path = "params.yaml") -> Params:
    """Validated params, or a one-line error on stderr and exit code 2."""
    try:
        return load_params(path)
    except ParamsError as exc:
        print(f"error: params.yaml: {exc}", file=sys.stderr)
        raise SystemExit(2)
