"""Training-step time of dense, SP-masked and IP-masked ResNet-20 (claim C4: equal runtime),
per precision (fp32, bf16 autocast), memory format (contiguous, channels_last) and execution
mode (eager, or the forward compiled by ``torch.compile``; its first step, the compilation, is
reported apart and never counted in the medians).

One step is what :class:`ip.train.Trainer` does: forward and loss inside the precision's
autocast context (:func:`ip.train.autocast_context`), backward, SGD step (momentum 0.9,
Nesterov, weight decay 5e-4) on a fixed batch, with fp32 weights and optimizer state.
SP is the plain network with a ``MaskEnforcer`` (gradient hooks and the post-step
re-masking attached to the optimiser); IP is the same network after ``to_interspace``
(W = lambda . F^T rebuilt every forward) with the same kind of enforcer on lambda.  Masks
are random (default) or SNIP at the given sparsity.  Within one setting (width, precision,
format), after warm-up the three variants are timed in turn inside every round (the order
rotates per round) so that machine drift hits all of them alike; medians are compared.

Both wall-clock and process CPU time are recorded per step.  On a shared machine (load
average above the core count, printed) wall-clock medians mostly measure the neighbours;
the CPU-time ratios are then the better estimate of the work a step does, and ``--threads 1``
avoids spinning OpenMP threads.  ``--breakdown`` profiles a few more steps of every variant and
prints the shares of its CPU time spent in convolutions, batch norm, ReLU and everything else
(forward and backward together): the bound on what fusing the cheap operators could save.

    .venv/bin/python benchmarks/step_time.py [--widths 8 16] [--batch-size 128] [--input-shape 1 28 28]
        [--precisions fp32 bf16] [--formats contiguous channels_last] [--modes eager compiled]
        [--mask random|snip] [--steps 12] [--breakdown]
"""
from __future__ import annotations

import argparse
import copy
import itertools
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
from ip.pruning.pai import snip_scores  # noqa: E402
from ip.train import autocast_context  # noqa: E402

TARGET_RATIO = 1.10
VARIANTS = ("dense", "sp", "ip")
PRECISIONS = ("fp32", "bf16")
FORMATS = ("contiguous", "channels_last")
MODES = ("eager", "compiled")
# operator families of --breakdown: a profiler event belongs to the first family its name contains
# (the kernels torch.compile generates are not named after what they fuse: in the compiled mode they,
# batch norm and ReLU included, count as "other")
OP_FAMILIES = (("convolution", ("convolution",)), ("batch norm", ("batch_norm",)),
               ("relu", ("relu", "threshold", "clamp_min")))


def find_masks(model: torch.nn.Module, sparsity: float, kind: str, x: torch.Tensor, y: torch.Tensor, seed: int):
    """Random or SNIP masks of ``model`` (its own representation); the kind does not change
    the work of a step, only which entries are zero."""
    if kind == "random":
        gen = torch.Generator().manual_seed(seed)
        scores = {n: torch.rand(p.shape, generator=gen) for n, p in prunable_parameters(model).items()}
    else:
        scores = snip_scores(model, [(x, y)])
    return masks_from_scores(scores, sparsity)


def build(variant: str, base: torch.nn.Module, sparsity: float, mask_kind: str, fb_init: str,
          channels_last: bool, device: torch.device, x: torch.Tensor, y: torch.Tensor):
    model = copy.deepcopy(base)
    if variant == "ip":
        to_interspace(model, fb_init=fb_init)
    model.to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    enforcer = None
    if variant != "dense":
        enforcer = MaskEnforcer(model, find_masks(model, sparsity, mask_kind, x, y, seed=1))
        enforcer.attach(opt)
    return model, opt, enforcer


def make_step(model, opt, x, y, device: torch.device, precision: str, compiled: bool = False):
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    forward = torch.compile(model) if compiled else model

    def step() -> tuple[float, float]:
        """(wall seconds, process CPU seconds) of one training step."""
        sync()
        wall, cpu = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        with autocast_context(device, precision):
            loss = F.cross_entropy(forward(x), y)
        loss.backward()
        opt.step()
        sync()
        return time.perf_counter() - wall, time.process_time() - cpu
    return step


