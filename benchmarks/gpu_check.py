"""A few minutes on a CUDA machine: throughput of SP and IP training steps at paper scale.

Two models, each as SP (plain conv, random 90 % mask enforced) and IP (``to_interspace``,
the same kind of mask on lambda), trained on synthetic data (nothing is downloaded):

- the CIFAR-10 ResNet-32 preset's model, width and batch size on 3x32x32;
- torchvision's ResNet-50 (``ip.models`` "resnet50", random init) on 3x224x224, batch 64;

both with the preset's ``train.precision`` and ``train.channels_last``, in the Trainer's
step (:func:`ip.train.autocast_context` around forward and loss, fp32 weights, SGD with
momentum).  SP and IP alternate in blocks of steps so that clock and thermal drift hit
both alike.  Printed: images/s of each and the IP/SP step-time ratio (claim C4 expects
about 1).  Without CUDA it prints one line saying so and exits 0.

    .venv/bin/python benchmarks/gpu_check.py [--preset presets/cifar10_resnet32.yaml] [--steps 300]
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ip.interspace import to_interspace  # noqa: E402
from ip.masks import MaskEnforcer, masks_from_scores, prunable_parameters  # noqa: E402
from ip.models import get_model  # noqa: E402
from ip.train import autocast_context  # noqa: E402

SPARSITY = 0.9
BLOCKS = 4   # SP and IP alternate this many times


def random_masks(model: torch.nn.Module, sparsity: float, seed: int):
    gen = torch.Generator().manual_seed(seed)
    scores = {n: torch.rand(p.shape, generator=gen) for n, p in prunable_parameters(model).items()}
    return masks_from_scores(scores, sparsity)


class Variant:
    """One network (SP or IP) with its optimizer, mask enforcer and a fixed batch on the GPU."""

    def __init__(self, base: torch.nn.Module, representation: str, x: torch.Tensor, y: torch.Tensor,
                 precision: str, channels_last: bool, device: torch.device):
        model = copy.deepcopy(base)
        if representation == "ip":
            to_interspace(model)
        model.to(device).train()
        if channels_last:
            model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        self.model, self.x, self.y = model, x, y
        self.precision, self.device = precision, device
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        self.enforcer = MaskEnforcer(model, random_masks(model, SPARSITY, seed=1))
        self.enforcer.attach(self.optimizer)
        self.seconds = 0.0
        self.steps = 0

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with autocast_context(self.device, self.precision):
            loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.optimizer.step()

    def timed(self, steps: int) -> None:
        torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - start
        self.steps += steps


def check(name: str, base: torch.nn.Module, input_shape: tuple[int, ...], num_classes: int, batch_size: int,
          steps: int, warmup: int, precision: str, channels_last: bool, device: torch.device) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, *input_shape, generator=gen).to(device)
    y = torch.randint(0, num_classes, (batch_size,), generator=gen).to(device)
    variants = {r: Variant(base, r, x, y, precision, channels_last, device) for r in ("sp", "ip")}
    for v in variants.values():
        for _ in range(warmup):
            v.step()
    block = max(1, steps // BLOCKS)
    for _ in range(BLOCKS):
        for v in variants.values():
            v.timed(block)
    step_s = {r: v.seconds / v.steps for r, v in variants.items()}
    shape = "x".join(str(s) for s in input_shape)
    print(f"{name:9s} {shape:>9s} batch {batch_size:4d} {precision} "
          f"{'channels_last' if channels_last else 'contiguous':13s} | "
          f"SP {batch_size / step_s['sp']:9.0f} img/s ({1e3 * step_s['sp']:6.1f} ms)  "
          f"IP {batch_size / step_s['ip']:9.0f} img/s ({1e3 * step_s['ip']:6.1f} ms)  "
          f"IP/SP step time {step_s['ip'] / step_s['sp']:.3f}  ({variants['sp'].steps} steps each)", flush=True)
    del variants
    torch.cuda.empty_cache()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", type=Path, default=ROOT / "presets" / "cifar10_resnet32.yaml")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per variant, CIFAR model")
    parser.add_argument("--resnet50-steps", type=int, default=100, help="timed steps per variant, ResNet-50")
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device on this machine; nothing to measure")
        return 0

    preset = yaml.safe_load(args.preset.read_text())
    train = preset["train"]
    precision, channels_last = train.get("precision", "fp32"), bool(train.get("channels_last", False))
    device = torch.device("cuda", torch.cuda.current_device())
    torch.backends.cudnn.benchmark = True   # fixed shapes: let cuDNN pick its fastest kernels once
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, preset {args.preset.name}, "
          f"random {SPARSITY:.0%} masks, synthetic data")
    torch.manual_seed(0)
    cifar = get_model(preset["model"]["name"], 10, 3, preset["model"].get("width"))
    check(preset["model"]["name"], cifar, (3, 32, 32), 10, int(train["batch_size"]), args.steps, args.warmup,
          precision, channels_last, device)
    torch.manual_seed(0)
    check("resnet50", get_model("resnet50", 1000, 3), (3, 224, 224), 1000, 64, args.resnet50_steps,
          args.warmup, precision, channels_last, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
