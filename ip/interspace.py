"""Interspace representation of convolution filters.

A K x K filter h is written as h = sum_n lambda_n g^(n), n = 1..K^2, where the filter
basis (FB) F = [g^(1) ... g^(K^2)] is a trainable K^2 x K^2 matrix (columns are the
flattened basis filters).  With filters and coefficients stored as rows of length K^2,
the weight of a layer is

    W = lambda . F^T

This module expresses that identity exactly once, as a ``torch.nn.utils.parametrize``
reparametrisation of ``Conv2d.weight``: the stored tensor (``parametrizations.weight
.original``) holds the coefficients lambda in the same shape as the spatial weight
(position (i, j) of the K x K grid is coefficient n = i*K + j), and every access to
``conv.weight`` rebuilds W.  One ordinary conv2d then runs per forward (the
equal-runtime path).  The factorised path of the paper's Fig. 1 is
:func:`factorised_conv2d`.
"""
from __future__ import annotations

import copy
import logging
import math
from typing import Iterator, Literal, get_args

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn.utils import parametrize

from .onednn_guard import guard_convs

_log = logging.getLogger("ip")

FBInit = Literal["spatial", "dct", "random_orthogonal"]
ShareMode = Literal["layer", "network"]
FB_INITS: tuple[str, ...] = get_args(FBInit)
SHARE_MODES: tuple[str, ...] = get_args(ShareMode)


class InterspaceConfig(BaseModel):
    """How a run represents and trains its filters in interspace (STUDY_SPEC section 1);
    params.yaml's ``interspace`` section."""
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    fb_init: FBInit = Field("spatial", description="initial filter basis (spatial: IP starts as SP's function)")
    share: ShareMode = Field("layer", description="one FB per conv layer, or one per kernel size (network)")
    fb_lr_scale: float = Field(1.0, ge=0.0, description="learning rate of the FBs relative to the weights")
    fb_weight_decay: float = Field(0.0, ge=0.0, description="weight decay of the FBs")
    fb_in_budget: bool = Field(False, description="charge the FB entries to the coefficient budget")
COEF_SUFFIX = "parametrizations.weight.original"


def dct_basis(kernel_size: int) -> torch.Tensor:
    """Orthonormal 2-D DCT-II basis as a K^2 x K^2 matrix whose columns are the filters."""
    k = kernel_size
    idx = torch.arange(k, dtype=torch.float64)
    freq = idx[:, None]
    c = torch.cos(math.pi * (2 * idx[None, :] + 1) * freq / (2 * k))
    c[0] *= math.sqrt(1.0 / k)
    c[1:] *= math.sqrt(2.0 / k)
    # column n = (u, v) with n = u*K + v is the outer product of 1-D bases u and v
    return torch.kron(c, c).T.contiguous()


