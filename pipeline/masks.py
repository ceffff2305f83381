"""Stage `masks@<method>-<repr>-<seed>`: find the run's masks (and its start weights, for
the lottery ticket and one-shot methods) at the headline sparsity."""
from __future__ import annotations

import argparse

import torch

from ip.experiment import build_model, compute_masks
from ip.masks import mask_summary

from .common import MASK_DIR, load_init, load_prepared, run_id, run_spec, setup, write_json


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--method", required=True)
    ap.add_argument("--repr", required=True, dest="repr_")
    ap.add_argument("--seed", required=True, type=int)
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = parse(argv)
    p = setup()
    spec = run_spec(p, args.method, args.repr_, args.seed)
    data = load_prepared()
    model = build_model(spec, load_init(args.seed), data.num_classes, data.input_shape[0])
    masks, start_state = compute_masks(spec, model, data)
    summary = mask_summary(masks)
    name = run_id(args.method, args.repr_, args.seed)
    MASK_DIR.mkdir(parents=True, exist_ok=True)
    out = MASK_DIR / f"{name}.pt"
    tmp = out.with_suffix(".tmp")
    torch.save({"masks": {k: v.cpu() for k, v in masks.items()},
                "start_state": start_state if start_state is not None else model.state_dict()}, tmp)
    tmp.replace(out)
    write_json(MASK_DIR / f"{name}.json", {"kept_params": summary.kept_params, "prunable_params": summary.prunable_params,
                                          "sparsity": summary.sparsity, "collapsed_layers": summary.collapsed_layers,
                                          "per_layer": summary.per_layer})
    print(f"{name}: kept {summary.kept_params}/{summary.prunable_params} (sparsity {summary.sparsity:.4f}); "
          f"collapsed layers: {summary.collapsed_layers or 'none'}")


if __name__ == "__main__":
    main()
