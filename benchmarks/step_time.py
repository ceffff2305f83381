"""Training-step time of dense, SP-masked and IP-masked CIFAR ResNet-20 (claim C4: equal runtime).

One step is forward + backward + SGD step (momentum 0.9, Nesterov, weight decay 5e-4) on a
fixed batch.  SP is the plain network with a ``MaskEnforcer`` (gradient hooks and the
post-step re-masking attached to the optimiser); IP is the same network after
``to_interspace`` (W = lambda . F^T rebuilt every forward) with the same kind of enforcer on
lambda.  Random masks at the given sparsity.  After warm-up, the three variants are timed
in turn inside every round (the order rotates per round) so that machine drift hits all of
them alike, and the medians are compared with the targets.

Both wall-clock and process CPU time are recorded per step.  On a shared machine (load
average above the core count, printed) wall-clock medians mostly measure the neighbours;
the CPU-time ratios are then the better estimate of the work a step does, and ``--threads 1``
avoids spinning OpenMP threads (on a 2-core machine at load 5, two threads made a step 4x
slower and its time spread 5x wider than one thread did).

    .venv/bin/python benchmarks/step_time.py [--batch-size 128] [--steps 20] [--width 16] [--threads N]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ip.interspace import to_interspace  # noqa: E402
from ip.masks import MaskEnforcer, masks_from_scores, prunable_parameters  # noqa: E402
from ip.models import get_model  # noqa: E402

TARGET_RATIO = 1.10
VARIANTS = ("dense", "sp", "ip")


def random_masks(model: torch.nn.Module, sparsity: float, seed: int):
    gen = torch.Generator().manual_seed(seed)
    scores = {n: torch.rand(p.shape, generator=gen) for n, p in prunable_parameters(model).items()}
    return masks_from_scores(scores, sparsity)


def build(variant: str, base: torch.nn.Module, sparsity: float, fb_init: str, device: torch.device):
    model = copy.deepcopy(base)
    if variant == "ip":
        to_interspace(model, fb_init=fb_init)
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    enforcer = None
    if variant != "dense":
        enforcer = MaskEnforcer(model, random_masks(model, sparsity, seed=1))
        enforcer.attach(opt)
    return model, opt, enforcer


def make_step(model, opt, x, y, device: torch.device):
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def step() -> tuple[float, float]:
        """(wall seconds, process CPU seconds) of one training step."""
        sync()
        wall, cpu = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        sync()
        return time.perf_counter() - wall, time.process_time() - cpu
    return step


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per variant first")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--sparsity", type=float, default=0.98)
    parser.add_argument("--fb-init", default="spatial", choices=("spatial", "dct", "random_orthogonal"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    base = get_model("resnet20", num_classes=10, in_channels=3, width=args.width)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (args.batch_size,), generator=gen).to(device)

    steps, keep_alive = {}, []
    for variant in VARIANTS:
        model, opt, enforcer = build(variant, base, args.sparsity, args.fb_init, device)
        keep_alive.append(enforcer)
        steps[variant] = make_step(model, opt, x, y, device)
    for variant in VARIANTS:
        for _ in range(args.warmup):
            steps[variant]()

    load_before = os.getloadavg()[0]
    wall = {v: [] for v in VARIANTS}
    cpu = {v: [] for v in VARIANTS}
    for i in range(args.steps):
        order = VARIANTS[i % 3:] + VARIANTS[:i % 3]
        for variant in order:
            w, c = steps[variant]()
            wall[variant].append(w)
            cpu[variant].append(c)
    load_after = os.getloadavg()[0]

    medians = {v: statistics.median(t) for v, t in wall.items()}
    cpu_medians = {v: statistics.median(t) for v, t in cpu.items()}

    def ratios_of(m):
        return {"ip/sp": m["ip"] / m["sp"], "sp/dense": m["sp"] / m["dense"]}

    ratios, cpu_ratios = ratios_of(medians), ratios_of(cpu_medians)
    result = {
        "device": str(device), "threads": torch.get_num_threads(), "batch_size": args.batch_size,
        "width": args.width, "sparsity": args.sparsity, "fb_init": args.fb_init, "steps": args.steps,
        "median_s": medians, "min_s": {v: min(t) for v, t in wall.items()}, "cpu_median_s": cpu_medians,
        "ratios": ratios, "cpu_ratios": cpu_ratios, "target_ratio": TARGET_RATIO,
        "load_average": [load_before, load_after], "cpu_count": os.cpu_count(),
    }
    print(f"ResNet-20 width {args.width}, batch {args.batch_size}, 3x32x32, sparsity {args.sparsity}, "
          f"device {device}, {torch.get_num_threads()} threads, {args.steps} timed steps per variant")
    print(f"  load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} cores"
          + ("  (shared machine: wall times are noisy, see CPU time)" if max(load_before, load_after)
             > (os.cpu_count() or 1) else ""))
    for v in VARIANTS:
        t = sorted(wall[v])
        print(f"  {v:6s} median {1e3 * medians[v]:8.1f} ms   (min {1e3 * t[0]:8.1f}, max {1e3 * t[-1]:8.1f})"
              f"   CPU-time median {1e3 * cpu_medians[v]:8.1f} ms")
    for name in ratios:
        for label, value in (("wall", ratios[name]), ("CPU ", cpu_ratios[name])):
            verdict = "meets" if value <= TARGET_RATIO else "MISSES"
            print(f"  {name:9s} {label} {value:6.3f}   target <= {TARGET_RATIO:.2f}: {verdict}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
