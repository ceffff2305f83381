"""Stage `ablation`: IP variants at the headline sparsity for `ablation.method`: filter-basis
initialisation, basis sharing and the fair-budget option (FB entries charged to the budget).
Only variants that differ from the main setting are run here; the main runs of the same
method supply the baselines (SP, and IP with the main setting) in the aggregate stage.
The runs are spread over `train.workers` processes."""
from __future__ import annotations

from ip.experiment import run_experiment
from ip.parallel import run_jobs

from .common import ABLATION_FILE, budget_problem, load_init, prepared, run_spec, setup, stage, write_json


def ablation_run(p, name: str, overrides: dict, seed: int) -> dict:
    spec = run_spec(p, p.ablation.method, "ip", seed, **overrides)
    init, data = load_init(seed), prepared()
    problem = budget_problem(spec, init, data)
    if problem:
        # e.g. the fair budget at high sparsity: the FB entries alone exceed the budget.
        # That is a result (the FB overhead is not negligible there), recorded, not hidden.
        print(f"ablation {name} {spec.run_id}: infeasible: {problem}", flush=True)
        return {"experiment": "ablation", "variant": name, "method": spec.method, "repr": "ip", "seed": seed,
                "sparsity": spec.sparsity, "infeasible": problem}
    metrics, _ = run_experiment(spec, init, data)
    print(f"ablation {name} {spec.run_id}: test acc {metrics['test_acc']:.4f}", flush=True)
    return {"experiment": "ablation", "variant": name, **metrics}


@stage
def main() -> None:
    p = setup()
    seeds = p.ablation.seeds or p.seeds
    jobs = [(p, name, overrides, seed) for name, overrides in p.ablation_variants() for seed in seeds]
    write_json(ABLATION_FILE, run_jobs(ablation_run, jobs, p.train.workers, p.train.threads, desc="ablation"))


if __name__ == "__main__":
    main()
