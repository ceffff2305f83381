"""Stage `axis@<epochs>-<seed>`: the training-length axis (STUDY_SPEC section 6, claim C10)
and the method schedules as published, for one length and one seed.

At every length of `axis.epochs` the methods of `axis.methods` (snip) are trained in every
representation, exactly like the main runs but for that many epochs (the cosine schedule
over the whole run); at `axis.published.epochs` also `axis.published.methods` (rigl, gmp)
with their schedules as published (`axis.published.prune`, over the longer run); at the
lengths of `axis.dense_epochs` the dense runs (SP and IP).  SP, IP and IP_eq of a seed are in
one stage, so every stage holds complete pairs.  Runs are spread over `train.workers`
processes; the rows (metrics and per-epoch history of each run) go to
results/axis/e<epochs>-s<seed>.json."""
from __future__ import annotations

import argparse
import dataclasses
import sys

from ip.experiment import run_experiment
from ip.parallel import run_jobs

from .common import AXIS_DIR, budget_problem, load_init, prepared, run_spec, setup, stage, write_json


def axis_jobs(p, epochs: int, seed: int) -> list[tuple]:
    """(params, method, repr, seed, epochs) of the stage's runs: dense (at its lengths), the axis methods, the published ones."""
    a = p.axis
    methods = list(a.methods) + (list(a.published.methods) if epochs == a.published.epochs else [])
    if epochs in a.dense_epochs:
        methods = ["dense", *methods]
    return [(p, m, r, seed, epochs) for m in methods for r in p.reprs_of(m)]


def axis_spec(p, method: str, repr_: str, seed: int, epochs: int):
    spec = run_spec(p, method, repr_, seed, epochs=epochs)
    published = p.axis.published
    if epochs == published.epochs and method in published.methods and method in published.prune:
        spec = dataclasses.replace(spec, options={**spec.options.model_dump(), **published.prune[method]})
    return spec


def axis_run(p, method: str, repr_: str, seed: int, epochs: int) -> dict:
    spec = axis_spec(p, method, repr_, seed, epochs)
    key = {"experiment": "axis", "method": method, "repr": repr_, "seed": seed, "epochs": epochs}
    problem = budget_problem(spec, load_init(seed), prepared())
    if problem:
        print(f"axis {epochs} epochs {spec.run_id}: infeasible: {problem}", flush=True)
        return {**key, "sparsity": spec.sparsity, "infeasible": problem}
    metrics, history = run_experiment(spec, load_init(seed), prepared())
    print(f"axis {epochs} epochs {spec.run_id}: test acc {metrics['test_acc']:.4f}", flush=True)
    return {**key, **metrics, "history": history}


@stage
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", required=True, type=int)
    ap.add_argument("--seed", required=True, type=int)
    args = ap.parse_args(argv)
    p = setup()
    for value, allowed, key in ((args.epochs, p.axis.epochs, "axis.epochs"), (args.seed, p.axis.seeds, "axis.seeds")):
        if value not in allowed:
            print(f"error: {value} is not in params.yaml's {key} ({allowed})", file=sys.stderr)
            raise SystemExit(2)
    jobs = axis_jobs(p, args.epochs, args.seed)
    load_init(args.seed)   # a missing or bad file stops the stage before any work
    rows = run_jobs(axis_run, jobs, p.train.workers, p.train.threads, desc=f"axis@{args.epochs}-{args.seed}")
    write_json(AXIS_DIR / f"e{args.epochs}-s{args.seed}.json", rows)


if __name__ == "__main__":
    main()
