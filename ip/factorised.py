"""Sparse inference along the factorised path of interspace convs (the paper's Fig. 1).

An interspace conv computes ``conv2d(x, W)`` with ``W = lambda . F^T``.  By linearity the
same output is: convolve every input channel with the K^2 basis filters (a depthwise
conv), then combine those responses with the coefficients lambda as a 1x1 convolution.
When lambda is sparse, both stages shrink: only the (input channel, basis filter) pairs
that some kept coefficient uses need a response, and the 1x1 combination multiplies the
kept coefficients only.  :class:`FactorisedConv2d` computes exactly that; its
multiply-accumulates are what :func:`ip.cost_report` counts as ``flops_sparse`` for an
interspace conv.  :func:`to_factorised` swaps every interspace conv of a model for one.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .interspace import _basis_of, coefficient, interspace_convs


class FactorisedConv2d(nn.Module):
    """An interspace conv as a sparse two-stage computation (inference; no gradients to lambda's zeros).

    Buffers: ``basis_filters`` (P, 1, K, K), the basis filter of each used (input channel,
    basis filter) pair; ``pair_channel`` (P,), the input channel of each pair; ``values``
    (Z,), the kept coefficients; ``value_pair`` and ``value_out`` (Z,), the pair each
    coefficient reads and the output channel it writes.  Built by :meth:`from_conv`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride=(1, 1), padding=(0, 0),
                 dilation=(1, 1), padding_mode: str = "zeros", num_pairs: int = 0, num_values: int = 0,
                 bias: bool = False, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.dilation = tuple(stride), tuple(padding), tuple(dilation)
        self.padding_mode = padding_mode
        k = kernel_size
        self.register_buffer("basis_filters", torch.zeros(num_pairs, 1, k, k, dtype=dtype))
        self.register_buffer("pair_channel", torch.zeros(num_pairs, dtype=torch.long))
        self.register_buffer("values", torch.zeros(num_values, dtype=dtype))
        self.register_buffer("value_pair", torch.zeros(num_values, dtype=torch.long))
        self.register_buffer("value_out", torch.zeros(num_values, dtype=torch.long))
        self.bias = nn.Parameter(torch.zeros(out_channels, dtype=dtype)) if bias else None

    @classmethod
    @torch.no_grad()
    def from_conv(cls, conv: nn.Conv2d, mask: torch.Tensor | None = None) -> "FactorisedConv2d":
        """The factorised form of an interspace conv; ``mask`` (default: lambda's non-zeros) selects what is kept."""
        coef = coefficient(conv).detach()
        basis = _basis_of(conv).basis.detach()
        c_out, c_in_g, k, _ = coef.shape
        groups = conv.groups
        k2 = k * k
        keep = (coef != 0) if mask is None else mask.to(device=coef.device, dtype=torch.bool)
        # kept coefficient (o, j, n): output o, input channel g(o) * c_in_g + j, basis filter n
        o, j, n = keep.reshape(c_out, c_in_g, k2).nonzero(as_tuple=True)
        channel = (o // (c_out // groups)) * c_in_g + j
        pair_id = channel * k2 + n
        pairs, value_pair = torch.unique(pair_id, return_inverse=True)     # used pairs, sorted
        padding = (0, 0) if isinstance(conv.padding, str) else conv.padding
        if isinstance(conv.padding, str) and conv.padding == "same":
            raise ValueError(f"{conv}: padding='same' has no factorised form here; give the padding as numbers")
        module = cls(conv.in_channels, c_out, k, conv.stride, padding, conv.dilation, conv.padding_mode,
                     len(pairs), len(o), conv.bias is not None, coef.dtype).to(coef.device)
        filters = basis.T.reshape(k2, k, k)                                 # filter n is column n of F
        module.basis_filters.copy_(filters[pairs % k2].unsqueeze(1))
        module.pair_channel.copy_(pairs // k2)
        module.values.copy_(coef.reshape(c_out, c_in_g, k2)[o, j, n])
        module.value_pair.copy_(value_pair)
        module.value_out.copy_(o)
        if conv.bias is not None:
            module.bias.copy_(conv.bias)
        return module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padding = self.padding
        if self.padding_mode != "zeros":
            ph, pw = self.padding
            x = F.pad(x, [pw, pw, ph, ph], mode=self.padding_mode)
            padding = (0, 0)
        # stage 1: each used (channel, basis filter) pair, a depthwise conv of one channel
        responses = F.conv2d(x.index_select(1, self.pair_channel), self.basis_filters, None, self.stride,
                             padding, self.dilation, groups=self.basis_filters.shape[0])
        # stage 2: out[:, o] += lambda * response[:, pair], one term per kept coefficient
        terms = responses.index_select(1, self.value_pair) * self.values.reshape(1, -1, 1, 1)
        out = responses.new_zeros(responses.shape[0], self.out_channels, responses.shape[2], responses.shape[3])
        out = out.index_add(1, self.value_out, terms)
        if self.bias is not None:
            out = out + self.bias.reshape(1, -1, 1, 1)
        return out

    def macs(self, output_pixels: int) -> int:
        """Multiply-accumulates per sample for ``output_pixels`` = H_out * W_out (both stages)."""
        k2 = self.kernel_size * self.kernel_size
        return (self.basis_filters.shape[0] * k2 + self.values.numel()) * output_pixels

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, pairs={self.basis_filters.shape[0]}, kept={self.values.numel()}")


def to_factorised(model: nn.Module, masks: dict[str, torch.Tensor] | None = None, inplace: bool = False) -> nn.Module:
    """``model`` with every interspace conv replaced by a :class:`FactorisedConv2d` (for inference).

    ``masks`` (keyed as :func:`ip.prunable_parameters` names them) say which coefficients are
    kept; without them, the non-zero ones.  Other layers are left as they are.  Returns a
    copy unless ``inplace``.
    """
    if not inplace:
        model = copy.deepcopy(model)
    from .interspace import COEF_SUFFIX
    for name, conv in list(interspace_convs(model)):
        mask = None if masks is None else masks.get(f"{name}.{COEF_SUFFIX}" if name else COEF_SUFFIX)
        if not name:
            raise ValueError("to_factorised needs a model that contains the conv, not the conv itself; "
                             "use FactorisedConv2d.from_conv")
        factorised = FactorisedConv2d.from_conv(conv, mask)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, factorised)
    return model