def random_orthogonal_basis(kernel_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    n = kernel_size * kernel_size
    a = torch.randn(n, n, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    # sign fix makes the draw Haar-distributed and deterministic for a given generator
    return q * torch.sign(torch.diagonal(r))[None, :]


def make_basis(kernel_size: int, fb_init: str, generator: torch.Generator | None = None) -> torch.Tensor:
    if fb_init == "spatial":
        return torch.eye(kernel_size * kernel_size, dtype=torch.float64)
    if fb_init == "dct":
        return dct_basis(kernel_size)
    if fb_init == "random_orthogonal":
        return random_orthogonal_basis(kernel_size, generator)
    raise ValueError(f"fb_init must be one of {FB_INITS}, got {fb_init!r}")


class FilterBasis(nn.Module):
    """A trainable K^2 x K^2 filter basis; columns are flattened K x K basis filters."""

    def __init__(self, kernel_size: int, fb_init: str = "spatial", generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.kernel_size = kernel_size
        self.fb_init = fb_init
        self.basis = nn.Parameter(make_basis(kernel_size, fb_init, generator).to(dtype))

    def filters(self) -> torch.Tensor:
        """The K^2 basis filters as a (K^2, K, K) tensor."""
        k = self.kernel_size
        return self.basis.T.reshape(k * k, k, k)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, fb_init={self.fb_init}"


class InterspaceWeight(nn.Module):
    """Parametrisation coefficients -> spatial weight, W = lambda . F^T."""

    def __init__(self, fb: FilterBasis):
        super().__init__()
        self.fb = fb

    def forward(self, coef: torch.Tensor) -> torch.Tensor:
        k2 = self.fb.basis.shape[0]
        if coef.dim() == 4 and not coef.is_contiguous() and coef.is_contiguous(memory_format=torch.channels_last):
            # channels_last model: W comes out in the same layout, so the conv needs no conversion
            # (W[o, :, i] = F lambda[o, :, i] for every filter; a permuted view, no copy of lambda)
            o, i, kh, kw = coef.shape
            rows = coef.permute(0, 2, 3, 1).reshape(o, k2, i)
            return (self.fb.basis @ rows).reshape(o, kh, kw, i).permute(0, 3, 1, 2)
        flat = coef.reshape(-1, k2) @ self.fb.basis.T
        return flat.reshape(coef.shape)

    @torch.no_grad()
    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        # lambda = F^{-1} h for every filter h (rows: lambda^T = h^T F^{-T})
        k2 = self.fb.basis.shape[0]
        basis = self.fb.basis.to(torch.float64)
        coef = torch.linalg.solve(basis, weight.reshape(-1, k2).to(torch.float64).T).T
        return coef.reshape(weight.shape).to(weight.dtype)


def is_interspace(module: nn.Module) -> bool:
    """Whether ``module``'s weight is the interspace product W = lambda . F^T (a converted conv)."""
    return (parametrize.is_parametrized(module, "weight")
            and any(isinstance(p, InterspaceWeight) for p in module.parametrizations.weight))


def why_spatial(module: nn.Module) -> str | None:
    """Why :func:`to_interspace` leaves this module's weight spatial, or None if it converts it."""
    if not isinstance(module, nn.Conv2d):
        return f"not a Conv2d ({type(module).__name__})"
    if is_interspace(module):
        return "already interspace"
    kh, kw = module.kernel_size
    if kh != kw:
        return f"kernel {kh}x{kw} is not square (a K^2 x K^2 basis needs a K x K kernel)"
    if kh == 1:
        return "1x1 kernel (its basis would be one number, the same function as its weight)"
    return None


def interspace_eligible(module: nn.Module) -> bool:
    """Conv2d layers with a square kernel K > 1 get an interspace form; others stay spatial."""
    return why_spatial(module) is None


def interspace_plan(model: nn.Module) -> dict[str, str]:
    """What :func:`to_interspace` does to each Conv2d of ``model``: ``"interspace"``, or why it stays spatial.

    Keys are module names (``""`` for the model itself), in module order.
    """
    return {name: why_spatial(module) or "interspace"
            for name, module in model.named_modules() if isinstance(module, nn.Conv2d)}


def _basis_of(module: nn.Module) -> FilterBasis:
    for p in module.parametrizations.weight:
        if isinstance(p, InterspaceWeight):
            return p.fb
    raise ValueError("module is not an interspace conv")


def to_interspace(model: nn.Module, fb_init: str = "spatial", share: str = "layer", inplace: bool = False,
                  generator: torch.Generator | None = None) -> nn.Module:
    """Rewrite every Conv2d with a K x K kernel (K > 1) as W = lambda . F^T.

    The network computes the same function afterwards (lambda = F^{-1} h).  ``fb_init``
    is the initial basis (``spatial``: the identity; ``dct``; ``random_orthogonal``, drawn
    from ``generator``); ``share`` is ``layer`` (one FB per conv) or ``network`` (one FB
    per kernel size).  Returns a converted copy, or ``model`` itself converted with
    ``inplace=True`` (the default of every conversion of this library: a copy).

    Which convs were converted and which were left spatial, and why, is logged on the
    ``ip`` logger (INFO) and given by :func:`interspace_plan` beforehand.
    """
    if fb_init not in FB_INITS:
        raise ValueError(f"fb_init must be one of {FB_INITS}, got {fb_init!r}")
    if share not in SHARE_MODES:
        raise ValueError(f"share must be one of {SHARE_MODES}, got {share!r}")
    if not inplace:
        model = copy.deepcopy(model)
    plan = interspace_plan(model)
    shared: dict[int, FilterBasis] = {}
    for _, module in list(model.named_modules()):
        if not interspace_eligible(module):
            continue
        k = module.kernel_size[0]
        dtype = module.weight.dtype
        if share == "network":
            if k not in shared:
                shared[k] = FilterBasis(k, fb_init, generator, dtype).to(module.weight.device)
            fb = shared[k]
        else:
            fb = FilterBasis(k, fb_init, generator, dtype).to(module.weight.device)
        parametrize.register_parametrization(module, "weight", InterspaceWeight(fb))
    guard_convs(model)      # the 1x1 convs it leaves spatial may reach a faulty oneDNN kernel (ip.onednn_guard)
    converted = [n for n, what in plan.items() if what == "interspace"]
    _log.info("to_interspace: %d of %d convs converted (fb_init=%s, share=%s)", len(converted), len(plan),
              fb_init, share)
    for name, why in plan.items():
        if why != "interspace":
            _log.info("to_interspace: %s left spatial: %s", name or "<model>", why)
    return model


def to_spatial(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Plain Conv2d weights W = lambda . F^T, parametrisations removed (for export/inference).

    The spatial weights are dense once the bases have trained; for sparse storage use
    :func:`ip.save_sparse`, for sparse inference :func:`ip.to_factorised`.  Returns a
    copy unless ``inplace``.
    """
    if not inplace:
        model = copy.deepcopy(model)
    for module in model.modules():
        if is_interspace(module):
            _own_parametrized_class(module)
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


def _own_parametrized_class(module: nn.Module) -> None:
    # deepcopy keeps torch's generated Parametrized<Conv2d> class shared between a module and
    # its copy, and remove_parametrizations deletes the ``weight`` property from that class:
    # exporting one of them would break the other.  Give the module a class of its own first.
    cls = type(module)
    namespace = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
    module.__class__ = type(cls.__name__, cls.__bases__, namespace)


def interspace_convs(model: nn.Module) -> Iterator[tuple[str, nn.Conv2d]]:
    for name, module in model.named_modules():
        if is_interspace(module):
            yield name, module


def filter_bases(model: nn.Module) -> dict[str, FilterBasis]:
    """Unique filter bases, keyed by the name of the first layer that uses each."""
    seen: dict[int, str] = {}
    out: dict[str, FilterBasis] = {}
    for name, conv in interspace_convs(model):
        fb = _basis_of(conv)
        if id(fb) not in seen:
            seen[id(fb)] = name
            out[name] = fb
    return out


def basis_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The filter-basis parameters of ``model``, each once (for an optimiser group of their own)."""
    return [fb.basis for fb in filter_bases(model).values()]


def basis_parameter_names(model: nn.Module) -> list[str]:
    ids = {id(p) for p in basis_parameters(model)}
    return [n for n, p in model.named_parameters() if id(p) in ids]


def fb_overhead_params(model: nn.Module) -> int:
    """Entries of all filter bases (K^4 per FB): the storage IP adds on top of lambda."""
    return sum(p.numel() for p in basis_parameters(model))


def coefficient(module: nn.Conv2d) -> torch.Tensor:
    """The stored tensor of a conv: lambda for an interspace conv, the weight otherwise."""
    if is_interspace(module):
        return module.parametrizations.weight.original
    return module.weight


def factorised_conv2d(x: torch.Tensor, coef: torch.Tensor, basis: torch.Tensor, bias: torch.Tensor | None = None,
                      stride=1, padding=0, dilation=1, groups: int = 1) -> torch.Tensor:
    """Convolution with W = lambda . F^T computed as the paper's factorised path.

    Every input channel is convolved with the K^2 basis filters (a depthwise conv),
    then a 1x1 convolution with the (sparse) coefficients combines the responses.
    Same output as ``conv2d(x, W)`` by linearity; its cost is what sparse IP inference
    pays (see :func:`ip.masks.cost_report`).
    """
    c_out, c_in_g, k, _ = coef.shape
    c_in = x.shape[1]
    k2 = k * k
    basis_filters = basis.T.reshape(k2, 1, k, k).repeat(c_in, 1, 1, 1)
    responses = F.conv2d(x, basis_filters, None, stride, padding, dilation, groups=c_in)
    mix = coef.reshape(c_out, c_in_g * k2, 1, 1)
    return F.conv2d(responses, mix, bias, groups=groups)


def factorised_forward(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Run an interspace conv through the factorised path."""
    if conv.padding_mode != "zeros":
        raise ValueError("factorised path supports padding_mode='zeros' only")
    fb = _basis_of(conv)
    return factorised_conv2d(x, coefficient(conv), fb.basis, conv.bias, conv.stride, conv.padding,
                             conv.dilation, conv.groups)
