"""Model registry: one call, ``get_model(name, ...)``, builds any network of the study."""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..onednn_guard import guard_convs

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    def deco(fn: Callable[..., nn.Module]):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn
    return deco


def available_models() -> list[str]:
    """Names :func:`get_model` accepts."""
    return sorted(_REGISTRY)


def get_model(name: str, num_classes: int = 10, in_channels: int = 3, width: int | None = None) -> nn.Module:
    """Build a registered model, randomly initialised.

    ``width`` is the base channel count (the model's default if None).  The model
    records its name and arguments in ``model.ip_arch``, from which
    :func:`ip.load_sparse` rebuilds it.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    kwargs = {"num_classes": num_classes, "in_channels": in_channels}
    if width is not None:
        kwargs["width"] = width
    model = _REGISTRY[name](**kwargs)
    # how to build it again (ip.save_sparse records it, ip.load_sparse rebuilds from it)
    model.ip_arch = {"name": name, "kwargs": kwargs}
    guard_convs(model)      # few-channel strided 1x1 shortcuts (width < 8) avoid a faulty oneDNN kernel
    return model


from . import cifar_resnet, vgg, torchvision_models  # noqa: E402,F401  (registration side effects)
