"""The networks of the paper's experiments (Wimmer et al. 2022: ResNet-32 and VGG-16 on
CIFAR-10, ResNet-18 and ResNet-50 on ImageNet) and the parameter cost of their filter bases
(claim C4: FB overhead at most 0.01 % of the dense parameters)."""
from __future__ import annotations

import torch

from .interspace import fb_overhead_params, to_interspace
from .models import get_model

# model, base width, input channels, classes
PAPER_NETWORKS = (("resnet32", 16, 3, 10), ("vgg16", 64, 3, 10), ("resnet18", 64, 3, 1000),
                  ("resnet50", 64, 3, 1000))


def fb_overhead_table(share: str = "layer") -> list[dict]:
    """Per paper network: dense parameters, FB entries with FB sharing ``share``, and their ratio."""
    rows = []
    for name, width, c_in, classes in PAPER_NETWORKS:
        with torch.device("meta"):   # shapes only: nothing is allocated or initialised
            model = to_interspace(get_model(name, classes, c_in, width), share=share)
        fb = fb_overhead_params(model)
        dense = sum(p.numel() for p in model.parameters()) - fb
        rows.append({"model": name, "width": width, "dense_params": dense, "fb_overhead_params": fb,
                     "fb_overhead_percent": 100.0 * fb / dense})
    return rows
