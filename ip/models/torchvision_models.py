"""torchvision's ImageNet ResNets through the same registry (random init, no hub weights).

torchvision is imported when such a model is built, not at `import ip` (it costs a second).
"""
from __future__ import annotations

from torch import nn

from . import register_model


def _torchvision_resnet(name: str, num_classes: int, in_channels: int, width: int = 64) -> nn.Module:
    if width != 64:
        raise ValueError("torchvision ResNets have a fixed width of 64")
    from torchvision import models as tvm
    model = getattr(tvm, name)(weights=None, num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


register_model("resnet18")(lambda num_classes=1000, in_channels=3, width=64:
                           _torchvision_resnet("resnet18", num_classes, in_channels, width))
register_model("resnet50")(lambda num_classes=1000, in_channels=3, width=64:
                           _torchvision_resnet("resnet50", num_classes, in_channels, width))
