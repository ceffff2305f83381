"""CIFAR-style VGG with batch norm (as used by SNIP/GraSP/SynFlow studies): one linear head."""
from __future__ import annotations

from torch import nn

from . import register_model

CONFIGS = {
    11: [1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8],
    16: [1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8],
    19: [1, 1, "M", 2, 2, "M", 4, 4, 4, 4, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8],
}


class VGG(nn.Module):
    """``width`` is the channel count of the first block (64 in the original)."""

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3, width: int = 64):
        super().__init__()
        layers, c = [], in_channels
        for v in CONFIGS[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                out = v * width
                layers += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
                c = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


for _depth in CONFIGS:
    register_model(f"vgg{_depth}")(
        lambda num_classes=10, in_channels=3, width=64, _d=_depth: VGG(_d, num_classes, in_channels, width))