def op_shares(step, steps: int = 3) -> dict:
    """Shares of the self CPU time of ``steps`` calls of ``step`` per operator family of OP_FAMILIES
    (the rest under "other")."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    totals = dict.fromkeys([name for name, _ in OP_FAMILIES] + ["other"], 0.0)
    for event in prof.key_averages():   # self times: every microsecond counted once
        key = event.key.lower()
        family = next((name for name, keys in OP_FAMILIES if any(k in key for k in keys)), "other")
        totals[family] += event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {name: value / whole for name, value in totals.items()}


def time_setting(width: int, precision: str, memory_format: str, mode: str, args, device: torch.device) -> dict:
    """Median step times of dense, SP and IP in one setting (variants interleaved)."""
    torch.manual_seed(0)
    channels, height, width_px = args.input_shape
    base = get_model("resnet20", num_classes=10, in_channels=channels, width=width)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, channels, height, width_px, generator=gen).to(device)
    y = torch.randint(0, 10, (args.batch_size,), generator=gen).to(device)
    channels_last = memory_format == "channels_last"
    x_step = x.contiguous(memory_format=torch.channels_last) if channels_last else x

    steps, keep_alive = {}, []
    for variant in VARIANTS:
        model, opt, enforcer = build(variant, base, args.sparsity, args.mask, args.fb_init, channels_last,
                                     device, x, y)
        keep_alive.append(enforcer)
        steps[variant] = make_step(model, opt, x_step, y, device, precision, compiled=mode == "compiled")
    first = {}
    for variant in VARIANTS:
        first[variant] = steps[variant]()[0]  # compiles in the compiled mode
        for _ in range(args.warmup):
            steps[variant]()

    wall = {v: [] for v in VARIANTS}
    cpu = {v: [] for v in VARIANTS}
    for i in range(args.steps):
        order = VARIANTS[i % 3:] + VARIANTS[:i % 3]
        for variant in order:
            w, c = steps[variant]()
            wall[variant].append(w)
            cpu[variant].append(c)
    medians = {v: statistics.median(t) for v, t in wall.items()}
    cpu_medians = {v: statistics.median(t) for v, t in cpu.items()}
    shares = {v: op_shares(steps[v]) for v in VARIANTS} if args.breakdown else None
    return {"width": width, "precision": precision, "memory_format": memory_format, "mode": mode,
            "first_step_s": first, "op_shares": shares, "median_s": medians, "cpu_median_s": cpu_medians,
            "min_s": {v: min(t) for v, t in wall.items()}, "max_s": {v: max(t) for v, t in wall.items()},
            "ratios": ratios_of(medians), "cpu_ratios": ratios_of(cpu_medians)}


def ratios_of(medians: dict) -> dict:
    return {"ip/sp": medians["ip"] / medians["sp"], "sp/dense": medians["sp"] / medians["dense"]}


def flag(value: float) -> str:
    return " !" if value > TARGET_RATIO else "  "


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--input-shape", type=int, nargs=3, default=[1, 28, 28], metavar=("C", "H", "W"))
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--modes", nargs="+", default=["eager"], choices=MODES,
                        help="eager, and/or the model's forward compiled by torch.compile")
    parser.add_argument("--breakdown", action="store_true",
                        help="also print each variant's CPU-time shares per operator family")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per variant and setting")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--sparsity", type=float, default=0.98)
    parser.add_argument("--mask", default="random", choices=("random", "snip"))
    parser.add_argument("--fb-init", default="spatial", choices=("spatial", "dct", "random_orthogonal"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    load_before = os.getloadavg()[0]
    settings = []
    for width, precision, memory_format, mode in itertools.product(args.widths, args.precisions, args.formats,
                                                                   args.modes):
        settings.append(time_setting(width, precision, memory_format, mode, args, device))
    load_after = os.getloadavg()[0]

    shape = "x".join(str(v) for v in args.input_shape)
    print(f"ResNet-20, batch {args.batch_size}, {shape}, {args.mask} mask at sparsity {args.sparsity}, device {device}, "
          f"{torch.get_num_threads()} threads, {args.steps} timed steps per variant; median ms per step; "
          f"'!' marks a ratio above {TARGET_RATIO:.2f}")
    print(f"load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} cores"
          + ("  (shared machine: wall times are noisy, see the CPU-time ratios)"
             if max(load_before, load_after) > (os.cpu_count() or 1) else ""))
    header = (f"{'width':>5} {'precision':>9} {'format':>13} {'mode':>8} | {'dense':>7} {'SP':>7} {'IP':>7} | "
              f"{'IP/SP':>7} {'SP/dense':>9} | {'CPU IP/SP':>10} {'CPU SP/dense':>13}")
    print(header)
    print("-" * len(header))
    for s in settings:
        m, r, c = s["median_s"], s["ratios"], s["cpu_ratios"]
        print(f"{s['width']:>5} {s['precision']:>9} {s['memory_format']:>13} {s['mode']:>8} | "
              f"{1e3 * m['dense']:7.1f} {1e3 * m['sp']:7.1f} {1e3 * m['ip']:7.1f} | "
              f"{r['ip/sp']:5.2f}{flag(r['ip/sp'])} {r['sp/dense']:7.2f}{flag(r['sp/dense'])} | "
              f"{c['ip/sp']:8.2f}{flag(c['ip/sp'])} {c['sp/dense']:11.2f}{flag(c['sp/dense'])}")
    # the speed-up of each setting over the fp32 contiguous eager step of the same variant
    reference = {s["width"]: s for s in settings
                 if (s["precision"], s["memory_format"], s["mode"]) == ("fp32", "contiguous", "eager")}
    if reference:
        print("speed-up over fp32 contiguous eager (median step time ratio, >1 is faster):")
        for s in settings:
            ref = reference.get(s["width"])
            if ref is None or ref is s:
                continue
            ups = "  ".join(f"{v} {ref['median_s'][v] / s['median_s'][v]:.2f}x" for v in VARIANTS)
            print(f"  width {s['width']:>2} {s['precision']:>4} {s['memory_format']:>13} {s['mode']:>8}: {ups}")
    compiled = [s for s in settings if s["mode"] == "compiled"]
    if compiled:
        print("first step of the compiled mode (compilation included, not in the medians), s:")
        for s in compiled:
            firsts = "  ".join(f"{v} {s['first_step_s'][v]:.1f}" for v in VARIANTS)
            print(f"  width {s['width']:>2} {s['precision']:>4} {s['memory_format']:>13}: {firsts}")
    if args.breakdown:
        print("share of a step's CPU time per operator family (forward and backward):")
        for s in settings:
            for v in VARIANTS:
                shares = "  ".join(f"{name} {100 * share:4.1f} %" for name, share in s["op_shares"][v].items())
                print(f"  width {s['width']:>2} {s['precision']:>4} {s['memory_format']:>13} {s['mode']:>8} "
                      f"{v:>5}: {shares}")
    result = {"device": str(device), "threads": torch.get_num_threads(), "batch_size": args.batch_size,
              "input_shape": args.input_shape, "sparsity": args.sparsity, "mask": args.mask,
              "fb_init": args.fb_init, "steps": args.steps, "target_ratio": TARGET_RATIO, "settings": settings,
              "load_average": [load_before, load_after], "cpu_count": os.cpu_count()}
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
