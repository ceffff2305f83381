"""Stage `trainability`: Hessian spectra (top eigenvalues, trace, spectral density) and
per-layer gradient flow of every main run at the start of sparse training and after it,
plus the trained filters for the Fig. 1 analogue (spatial filter density).  The runs are
measured in `train.workers` processes."""
from __future__ import annotations

import pandas as pd
import torch

from ip.experiment import build_model
from ip.interspace import to_spatial
from ip.masks import MaskEnforcer, layer_name
from ip.metrics import gradient_flow, hessian_summary

from .common import (MASK_DIR, RESULTS, RUN_DIR, load_init, prepared, run_id, run_jobs, run_spec, setup,
                     write_json)
from .train import load_mask_file

OUT = RESULTS / "trainability"
FILTER_LAYER_INDEX = 1   # which KxK conv (in module order) is drawn in the Fig. 1 analogue
FILTERS_SHOWN = 8


def zero_pruned(model, masks) -> None:
    MaskEnforcer(model, masks).remove()  # zeroes pruned storage; hooks removed again


def spatial_filters(model) -> dict[str, torch.Tensor]:
    """Trained KxK filters (K > 1) as plain spatial weights, by layer name."""
    plain = to_spatial(model)
    return {n: m.weight.detach() for n, m in plain.named_modules()
            if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1}


def measure_run(p, method: str, repr_: str, seed: int) -> dict:
    """One run's rows (hessian, density, gf_layers, filters, filter_density) and per-run numbers."""
    data = prepared()
    t = p.trainability
    batches = [(data.x_metric[:t.samples], data.y_metric[:t.samples])]
    out = {k: [] for k in ("hessian", "density", "gf_layers", "filters", "filter_density")}
    per_run: dict = {}
    name = run_id(method, repr_, seed)
    spec = run_spec(p, method, repr_, seed)
    init = load_init(seed)
    start = build_model(spec, init, data.num_classes, data.input_shape[0])
    masks0, start_state = load_mask_file(MASK_DIR / f"{name}.pt", start)
    start.load_state_dict(start_state)
    zero_pruned(start, masks0)
    final = build_model(spec, init, data.num_classes, data.input_shape[0])
    final.load_state_dict(torch.load(RUN_DIR / name / "model.pt", map_location="cpu", weights_only=True))
    masks1 = torch.load(RUN_DIR / name / "final_masks.pt", map_location="cpu", weights_only=True)
    key = dict(method=method, repr=repr_, seed=seed)
    for when, model, masks in (("init", start, masks0), ("final", final, masks1)):
        gf = gradient_flow(model, data.metric_batches(), masks)
        out["gf_layers"] += [{**key, "when": when, "layer": layer, "gf": v} for layer, v in gf["per_layer"].items()]
        if seed not in (t.seeds or p.seeds):
            continue
        h = hessian_summary(model, batches, masks, top_k=t.hessian_top_k, tol=t.hessian_tol,
                            trace_probes=t.hutchinson_probes, slq_probes=t.slq_probes,
                            lanczos_steps=t.slq_steps, generator=seed)
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
    densities = {layer: float((w != 0).float().mean()) for layer, w in filters.items()}
    out["filter_density"] += [{**key, "layer": layer, "density": d} for layer, d in densities.items()]
    per_run["filter_density"] = (sum(int((w != 0).sum()) for w in filters.values())
                                 / sum(w.numel() for w in filters.values()))
    layer = list(filters)[FILTER_LAYER_INDEX]
    w = filters[layer]
    # filters that keep at least one entry in the run's initial mask (a fully pruned filter is
    # zero in both representations and shows nothing); with the spatial FB init the SP and IP
    # runs of a PaI method share that mask, so both rows show the same filters
    mask0 = next(m for n, m in masks0.items() if layer_name(n) == layer)
    used = mask0.reshape(mask0.shape[0], mask0.shape[1], -1).any(-1).nonzero().tolist()
    for o, i in used[:FILTERS_SHOWN]:
        for r in range(w.shape[2]):
            for c in range(w.shape[3]):
                out["filters"].append({**key, "layer": layer, "out_channel": o, "in_channel": i,
                                       "row": r, "col": c, "value": float(w[o, i, r, c])})
    return {"rows": out, "name": name, "per_run": per_run}


def main() -> None:
    p = setup()
    jobs = [(p, method, repr_, seed) for method in p.methods for repr_ in p.reprs for seed in p.seeds]
    results = run_jobs(measure_run, jobs, p.train.workers, p.train.threads)
    tables = {k: [row for r in results for row in r["rows"][k]] for k in results[0]["rows"]}
    per_run = {r["name"]: r["per_run"] for r in results}
    OUT.mkdir(parents=True, exist_ok=True)
    for table, rows in tables.items():
        pd.DataFrame(rows).to_csv(OUT / f"{table}.csv", index=False)
    write_json(OUT / "per_run.json", per_run)


if __name__ == "__main__":
    main()
