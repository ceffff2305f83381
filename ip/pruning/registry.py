"""Registry of pruning methods, their options, and the shared mask-selection step.

A method is one function ``find(model, request) -> (masks, start_state)`` registered
with :func:`register_method`, together with its options model (a :class:`MethodOptions`
subclass: the single home of its defaults and allowed values) and its capabilities; a
method with a training-time schedule (DST, GMP) also registers a hook factory.  Nothing
outside ``ip.pruning`` dispatches on method names or families: callers ask
:class:`MethodInfo`.

Every method ends in :func:`select_top`, the one place where scores become a mask with
an exact number of kept entries (ties broken by the core's deterministic rule in
:func:`ip.masks.masks_from_scores`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Literal

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from ..masks import Masks, exact_counts, masks_from_scores, masks_with_density, prunable_parameters

FAMILIES = ("baseline", "pai", "lt", "dst", "gradual", "pretrained")
SCOPES = ("global", "layer")
DISTRIBUTIONS = ("uniform", "erk")
Scope = Literal["global", "layer"]
Distribution = Literal["uniform", "erk"]


class MethodOptions(BaseModel):
    """Base of every method's options: typed, with defaults and allowed values next to each
    field.  Unknown keys are an error, so a typo cannot silently fall back to a default."""
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @property
    def start_step(self) -> int:
        """The global step of the schedule the run's training starts at (its start weights
        were trained that far: a lottery ticket's rewind point); 0 for training from scratch."""
        return 0


class NoOptions(MethodOptions):
    """A method without options."""


@dataclass(frozen=True)
class DenseRun:
    """A finished dense training of the same network, seed, data order and schedule, which a
    method that starts by training dense (``MethodInfo.starts_from_dense``: lt, oneshot) takes
    instead of training it again: its final state and its state after step ``rewind_step``."""
    final_state: dict
    rewind_step: int | None = None
    rewind_state: dict | None = None


@dataclass
class PruneRequest:
    """Everything a method's ``find`` function may use, validated by :func:`find_masks`."""
    sparsity: float
    keep_total: int | None          # exact number of kept entries (None for methods that ignore sparsity)
    batches: list | None
    loss_fn: Callable
    scope: str
    distribution: str
    fb_in_budget: bool
    generator: torch.Generator | None
    train_fn: Callable | None
    options: MethodOptions = field(default_factory=NoOptions)
    epochs: int | None = None                 # length of one training run (methods that train)
    input_shape: tuple[int, ...] | None = None   # (C, H, W) for data-free methods given no batches
    dense_run: DenseRun | None = None         # methods that start by training dense: that training, done


FindFn = Callable[[nn.Module, PruneRequest], "tuple[Masks, dict | None]"]


@dataclass(frozen=True)
class MethodInfo:
    """A registered method: its function, its options model and what it needs.

    Callers ask these capabilities, never the method's name or family:

    - ``needs_data``: ``find`` scores on mini-batches (``batches``);
    - ``needs_training``: ``find`` trains copies of the run (``train_fn``, ``epochs``);
    - ``starts_from_dense``: that training starts with a dense run of the whole schedule,
      which a caller that has one may hand over (``dense_run``) instead of a retraining;
    - ``uses_sparsity``: False only for a method that keeps everything;
    - ``needs_dense_grad``: the training hook reads gradients of pruned entries;
    - ``finetunes``: the masks are found on trained weights, and the run that follows is a
      fine-tuning of ``options.finetune_epochs`` epochs;
    - ``make_hook``: a training-time schedule that changes the masks while training
      (``has_train_hook``), so the masks a run ends with differ from those it started with.
    """
    name: str
    family: str
    description: str
    find: FindFn
    options: type[MethodOptions] = NoOptions
    params_key: str = ""
    needs_data: bool = False
    needs_training: bool = False
    uses_sparsity: bool = True
    needs_dense_grad: bool = False
    finetunes: bool = False
    make_hook: Callable | None = None
    starts_from_dense: bool = False

    @property
    def has_train_hook(self) -> bool:
        return self.make_hook is not None


_REGISTRY: dict[str, MethodInfo] = {}


