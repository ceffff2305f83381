"""Why RigL ranks where it does in a one-epoch run: test accuracy of RigL under the default
schedule (a mask update every ``prune.dst.interval`` steps), under a few rarer updates, of SET
(the same drops, random regrowth instead of the largest dense gradients) and of random ERK (the
same start mask, never updated), with the default study's data, model, schedule and sparsity.

For each run it also counts, in the final masks, the (output, input) channel pairs with a kept
entry and the output channels with none (summed over the conv layers): gradient regrowth that
piles the kept entries onto a few output channels shows as fewer pairs and more empty channels.

    python benchmarks/rigl_updates.py [--seeds 0] [--reprs sp ip_eq] [--workers 2]
"""
from __future__ import annotations

import argparse
import dataclasses

import torch

from ip.experiment import build_model, compute_masks, train_run
from ip.parallel import run_jobs
from pipeline.common import load_init, prepared, run_spec
from study.params import load_params

#: (method, option overrides): the default RigL first
VARIANTS = (("rigl", {}), ("rigl", {"interval": 100}), ("set", {}), ("random", {}))


def channel_use(masks: dict) -> tuple[int, int]:
    """(output, input) channel pairs with a kept entry, and output channels with none, over 4-d masks."""
    pairs = empty = 0
    for mask in masks.values():
        if mask.dim() != 4:
            continue
        used = mask.flatten(2).any(2)
        pairs += int(used.sum())
        empty += int((~used.any(1)).sum())
    return pairs, empty


def one_run(p, method: str, update: dict, repr_: str, seed: int) -> dict:
    spec = run_spec(p, method, repr_, seed)
    spec = dataclasses.replace(spec, options=spec.options.model_copy(update=update))
    data = prepared()
    model = build_model(spec, load_init(seed), data.num_classes, data.input_shape[0])
    masks, start_state = compute_masks(spec, model, data)
    if start_state is not None:
        model.load_state_dict(start_state)
    start_pairs, start_empty = channel_use(masks)
    metrics, _, final_masks = train_run(spec, model, masks, data)
    pairs, empty = channel_use(final_masks)
    return {"method": method, "update": update, "repr": repr_, "seed": seed, "test_acc": metrics["test_acc"],
            "mask_updates": metrics["mask_updates"], "start_pairs": start_pairs, "pairs": pairs,
            "start_empty": start_empty, "empty": empty}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--reprs", nargs="+", default=["sp", "ip_eq"])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    p = load_params()
    jobs = [(p, m, u, r, s) for m, u in VARIANTS for r in args.reprs for s in args.seeds]
    rows = run_jobs(one_run, jobs, args.workers, args.workers)
    print(f"sparsity {p.sparsity}, prune.dst {p.prune.dst.model_dump()}")
    print(f"{'variant':22s} {'repr':5s} {'seed':>4s} {'updates':>7s} {'test acc':>9s} {'channel pairs':>15s} "
          f"{'empty out-channels':>19s}")
    for r in rows:
        name = r["method"] + "".join(f" {k}={v}" for k, v in r["update"].items())
        print(f"{name:22s} {r['repr']:5s} {r['seed']:4d} {r['mask_updates']:7d} {100 * r['test_acc']:8.2f}% "
              f"{r['start_pairs']:6d} -> {r['pairs']:5d} {r['start_empty']:8d} -> {r['empty']:5d}")


if __name__ == "__main__":
    main()
