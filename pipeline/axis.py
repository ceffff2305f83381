"""Stage `axis@<epochs>-<seed>`: the training-length axis (STUDY_SPEC section 6, claim C10)
and the method schedules as published, for one length and one seed.

At every length of `axis.epochs` the methods of `axis.methods` (snip) are trained in every
representation, exactly like the main runs but for that many epochs (the cosine schedule
over the whole run); at `axis.published.epochs` also `axis.published.methods` (rigl, gmp)
with their schedules as published (`axis.published.prune`, over the longer run).  SP, IP and
IP_eq of a seed are in one stage, so every stage holds complete pairs; the rows (metrics and
per-epoch history of each run) go to results/axis/e<epochs>-s<seed>.json.

Stage `axis_dense@<epochs>-<seed>` (``python -m pipeline.axis dense ...``): the dense runs (SP
and IP) at the lengths of `axis.dense_epochs`, in a stage of their own so that no stage of the
axis runs much longer than its pairs (a 12-epoch seed: about 90 min here, and 45 min for its
dense runs); rows to results/axis/dense-e<epochs>-s<seed>.json.  Runs are spread over
`train.workers` processes.  A run's result depends only on its method, representation, seed
and length, not on the stage it is in."""
from __future__ import annotations

import argparse
import dataclasses
import sys

from ip.experiment import run_experiment
from ip.parallel import run_jobs

from .common import AXIS_DIR, budget_problem, load_init, prepared, run_spec, setup, stage, write_json


def axis_jobs(p, epochs: int, seed: int, dense: bool = False) -> list[tuple]:
    """(params, method, repr, seed, epochs) of a stage's runs: the axis methods and the published
    ones (at their length), or with ``dense`` the dense runs."""
    a = p.axis
    if dense:
        methods = ["dense"] if epochs in a.dense_epochs else []
    else:
        methods = list(a.methods) + (list(a.published.methods) if epochs == a.published.epochs else [])
    return [(p, m, r, seed, epochs) for m in methods for r in p.reprs_of(m)]


def axis_file(epochs: int, seed: int, dense: bool = False):
    """The stage's rows: results/axis/[dense-]e<epochs>-s<seed>.json."""
    return AXIS_DIR / f"{'dense-' if dense else ''}e{epochs}-s{seed}.json"


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
    ap.add_argument("runs", nargs="?", choices=["pairs", "dense"], default="pairs",
                    help="pairs: the sparse methods in every representation (stage axis@...); dense: the dense runs")
    ap.add_argument("--epochs", required=True, type=int)
    ap.add_argument("--seed", required=True, type=int)
    args = ap.parse_args(argv)
    p = setup()
    dense = args.runs == "dense"
    if dense and not p.axis.epochs:   # the params check lets dense_epochs through when the axis is off
        print(f"error: params.yaml's axis.dense_epochs is {p.axis.dense_epochs} but axis.epochs is [] "
              "(the axis is off): set axis.dense_epochs: [] too, or give axis.epochs", file=sys.stderr)
        raise SystemExit(2)
    lengths = (p.axis.dense_epochs, "axis.dense_epochs") if dense else (p.axis.epochs, "axis.epochs")
    for value, allowed, key in ((args.epochs, *lengths), (args.seed, p.axis.seeds, "axis.seeds")):
        if value not in allowed:
            print(f"error: {value} is not in params.yaml's {key} ({allowed})", file=sys.stderr)
            raise SystemExit(2)
    jobs = axis_jobs(p, args.epochs, args.seed, dense)
    load_init(args.seed)   # a missing or bad file stops the stage before any work
    name = f"{'axis_dense' if dense else 'axis'}@{args.epochs}-{args.seed}"
    rows = run_jobs(axis_run, jobs, p.train.workers, p.train.threads, desc=name)
    write_json(axis_file(args.epochs, args.seed, dense), rows)


if __name__ == "__main__":
    main()
