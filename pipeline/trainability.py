"""Stage `trainability`: per-layer gradient flow of every main run at the start of sparse training
and after it, Hessian spectra (top eigenvalues, trace, spectral density) of the runs that
``trainability.seeds``, ``hessian_methods`` and ``hessian_reprs`` select, plus the trained
filters for the Fig. 1 analogue (participation ratio and non-zero fraction of the filters),
in `train.workers` processes."""
from __future__ import annotations

import pandas as pd

from ip.masks import MaskEnforcer
from ip.experiment import measure_gradient_flow
from ip.metrics import hessian_summary
from ip.metrics.filters import filter_density, filters_to_draw, participation_ratio, spatial_filters
from ip.parallel import run_jobs

from .common import TRAINABILITY_DIR as OUT
from .common import load_run, run_id, setup, stage, write_json


def gets_hessian(p, method: str, repr_: str, seed: int) -> bool:
    """Whether the trainability params select this main run for Hessian spectra (None: every one)."""
    t = p.trainability
    return (seed in (t.seeds or p.seeds) and method in (t.hessian_methods or p.run_methods)
            and repr_ in (t.hessian_reprs or p.reprs))


def measure_run(p, method: str, repr_: str, seed: int) -> dict:
    """One run's rows (hessian, density, gf_layers, filters, filter_density) and per-run numbers."""
    t = p.trainability
    run = load_run(p, method, repr_, seed)
    start, masks0 = run.start()
    MaskEnforcer(start, masks0).remove()   # zeroes pruned storage, as training starts
    final, masks1 = run.trained()
    batches = [(run.data.x_metric[:t.samples], run.data.y_metric[:t.samples])]
    out = {k: [] for k in ("hessian", "density", "gf_layers", "filters", "filter_density")}
    per_run: dict = {}
    name = run_id(method, repr_, seed)
    key = dict(method=method, repr=repr_, seed=seed)
    for when, model, masks in (("init", start, masks0), ("final", final, masks1)):
        gf = measure_gradient_flow(model, run.spec, run.data, masks)   # recalibrates first for running stats
        out["gf_layers"] += [{**key, "when": when, "layer": layer, "gf": v} for layer, v in gf["per_layer"].items()]
        if not gets_hessian(p, method, repr_, seed):
            continue
        h = hessian_summary(model, batches, masks, top_k=t.hessian_top_k, tol=t.hessian_tol,
                            trace_probes=t.hutchinson_probes, slq_probes=t.slq_probes,
                            lanczos_steps=t.slq_steps, generator=seed, bn_mode=t.bn_mode)
        out["hessian"] += [{**key, "when": when, "kind": "eigenvalue", "rank": i + 1, "value": v}
                           for i, v in enumerate(sorted(h["top_eigenvalues"], reverse=True))]
        out["hessian"].append({**key, "when": when, "kind": "trace", "rank": None, "value": h["trace"]})
        out["density"] += [{**key, "when": when, "grid": g, "density": d}
                           for g, d in zip(h["density_grid"], h["density"])]
        per_run[f"hessian_top1_{when}"] = max(h["top_eigenvalues"])
        per_run[f"hessian_trace_{when}"] = h["trace"]
        print(f"{name} {when}: top eigenvalue {max(h['top_eigenvalues']):.4g}, trace {h['trace']:.4g} "
              f"({h['hvps']} HVPs, {h['seconds']:.1f}s)", flush=True)
    filters = spatial_filters(final)
    per_layer, per_run["filter_density"] = filter_density(filters)
    pr_layer, pr = participation_ratio(filters, masks1)
    per_run.update(participation_ratio=pr["mean"], pr_dense_share=pr["dense_share"], pr_filters=pr["filters"])
    out["filter_density"] += [{**key, "layer": layer, "density": d, "participation_ratio": pr_layer[layer]["mean"],
                               "pr_dense_share": pr_layer[layer]["dense_share"],
                               "pr_filters": pr_layer[layer]["filters"]} for layer, d in per_layer.items()]
    out["filters"] += [{**key, **row} for row in filters_to_draw(filters, masks0)]
    return {"rows": out, "name": name, "per_run": per_run}


@stage
def main() -> None:
    p = setup()
    jobs = [(p, method, repr_, seed) for method in p.run_methods for repr_ in p.reprs_of(method) for seed in p.seeds]
    for _, method, repr_, seed in jobs:      # every input file read once: a bad one stops the stage before any work
        load_run(p, method, repr_, seed).check()
    order = sorted(range(len(jobs)), key=lambda i: not gets_hessian(*jobs[i]))   # long jobs first: less idle tail
    done = run_jobs(measure_run, [jobs[i] for i in order], p.train.workers, p.train.threads,
                    desc="trainability")
    results = [r for _, r in sorted(zip(order, done))]                         # tables in the main runs' order
    tables = {k: [row for r in results for row in r["rows"][k]] for k in results[0]["rows"]}
    per_run = {r["name"]: r["per_run"] for r in results}
    OUT.mkdir(parents=True, exist_ok=True)
    for table, rows in tables.items():
        pd.DataFrame(rows).to_csv(OUT / f"{table}.csv", index=False)
    write_json(OUT / "per_run.json", per_run)


if __name__ == "__main__":
    main()
