"""Registry of pruning methods, their options, and the shared mask-selection step.

A method is one function ``find(model, request) -> (masks, start_state)`` registered
with :func:`register_method`; a method with a training-time schedule (DST, GMP) also
registers a hook factory.  Nothing outside this module dispatches on method names.

Every method ends in :func:`select_top`, the one place where scores become a mask with
an exact number of kept entries (ties broken by the core's deterministic rule in
:func:`ip.masks.masks_from_scores`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..masks import Masks, exact_counts, masks_from_scores, masks_with_density, prunable_parameters

FAMILIES = ("baseline", "pai", "lt", "dst", "gradual", "pretrained")
SCOPES = ("global", "layer")
DISTRIBUTIONS = ("uniform", "erk")
BN_MODES = ("train", "eval")


@dataclass(frozen=True)
class Option:
    default: Any
    help: str
    allowed: tuple | None = None


# Every option any method reads, with its default.  Unknown keys are an error, so a
# typo in params.yaml cannot silently fall back to a default.
OPTIONS: dict[str, Option] = {
    "score_bn_mode": Option("train", "BN mode while SNIP/GraSP scores are computed: 'train' uses batch "
                                     "statistics (running stats are never changed: scoring runs on a copy)",
                            BN_MODES),
    "grasp_temperature": Option(200.0, "GraSP: logits are divided by this temperature in both passes"),
    "synflow_rounds": Option(100, "SynFlow: number of score-prune rounds"),
    "synflow_dtype": Option("float64", "SynFlow: dtype of the linearised network (avoids under/overflow)",
                            ("float64", "float32")),
    "input_shape": Option(None, "SynFlow: input shape (C, H, W) without batch dim, used when no batches are given"),
    "erk_power_scale": Option(1.0, "ERK: exponent applied to the ERK layer factor (1.0 = Evci et al.)"),
    "epochs": Option(None, "LT/oneshot: epochs of one (dense or sparse) training run; required for lt, oneshot"),
    "lt_rounds": Option(3, "LT: number of train-prune-rewind rounds"),
    "lt_rewind_epoch": Option(1, "LT: rewind point in epochs (0 = rewind to the initialisation)"),
    "dst_distribution": Option("erk", "RigL/SET: layer densities of the random start mask", DISTRIBUTIONS),
    "dst_interval": Option(100, "RigL/SET: optimizer steps between mask updates (Delta T)"),
    "dst_alpha": Option(0.3, "RigL/SET: initial drop fraction alpha"),
    "dst_stop_fraction": Option(0.75, "RigL/SET: mask updates stop at this fraction of total_steps (T_end)"),
    "gmp_start_fraction": Option(0.1, "GMP: first pruning step t0 as a fraction of total_steps"),
    "gmp_end_fraction": Option(0.75, "GMP: step where the target sparsity is reached, fraction of total_steps"),
    "gmp_interval": Option(100, "GMP: optimizer steps between pruning steps (Delta t)"),
}


def resolve_options(options: dict | None) -> dict:
    """Defaults overlaid with ``options``; unknown keys or disallowed values raise ValueError."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown pruning option(s) {unknown}; allowed: {', '.join(sorted(OPTIONS))}")
    out = {k: o.default for k, o in OPTIONS.items()}
    out.update(options)
    for k, o in OPTIONS.items():
        if o.allowed is not None and out[k] not in o.allowed:
            raise ValueError(f"option {k} must be one of {o.allowed}, got {out[k]!r}")
    for k in ("synflow_rounds", "lt_rounds", "dst_interval", "gmp_interval"):
        if int(out[k]) != out[k] or out[k] < 1:
            raise ValueError(f"option {k} must be a positive integer, got {out[k]!r}")
    for k in ("dst_stop_fraction", "gmp_start_fraction", "gmp_end_fraction"):
        if not 0.0 <= float(out[k]) <= 1.0:
            raise ValueError(f"option {k} must be in [0, 1], got {out[k]!r}")
    if not 0.0 <= float(out["dst_alpha"]) <= 1.0:
        raise ValueError(f"option dst_alpha must be in [0, 1], got {out['dst_alpha']!r}")
    if float(out["gmp_start_fraction"]) > float(out["gmp_end_fraction"]):
        raise ValueError("option gmp_start_fraction must not exceed gmp_end_fraction")
    if float(out["grasp_temperature"]) <= 0:
        raise ValueError(f"option grasp_temperature must be positive, got {out['grasp_temperature']!r}")
    return out


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
    options: dict = field(default_factory=dict)


FindFn = Callable[[nn.Module, PruneRequest], "tuple[Masks, dict | None]"]


@dataclass(frozen=True)
class MethodInfo:
    name: str
    family: str
    needs_data: bool          # find_masks needs ``batches``
    needs_training: bool      # find_masks needs ``train_fn`` (trains a copy of the schedule itself)
    uses_sparsity: bool       # False only for ``dense``
    description: str
    find: FindFn
    make_hook: Callable | None = None   # training-time schedule factory (DST, GMP)


_REGISTRY: dict[str, MethodInfo] = {}


def register_method(name: str, family: str, description: str, needs_data: bool = False,
                    needs_training: bool = False, uses_sparsity: bool = True):
    """Decorator registering ``find(model, request) -> (masks, start_state)`` under ``name``."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")

    def deco(fn: FindFn) -> FindFn:
        if name in _REGISTRY:
            raise ValueError(f"pruning method {name!r} registered twice")
        _REGISTRY[name] = MethodInfo(name, family, needs_data, needs_training, uses_sparsity, description, fn)
        return fn
    return deco


def register_hook(name: str):
    """Decorator attaching a training-time hook factory to an already registered method."""
    def deco(factory):
        info = method_info(name)
        _REGISTRY[name] = MethodInfo(info.name, info.family, info.needs_data, info.needs_training,
                                     info.uses_sparsity, info.description, info.find, factory)
        return factory
    return deco


def registered_methods() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def method_info(name: str) -> MethodInfo:
    if name not in _REGISTRY:
        raise ValueError(f"unknown pruning method {name!r}; allowed: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


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
