"""Why GMP ranks where it does in a one-epoch run: test accuracy of GMP (SP, and IP) under the
default schedule, under pruning windows that leave more of training to recover, and with
twice the epochs (the cost of LT's two trainings and of one-shot's dense run plus fine-tuning),
with the default study's data, model, learning-rate schedule and sparsity (params.yaml).

Each variant changes only ``prune.gmp`` (start_fraction, end_fraction, interval) or
``train.epochs`` (the cosine schedule stretched over the longer run), so the comparison says
whether the pruning window or the training length, not the method, sets GMP's accuracy here.
The runs go over ``--workers`` processes of one thread each.

    python benchmarks/gmp_schedule.py [--seeds 0] [--reprs sp] [--workers 2] [--variants 0 3]
"""
from __future__ import annotations

import argparse
import dataclasses

from ip.experiment import run_experiment
from ip.parallel import run_jobs
from pipeline.common import load_init, prepared, run_spec
from study.params import load_params

#: ((start_fraction, end_fraction, interval), epochs multiple): the default first, then earlier
#: ends, then the default window over twice the epochs (intervals doubled: the same 30 pruning steps)
VARIANTS = (((0.1, 0.75, 10), 1), ((0.05, 0.5, 8), 1), ((0.02, 0.3, 5), 1), ((0.1, 0.75, 20), 2))


def one_run(p, repr_: str, seed: int, variant: tuple) -> dict:
    (start, end, interval), multiple = variant
    spec = run_spec(p, "gmp", repr_, seed, epochs=p.train.epochs * multiple)
    options = spec.options.model_copy(update={"start_fraction": start, "end_fraction": end, "interval": interval})
    spec = dataclasses.replace(spec, options=options)
    metrics, _ = run_experiment(spec, load_init(seed), prepared())
    return {"repr": repr_, "seed": seed, "window": (start, end, interval), "epochs": spec.train.epochs,
            "test_acc": metrics["test_acc"],
            "train_acc": metrics["train_acc"], "mask_updates": metrics["mask_updates"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--reprs", nargs="+", default=["sp"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--variants", type=int, nargs="+", default=list(range(len(VARIANTS))),
                    help=f"indices into VARIANTS (default: all {len(VARIANTS)})")
    args = ap.parse_args()
    bad = [v for v in args.variants if not 0 <= v < len(VARIANTS)]
    if bad:
        ap.error(f"--variants {bad}: indices go from 0 to {len(VARIANTS) - 1}")
    p = load_params()
    jobs = [(p, r, s, VARIANTS[v]) for v in args.variants for r in args.reprs for s in args.seeds]
    rows = run_jobs(one_run, jobs, args.workers, args.workers)
    print(f"GMP at sparsity {p.sparsity}, {p.train.schedule} learning rate from {p.train.lr}")
    print(f"{'repr':5s} {'seed':>4s} {'epochs':>6s} {'start':>6s} {'end':>6s} {'every':>6s} {'updates':>8s} "
          f"{'train acc':>10s} {'test acc':>9s}")
    for r in rows:
        start, end, interval = r["window"]
        print(f"{r['repr']:5s} {r['seed']:4d} {r['epochs']:6d} {start:6.2f} {end:6.2f} {interval:6d} "
              f"{r['mask_updates']:8d} "
              f"{100 * r['train_acc']:9.2f}% {100 * r['test_acc']:8.2f}%")


if __name__ == "__main__":
    main()
