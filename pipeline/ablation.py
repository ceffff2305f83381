"""Stage `ablation`: IP variants at the headline sparsity for `ablation.method`: filter-basis
initialisation, basis sharing and the fair-budget option (FB entries charged to the budget).
Only variants that differ from the main setting are run here; the main runs of the same
method supply the baselines (SP, and IP with the main setting) in the aggregate stage.
The runs are spread over `train.workers` processes."""
from __future__ import annotations

from ip.experiment import build_model, run_experiment
from ip.masks import kept_budget

from .common import RESULTS, load_init, prepared, run_jobs, run_spec, setup, write_json

ABLATION_FILE = RESULTS / "ablation" / "runs.json"


def variants(p) -> list[tuple[str, dict]]:
    out = []
    for fb_init in p.ablation.fb_inits:
        if fb_init != p.interspace.fb_init:
            out.append((f"fb_init={fb_init}", {"fb_init": fb_init}))
    for share in p.ablation.shares:
        if share != p.interspace.share:
            out.append((f"share={share}", {"share": share}))
    if p.ablation.fair_budget and not p.interspace.fb_in_budget:
        out.append(("fair_budget", {"fb_in_budget": True}))
    return out


def ablation_run(p, name: str, overrides: dict, seed: int) -> dict:
    spec = run_spec(p, p.ablation.method, "ip", seed, **overrides)
    init, data = load_init(seed), prepared()
    try:
        kept_budget(build_model(spec, init, data.num_classes, data.input_shape[0]), spec.sparsity, spec.fb_in_budget)
    except ValueError as exc:
        # e.g. the fair budget at high sparsity: the FB entries alone exceed the budget.
        # That is a result (the FB overhead is not negligible there), recorded, not hidden.
        print(f"ablation {name} {spec.run_id}: infeasible: {exc}", flush=True)
        return {"experiment": "ablation", "variant": name, "method": spec.method, "repr": "ip", "seed": seed,
                "sparsity": spec.sparsity, "infeasible": str(exc)}
    metrics, _ = run_experiment(spec, init, data)
    print(f"ablation {name} {spec.run_id}: test acc {metrics['test_acc']:.4f}", flush=True)
    return {"experiment": "ablation", "variant": name, **metrics}


def main() -> None:
    p = setup()
    seeds = p.ablation.seeds or p.seeds
    jobs = [(p, name, overrides, seed) for name, overrides in variants(p) for seed in seeds]
    write_json(ABLATION_FILE, run_jobs(ablation_run, jobs, p.train.workers, p.train.threads))


if __name__ == "__main__":
    main()