def register_method(name: str, family: str, description: str, *, options: type[MethodOptions] = NoOptions,
                    params_key: str | None = None, needs_data: bool = False, needs_training: bool = False,
                    uses_sparsity: bool = True, needs_dense_grad: bool = False, finetunes: bool = False,
                    starts_from_dense: bool = False):
    """Decorator registering ``find(model, request) -> (masks, start_state)`` under ``name``.

    ``options`` is the method's options model; ``params_key`` (default: the name) is the
    section of params.yaml's ``prune`` that holds them (methods sharing options share a key).
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    key = params_key or name

    def deco(fn: FindFn) -> FindFn:
        if name in _REGISTRY:
            raise ValueError(f"pruning method {name!r} registered twice")
        for other in _REGISTRY.values():
            if other.params_key == key and other.options is not options:
                raise ValueError(f"{name}: params key {key!r} is taken by {other.name} with other options")
        _REGISTRY[name] = MethodInfo(name, family, description, fn, options, key, needs_data, needs_training,
                                     uses_sparsity, needs_dense_grad, finetunes, None, starts_from_dense)
        return fn
    return deco


def register_hook(name: str):
    """Decorator attaching a training-time hook factory to an already registered method."""
    def deco(factory):
        _REGISTRY[name] = replace(method_info(name), make_hook=factory)
        return factory
    return deco


def unregister_method(name: str) -> None:
    """Remove a method (tests that register a method of their own clean up with this)."""
    _REGISTRY.pop(name, None)


def registered_methods() -> tuple[str, ...]:
    """Names of the pruning methods ``find_masks`` accepts, in registration order."""
    return tuple(_REGISTRY)


def method_info(name: str) -> MethodInfo:
    """A method's family, options model and capabilities (needs data, trains, uses the sparsity...)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown pruning method {name!r}; allowed: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def option_sections() -> dict[str, type[MethodOptions]]:
    """params key -> options model, over every registered method that has options."""
    return {info.params_key: info.options for info in _REGISTRY.values() if info.options.model_fields}


def resolve_options(method: str, options: MethodOptions | dict | None = None) -> MethodOptions:
    """``method``'s options: its defaults overlaid with ``options`` (a dict or an instance of
    its options model).  Unknown keys or disallowed values raise ValueError."""
    cls = method_info(method).options
    if isinstance(options, cls):
        return options
    if isinstance(options, MethodOptions):
        raise ValueError(f"{method} takes {cls.__name__}, got {type(options).__name__}")
    try:
        return cls(**(options or {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"{method} option {where}: {err['msg']}; "
                         f"allowed options: {', '.join(cls.model_fields) or 'none'}") from None


# ---------------------------------------------------------------------------------------
# scores -> exact masks

def keep_top(score: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the k highest entries of one tensor (core tie-breaking)."""
    return masks_from_scores({"t": score}, 0.0, "global", keep_total=int(k))["t"]


def select_top(scores: dict[str, torch.Tensor], keep_total: int, scope: str = "global",
               candidates: Masks | None = None) -> Masks:
    """Keep exactly ``keep_total`` entries with the highest scores.

    ``scope='global'`` ranks all layers together; ``'layer'`` gives every layer the same
    density, rounded to integer counts that sum exactly to ``keep_total`` (largest
    remainder).  With ``candidates``, only entries where the candidate mask is true can
    be kept (iterative methods: an entry pruned once stays pruned); a layer whose
    candidates are fewer than its share keeps all of them and the difference goes to
    the other layers, so the total stays exact.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    scores = {n: s.detach().to(torch.float64) for n, s in scores.items()}
    sizes = {n: s.numel() for n, s in scores.items()}
    caps = dict(sizes)
    if candidates is not None:
        caps = {n: int(candidates[n].sum()) for n in scores}
        # lift non-candidates below every candidate score, so they are ranked last
        floor = min(float(s.min()) for s in scores.values()) - 1.0
        scores = {n: torch.where(candidates[n].to(s.device), s, torch.full_like(s, floor)) for n, s in scores.items()}
    if keep_total > sum(caps.values()):
        raise ValueError(f"cannot keep {keep_total} entries among {sum(caps.values())} candidates")
    if scope == "global":
        return masks_from_scores(scores, 0.0, "global", keep_total=keep_total)
    density = keep_total / sum(sizes.values())
    relative = {n: min(1.0, density * sizes[n] / caps[n]) if caps[n] else 0.0 for n in sizes}
    counts = exact_counts(relative, caps, keep_total)
    return {n: keep_top(scores[n], counts[n]) for n in scores}


def select_with_counts(scores: dict[str, torch.Tensor], counts: dict[str, int]) -> Masks:
    """Per-layer masks keeping exactly ``counts[name]`` highest-scoring entries."""
    densities = {n: counts[n] / s.numel() for n, s in scores.items()}
    masks = masks_with_density(scores, densities)
    for n, m in masks.items():
        if int(m.sum()) != counts[n]:  # guards the float round trip count -> density -> count
            raise AssertionError(f"{n}: kept {int(m.sum())}, expected {counts[n]}")
    return masks


def total_entries(model: nn.Module) -> int:
    return sum(p.numel() for p in prunable_parameters(model).values())


def kept_entries(masks: Masks) -> int:
    return sum(int(m.sum()) for m in masks.values())


def schedule_keep(total: int, keep_final: int, fraction: float) -> int:
    """Kept entries after ``fraction`` of an exponential (geometric) density schedule.

    Density goes from 1 to keep_final/total as (keep_final/total)**fraction; at
    ``fraction == 1`` the result is exactly ``keep_final``.
    """
    if fraction >= 1.0:
        return keep_final
    density = (keep_final / total) ** fraction if keep_final > 0 else 0.0
    return max(keep_final, min(total, int(round(density * total))))
