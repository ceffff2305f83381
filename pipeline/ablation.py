"""Stage `ablation`: IP variants at the headline sparsity for `ablation.method`: filter-basis
initialisation, basis sharing and the fair-budget option (FB entries charged to the budget).
Only variants that differ from the main setting are run here; the main runs of the same
method supply the baselines (SP, and IP with the main setting) in the aggregate stage."""
from __future__ import annotations

from ip.experiment import build_model, run_experiment
from ip.masks import kept_budget

from .common import RESULTS, load_init, load_prepared, run_spec, setup, write_json

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


def main() -> None:
    p = setup()
    data = load_prepared()
    seeds = p.ablation.seeds or p.seeds
    rows = []
    for name, overrides in variants(p):
        for seed in seeds:
            spec = run_spec(p, p.ablation.method, "ip", seed, **overrides)
            init = load_init(seed)
            try:
                kept_budget(build_model(spec, init, data.num_classes, data.input_shape[0]), spec.sparsity,
                            spec.fb_in_budget)
            except ValueError as exc:
                # e.g. the fair budget at high sparsity: the FB entries alone exceed the budget.
                # That is a result (the FB overhead is not negligible there), recorded, not hidden.
                rows.append({"experiment": "ablation", "variant": name, "method": spec.method, "repr": "ip",
                             "seed": seed, "sparsity": spec.sparsity, "infeasible": str(exc)})
                print(f"ablation {name} {spec.run_id}: infeasible: {exc}")
                continue
            metrics, _ = run_experiment(spec, init, data)
            rows.append({"experiment": "ablation", "variant": name, **metrics})
            print(f"ablation {name} {spec.run_id}: test acc {metrics['test_acc']:.4f}")
    write_json(ABLATION_FILE, rows)


if __name__ == "__main__":
    main()
