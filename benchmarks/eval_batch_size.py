"""Which batch size makes evaluation cheapest?  Forward time per image of a network in eval
mode (``torch.inference_mode``), by batch size and thread count.

The final evaluation of a run forwards ``data.train_eval_samples`` training images and the
whole test split; per-epoch evaluation and BN recalibration forward more.  Large batches
are not faster on a CPU: activations of a batch of 1 000 28x28 images at width 16 no longer
fit in the caches.  ``train.eval_batch_size`` is chosen from this table.

    .venv/bin/python benchmarks/eval_batch_size.py [--width 16] [--threads 1 2]
        [--batch-sizes 64 128 256 512 1000] [--images 4000] [--repr sp ip]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ip.interspace import to_interspace  # noqa: E402
from ip.models import get_model  # noqa: E402


def ms_per_image(model: torch.nn.Module, x: torch.Tensor, batch_size: int, repeats: int) -> float:
    """Median over ``repeats`` passes of the wall time per image of forwarding ``x`` in batches."""
    times = []
    with torch.inference_mode():
        model(x[:batch_size])   # warm-up: kernels chosen, caches filled
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, x.shape[0], batch_size):
                model(x[i:i + batch_size])
            times.append((time.perf_counter() - start) / x.shape[0])
    return 1000.0 * statistics.median(times)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1000])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--repr", nargs="+", default=["sp", "ip"], dest="reprs")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    x = torch.randn(args.images, 1, 28, 28)
    rows = []
    print(f"{args.model} width {args.width}, {args.images} images 1x28x28, eval mode, median of {args.repeats}")
    print(f"{'repr':4s} {'threads':>7s} " + " ".join(f"{f'bs {b}':>9s}" for b in args.batch_sizes) + "   (ms/image)")
    for repr_ in args.reprs:
        model = get_model(args.model, 10, 1, args.width).eval()
        if repr_ == "ip":
            to_interspace(model)
        for threads in args.threads:
            torch.set_num_threads(threads)
            cells = []
            for batch_size in args.batch_sizes:
                ms = ms_per_image(model, x, batch_size, args.repeats)
                rows.append({"repr": repr_, "threads": threads, "batch_size": batch_size, "ms_per_image": ms})
                cells.append(f"{ms:9.3f}")
            print(f"{repr_:4s} {threads:7d} " + " ".join(cells), flush=True)
    return rows


if __name__ == "__main__":
    main()
