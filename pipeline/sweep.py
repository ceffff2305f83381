"""Stage `sweep@<sparsity>`: accuracy, gaps and gradient flow of the sweep methods, SP and
IP, for every seed, at one sparsity of `sweep.sparsities`.  Runs are made exactly like the
main runs (ip.experiment.run_experiment); the headline sparsity's points come from the
main runs in the aggregate stage."""
from __future__ import annotations

import argparse
from pathlib import Path

from ip.experiment import run_experiment

from .common import RESULTS, load_init, load_prepared, run_spec, setup, write_json

SWEEP_DIR = RESULTS / "sweep"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sparsity", required=True, type=float)
    args = ap.parse_args(argv)
    p = setup()
    if not 0.0 <= args.sparsity < 1.0:
        raise SystemExit(f"error: --sparsity {args.sparsity} is out of range; allowed: [0, 1)")
    data = load_prepared()
    seeds = p.sweep.seeds or p.seeds
    rows = []
    for method in p.sweep.methods:
        for seed in seeds:
            init = load_init(seed)
            for repr_ in p.reprs:
                spec = run_spec(p, method, repr_, seed, sparsity=args.sparsity, epochs=p.sweep.epochs)
                metrics, _ = run_experiment(spec, init, data)
                rows.append({"experiment": "sweep", **metrics})
                print(f"sweep s={args.sparsity} {spec.run_id}: test acc {metrics['test_acc']:.4f}")
    write_json(SWEEP_DIR / f"s{args.sparsity}.json", rows)


if __name__ == "__main__":
    main()
