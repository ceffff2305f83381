"""Wall-clock time to compute each method's mask, SP vs IP.

ResNet-20 (width 16), one batch of 3x32x32 random images, sparsity 0.98 (defaults).
What is timed:

- PaI methods, rigl/set (ERK random start), gmp (dense start), dense: ``find_masks``.
- lt and oneshot: ``find_masks`` with a train_fn that takes ONE SGD step per call (lt
  calls it LotteryOptions.rounds times, oneshot once), so the time is the pruning logic plus
  those few steps, not a real training run.
- rigl/set/gmp also: one mask update of the training-time hook (``hook update``),
  after one forward/backward so RigL has its dense gradient.

Run by hand:  .venv/bin/python benchmarks/mask_time.py [--repeats 3] [--threads 1] [--csv out.csv]
"""
from __future__ import annotations

import argparse
import copy
import csv
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ip.interspace import to_interspace  # noqa: E402
from ip.masks import MaskEnforcer, mask_summary  # noqa: E402
from ip.models import get_model  # noqa: E402
from ip.pruning import METHODS, find_masks, make_train_hook, method_info  # noqa: E402


def one_step_train_fn(batch):
    x, y = batch

    def train_fn(model, masks, start_step=0, keep_step=None):
        kept = copy.deepcopy(model.state_dict()) if keep_step is not None else None
        enforcer = MaskEnforcer(model, masks)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        handle = enforcer.attach(optimizer)
        model.train()
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        handle.remove()
        enforcer.remove()
        return kept
    return train_fn


def build(representation: str, fb_init: str, width: int, seed: int):
    torch.manual_seed(seed)
    model = get_model("resnet20", num_classes=10, in_channels=3, width=width)
    return model if representation == "sp" else to_interspace(model, fb_init)


def time_hook(method, model, masks, batch, sparsity, interval):
    enforcer = MaskEnforcer(model, masks, keep_dense_grad=method_info(method).needs_dense_grad)
    hook = make_train_hook(method, model, masks, enforcer, total_steps=4 * interval, sparsity=sparsity,
                           generator=torch.Generator().manual_seed(0),
                           options={"interval": interval})  # rigl, set (DstOptions) and gmp (GmpOptions)
    x, y = batch
    F.cross_entropy(model(x), y).backward()
    step = interval if method != "gmp" else hook.start_step + interval
    start = time.perf_counter()
    hook.after_step(step)
    elapsed = time.perf_counter() - start
    enforcer.remove()
    return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.98)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--fb-init", default="spatial", help="IP filter-basis init (timing does not depend on it)")
    parser.add_argument("--repeats", type=int, default=1, help="median over this many runs")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(args.batch_size, 3, 32, 32, generator=g), torch.randint(0, 10, (args.batch_size,), generator=g))

    rows = []
    for method in args.methods:
        for representation in ("sp", "ip"):
            times, hook_times = [], []
            for r in range(args.repeats):
                model = build(representation, args.fb_init, args.width, seed=0)
                start = time.perf_counter()
                masks, _ = find_masks(method, model, args.sparsity, batches=[batch],
                                      generator=torch.Generator().manual_seed(r),
                                      train_fn=one_step_train_fn(batch), epochs=2)
                times.append(time.perf_counter() - start)
                if method_info(method).has_train_hook:
                    hook_times.append(time_hook(method, copy.deepcopy(model), masks, batch, args.sparsity, 10))
            summary = mask_summary(masks)
            rows.append({"method": method, "repr": representation, "seconds": statistics.median(times),
                         "hook_update_seconds": statistics.median(hook_times) if hook_times else None,
                         "kept": summary.kept_params, "collapsed_layers": len(summary.collapsed_layers)})
            print(f"  done {method:9s} {representation}", file=sys.stderr, flush=True)

    print(f"ResNet-20 width {args.width}, input 3x32x32, batch {args.batch_size}, sparsity {args.sparsity}, "
          f"IP fb_init={args.fb_init}, threads={args.threads}, median of {args.repeats}, torch {torch.__version__}")
    print("lt/oneshot include a 1-SGD-step train_fn per call (lt: rounds calls, oneshot: 1)")
    header = f"{'method':10s} {'SP s':>9s} {'IP s':>9s} {'IP/SP':>6s} {'SP hook s':>10s} {'IP hook s':>10s} {'kept':>7s} {'collapsed SP/IP':>16s}"
    print(header)
    print("-" * len(header))
    by_key = {(r["method"], r["repr"]): r for r in rows}
    for method in args.methods:
        sp, ip = by_key[(method, "sp")], by_key[(method, "ip")]
        hook = (f"{sp['hook_update_seconds']:10.4f} {ip['hook_update_seconds']:10.4f}"
                if sp["hook_update_seconds"] is not None else f"{'-':>10s} {'-':>10s}")
        print(f"{method:10s} {sp['seconds']:9.4f} {ip['seconds']:9.4f} {ip['seconds'] / sp['seconds']:6.2f} {hook} "
              f"{sp['kept']:7d} {str(sp['collapsed_layers']) + '/' + str(ip['collapsed_layers']):>16s}")
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
