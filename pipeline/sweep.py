"""Stage `sweep@<sparsity>`: accuracy, gaps and gradient flow of the sweep methods, SP and
IP, for every seed, at one sparsity of `sweep.sparsities`.  Runs are made exactly like the
main runs (ip.experiment.run_experiment); the headline sparsity's points come from the
main runs in the aggregate stage.  The runs are spread over `train.workers` processes."""
from __future__ import annotations

import argparse

from ip.experiment import run_experiment
from ip.parallel import run_jobs

from .common import SWEEP_DIR, budget_problem, load_init, prepared, run_spec, setup, stage, write_json


def sweep_run(p, method: str, repr_: str, seed: int, sparsity: float) -> dict:
    spec = run_spec(p, method, repr_, seed, sparsity=sparsity, epochs=p.sweep.epochs)
    problem = budget_problem(spec, load_init(seed), prepared())
    if problem:   # ip_eq where the FB entries alone exceed the budget: reported as infeasible
        print(f"sweep s={sparsity} {spec.run_id}: infeasible: {problem}", flush=True)
        return {"experiment": "sweep", "method": method, "repr": repr_, "seed": seed, "sparsity": sparsity,
                "infeasible": problem}
    metrics, _ = run_experiment(spec, load_init(seed), prepared())
    print(f"sweep s={sparsity} {spec.run_id}: test acc {metrics['test_acc']:.4f}", flush=True)
    return {"experiment": "sweep", **metrics}


@stage
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sparsity", required=True, type=float)
    args = ap.parse_args(argv)
    p = setup()
    if not 0.0 <= args.sparsity < 1.0:
        raise SystemExit(f"error: --sparsity {args.sparsity} is out of range; allowed: [0, 1)")
    seeds = p.sweep.seeds or p.seeds
    jobs = [(p, method, repr_, seed, args.sparsity) for method in p.sweep.methods for seed in seeds
            for repr_ in p.reprs]
    rows = run_jobs(sweep_run, jobs, p.train.workers, p.train.threads, desc=f"sweep@{args.sparsity}")
    write_json(SWEEP_DIR / f"s{args.sparsity}.json", rows)


if __name__ == "__main__":
    main()
