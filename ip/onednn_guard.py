"""A guard around a defect of oneDNN's 1x1 convolution backward on x86 CPUs.

PyTorch's CPU convolution runs on oneDNN.  For a 1x1 convolution with a stride above 1
and 2 to 7 input channels per group, in the channels_last format, oneDNN picks its
``jit_1x1:avx2`` backward-weights kernel on processors without AVX-512, and that
kernel writes outside its buffers: on one thread the heap is corrupted (the process
aborts, sooner or later), on several threads the weight gradient comes back wrong
without a word.  Measured with torch 2.13.0, 2.14.1 and 2.15.0 (oneDNN 3.12-3.13) on
an AMD EPYC whose ATen CPU capability is ``AVX2``; ``benchmarks/onednn_1x1.py`` prints
the table of shapes, formats and thread counts that reach it.  One channel, 8 or more
channels, stride 1, the contiguous format and 3x3 kernels run clean.

A channels_last input need not be asked for: a batch with one channel whose strides
are those of channels_last (e.g. after a crop done in NHWC) makes oneDNN run the whole
network in channels_last.

The guard is confined to the convolutions that can reach that kernel, whatever the
processor, format and thread count (the rule is :func:`reaches_faulty_kernel`): they
compute the same function as a strided slice and a matrix product, which never calls
oneDNN's convolution.  Every other convolution keeps oneDNN, and so does every input
that oneDNN does not run (float64, or off the CPU).  :func:`guard_convs`
applies it to a model; :func:`ip.get_model`, :func:`ip.to_interspace` and the
:class:`ip.train.Trainer` call it, so a model built, converted or trained by this
library is guarded without asking.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# in channels per group from which the kernel computes correctly (its AVX2 block is 8 channels)
SAFE_IN_CHANNELS = 8
# the dtypes whose CPU convolutions run on oneDNN (float64 takes ATen's own im2col path)
ONEDNN_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def reaches_faulty_kernel(kernel_size, stride, in_channels_per_group: int) -> bool:
    """Whether a conv of this shape can reach oneDNN's faulty 1x1 backward-weights kernel.

    Deliberately wider than what was seen to fail (in channels 2-7, channels_last): one
    input channel and the contiguous format are included too, since the format oneDNN
    picks follows the strides of whatever tensor arrives, and those few-channel 1x1
    layers cost next to nothing on either path.
    """
    return (tuple(kernel_size) == (1, 1) and tuple(stride) != (1, 1)
            and in_channels_per_group < SAFE_IN_CHANNELS)


def pointwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride, padding,
                     groups: int = 1) -> torch.Tensor:
    """A 1x1 convolution (zero padding, any stride and groups) as a strided slice and a matrix product.

    Same function as ``F.conv2d`` for a 1x1 kernel; its backward is a matrix product too,
    so no oneDNN convolution kernel runs.  The output has the input's memory format.
    """
    ph, pw = padding
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph))
    sh, sw = stride
    xs = x[:, :, ::sh, ::sw]
    n, c, h, w = xs.shape
    out_channels = weight.shape[0]
    w_groups = weight.reshape(groups, out_channels // groups, c // groups)
    y = torch.einsum("goc,ngchw->ngohw", w_groups, xs.reshape(n, groups, c // groups, h, w))
    y = y.reshape(n, out_channels, h, w)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    channels_last = x.stride(1) == 1 and x.is_contiguous(memory_format=torch.channels_last)
    return y.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class _GuardedForward:
    """Mixin: a Conv2d's ``_conv_forward`` on the guarded path on CPU, the class's own elsewhere."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if (input.device.type != "cpu" or input.dtype not in ONEDNN_DTYPES
                or not torch.backends.mkldnn.enabled):
            return super()._conv_forward(input, weight, bias)
        padding = (0, 0) if isinstance(self.padding, str) else self.padding   # 'valid' / 'same' are 0 for 1x1
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = (0, 0)
        return pointwise_conv2d(input, weight, bias, self.stride, padding, self.groups)


class GuardedConv2d(_GuardedForward, nn.Conv2d):
    """``nn.Conv2d`` whose forward avoids oneDNN's faulty 1x1 backward kernel (see the module docstring).

    Same parameters, buffers and state-dict keys as ``nn.Conv2d``; :func:`guard_convs`
    gives this class to the convs that need it.
    """


_GUARDED: dict[type, type] = {nn.Conv2d: GuardedConv2d}


def _guarded_class(cls: type) -> type:
    """``cls`` with the guarded forward mixed in (one class per ``cls``, reused)."""
    if issubclass(cls, _GuardedForward):
        return cls
    if cls not in _GUARDED:
        _GUARDED[cls] = type(f"Guarded{cls.__name__}", (_GuardedForward, cls), {"__module__": __name__})
    return _GUARDED[cls]


def is_guarded(module: nn.Module) -> bool:
    """Whether ``module``'s forward takes the guarded path."""
    return isinstance(module, _GuardedForward)


def guard_convs(model: nn.Module) -> list[str]:
    """Give every Conv2d of ``model`` that can reach the faulty kernel the guarded forward, in place.

    Returns the names of the guarded layers (those guarded before included).  Parameters,
    buffers and state-dict keys do not change; the layers compute the same function.
    """
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d):
            continue
        if reaches_faulty_kernel(module.kernel_size, module.stride, module.in_channels // module.groups):
            module.__class__ = _guarded_class(type(module))
            names.append(name)
    return names
