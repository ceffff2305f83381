"""Stage `masks@<method>-<repr>-<seed>`: find the run's masks (and its start weights, for
the methods that train to find them) at the headline sparsity."""
from __future__ import annotations

import torch

from ip.connectivity import connectivity_report
from ip.experiment import compute_masks
from ip.masks import mask_summary
from ip.run import Run

from .common import INIT_DIR, MASK_DIR, PHASES, parse_run_args, prepared, run_id, run_spec, setup, stage, write_json


@stage
def main(argv=None) -> None:
    args = parse_run_args(argv)
    p = setup()
    spec = run_spec(p, args.method, args.repr_, args.seed)
    with PHASES("loading"):
        run = Run.from_files(spec, prepared(), INIT_DIR / f"s{args.seed}.pt")
        model = run.new_model()
    with PHASES("mask_scoring"):
        masks, start_state = compute_masks(spec, model, run.data)
    with PHASES("costs_and_connectivity"):
        summary = mask_summary(masks)
        connectivity = connectivity_report(model, masks, run.data.input_shape)
    name = run_id(args.method, args.repr_, args.seed)
    with PHASES("writing"):
        MASK_DIR.mkdir(parents=True, exist_ok=True)
        out = MASK_DIR / f"{name}.pt"
        tmp = out.with_suffix(".tmp")
        torch.save({"masks": {k: v.cpu() for k, v in masks.items()},
                    "start_state": start_state if start_state is not None else model.state_dict()}, tmp)
        tmp.replace(out)
        write_json(MASK_DIR / f"{name}.json", {"kept_params": summary.kept_params,
                                              "prunable_params": summary.prunable_params,
                                              "sparsity": summary.sparsity, "collapsed_layers": summary.collapsed_layers,
                                              "per_layer": summary.per_layer, **connectivity})
    print(f"{name}: kept {summary.kept_params}/{summary.prunable_params} (sparsity {summary.sparsity:.4f}); "
          f"collapsed layers: {summary.collapsed_layers or 'none'}")


if __name__ == "__main__":
    main()
