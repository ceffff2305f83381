"""Why GMP ranks where it does in a one-epoch run: test accuracy of GMP (SP, and IP) under the
default schedule and under pruning windows that leave more of training to recover, with the
default study's data, model, learning-rate schedule and sparsity (params.yaml).

Each variant changes only ``prune.gmp`` (start_fraction, end_fraction, interval), so the
comparison says whether the pruning window, not the method, sets GMP's accuracy here.
The runs go over ``--workers`` processes of one thread each.

    python benchmarks/gmp_schedule.py [--seeds 0] [--reprs sp] [--workers 2]
"""
from __future__ import annotations

import argparse
import dataclasses

from ip.experiment import run_experiment
from ip.parallel import run_jobs
from pipeline.common import load_init, prepared, run_spec
from study.params import load_params

#: (start_fraction, end_fraction, interval): the default first, then earlier ends
WINDOWS = ((0.1, 0.75, 10), (0.05, 0.5, 8), (0.02, 0.3, 5))


def one_run(p, repr_: str, seed: int, window: tuple) -> dict:
    start, end, interval = window
    spec = run_spec(p, "gmp", repr_, seed)
    options = spec.options.model_copy(update={"start_fraction": start, "end_fraction": end, "interval": interval})
    spec = dataclasses.replace(spec, options=options)
    metrics, _ = run_experiment(spec, load_init(seed), prepared())
    return {"repr": repr_, "seed": seed, "window": window, "test_acc": metrics["test_acc"],
            "train_acc": metrics["train_acc"], "mask_updates": metrics["mask_updates"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--reprs", nargs="+", default=["sp"])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    p = load_params()
    jobs = [(p, r, s, w) for w in WINDOWS for r in args.reprs for s in args.seeds]
    rows = run_jobs(one_run, jobs, args.workers, args.workers)
    steps = (60_000 // p.train.batch_size) * p.train.epochs
    print(f"GMP at sparsity {p.sparsity}, {steps} steps, cosine learning rate from {p.train.lr}")
    print(f"{'repr':5s} {'seed':>4s} {'start':>6s} {'end':>6s} {'every':>6s} {'updates':>8s} {'train acc':>10s} "
          f"{'test acc':>9s}")
    for r in rows:
        start, end, interval = r["window"]
        print(f"{r['repr']:5s} {r['seed']:4d} {start:6.2f} {end:6.2f} {interval:6d} {r['mask_updates']:8d} "
              f"{100 * r['train_acc']:9.2f}% {100 * r['test_acc']:8.2f}%")


if __name__ == "__main__":
    main()
