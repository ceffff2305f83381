"""Stages `shuffle@<method>` and `lr_control@<method>`: the controls of STUDY_SPEC section 6,
for SP and IP alike, over a pool of `train.workers` processes.

- ``shuffle``: each main run's masks (the start file of `train@<method>`) with the kept positions
  permuted uniformly within each layer (:func:`ip.controls.shuffle_masks`), trained from
  the same start weights, data order and schedule as the main run; the main run is its
  unshuffled pair.  Output: results/controls/shuffle-<method>.json.
- ``lr``: the method trained at ``train.lr`` x each of ``controls.lr.lr_scales`` on the
  training images less a validation slice held out of them (:func:`ip.controls.hold_out`);
  each run records its validation and test accuracy.  Each representation's scale is chosen on
  validation accuracy only (:func:`ip.controls.best_scale`); where a choice is an edge of
  the grid, the grid grows by the next scale beyond it (x2 or /2, for every representation),
  at most ``max_growth`` times per edge, so that the choices end strictly inside it (the
  report says where one does not).  Scales above ``warmup_above`` warm up linearly over
  ``warmup_epochs``.  Output: results/controls/lr-<method>.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import sys

import torch

from ip.controls import best_scale, hold_out, shuffle_masks
from ip.experiment import build_model, compute_masks, train_run
from ip.metrics.generalisation import evaluate_batches
from ip.parallel import run_jobs
from ip.pruning import method_info

from .common import RESULTS, budget_problem, load_init, load_run, prepared, run_spec, setup, stage, write_json

CONTROLS_DIR = RESULTS / "controls"


def moved_share(before: dict, after: dict) -> float:
    """The share of kept entries that are not kept at the same position after shuffling."""
    kept = sum(int(m.sum()) for m in before.values())
    same = sum(int((before[k] & after[k]).sum()) for k in before)
    return 1.0 - same / kept if kept else 0.0


def shuffle_run(p, method: str, repr_: str, seed: int) -> dict:
    run = load_run(p, method, repr_, seed)
    model, masks = run.start()
    shuffled = shuffle_masks(masks, seed)
    metrics, _, _ = train_run(run.spec, model, shuffled, run.data)
    moved = moved_share(masks, shuffled)
    print(f"shuffle {run.spec.run_id}: test acc {metrics['test_acc']:.4f} ({moved:.1%} of kept entries moved)",
          flush=True)
    return {"control": "shuffle", **metrics, "moved_share": moved}


@functools.lru_cache(maxsize=1)
def held_out(samples: int, seed: int):
    """The control's training images and validation slice, split once per process."""
    return hold_out(prepared(), samples, seed)


def lr_run(p, method: str, repr_: str, seed: int, scale: float) -> dict:
    c = p.controls.lr
    held = held_out(c.validation_samples, p.data.subset_seed)
    spec = run_spec(p, method, repr_, seed)
    update = {"lr": spec.train.lr * scale}
    if scale > c.warmup_above:
        update["warmup_epochs"] = c.warmup_epochs
    spec = dataclasses.replace(spec, train=spec.train.model_copy(update=update))
    model = build_model(spec, load_init(seed), held.train.num_classes, held.train.input_shape[0])
    masks, start_state = compute_masks(spec, model, held.train)
    if start_state is not None:
        model.load_state_dict(start_state)
    metrics, _, _ = train_run(spec, model, masks, held.train)
    with torch.inference_mode():
        val_loss, val_acc = evaluate_batches(model, held.val_batches(spec.train.eval_batch_size))
    print(f"lr x{scale} {spec.run_id}: validation acc {val_acc:.4f}, test acc {metrics['test_acc']:.4f}", flush=True)
    return {"control": "lr", **metrics, "lr_scale": scale, "lr": spec.train.lr,
            "warmup_epochs": spec.train.warmup_epochs, "val_acc": val_acc,
            "val_loss": val_loss, "val_samples": c.validation_samples, "train_samples": int(held.train_index.numel())}


def grid_growth(rows: list[dict], scales: list[float], grown: dict[str, int], max_growth: int) -> list[float]:
    """The scales to add: beyond each edge of ``scales`` that some representation's choice
    (on validation accuracy) lies on, unless that edge grew ``max_growth`` times already
    (``grown``: growth per edge so far, updated)."""
    chosen = set(best_scale(rows).values())
    out = []
    for edge, beyond in (("low", min(scales) / 2), ("high", max(scales) * 2)):
        at_edge = min(scales) if edge == "low" else max(scales)
        if at_edge in chosen and grown[edge] < max_growth:
            grown[edge] += 1
            out.append(beyond)
    return out


def lr_grid(p, method: str) -> list[dict]:
    """The learning-rate control's runs: the grid, grown until every choice is inside it."""
    c = p.controls.lr
    seeds = c.seeds or p.seeds
    for repr_ in c.reprs:
        for seed in seeds:
            problem = budget_problem(run_spec(p, method, repr_, seed), load_init(seed), prepared())
            if problem:
                print(f"error: lr control {method}-{repr_}-s{seed}: {problem}", file=sys.stderr)
                raise SystemExit(2)
    scales, new, rows, grown = [], list(c.lr_scales), [], {"low": 0, "high": 0}
    while new:
        jobs = [(p, method, r, s, scale) for scale in new for r in c.reprs for s in seeds]
        rows += run_jobs(lr_run, jobs, p.train.workers, p.train.threads, desc=f"lr_control@{method}")
        scales = sorted(scales + new)
        new = grid_growth(rows, scales, grown, c.max_growth)
        if new:
            print(f"lr control {method}: a choice lies on an edge of {scales}; adding {new}", flush=True)
    return rows


def check_method(p, control: str, method: str) -> None:
    """One line and exit code 2 before any work if ``method`` cannot take part in ``control``."""
    methods = p.controls.shuffle.methods if control == "shuffle" else p.controls.lr.methods
    if method not in methods:
        print(f"error: {method} is not in controls.{control}.methods ({methods})", file=sys.stderr)
        raise SystemExit(2)
    if control == "lr" and method_info(method).starts_from_dense:
        print(f"error: controls.lr.methods: {method} starts from a trained dense run, and there is none trained "
              "without the validation slice; use a method that starts from initialisation", file=sys.stderr)
        raise SystemExit(2)


@stage
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="the mask-shuffle and learning-rate controls of one method")
    ap.add_argument("control", choices=["shuffle", "lr"])
    ap.add_argument("--method", required=True)
    args = ap.parse_args(argv)
    p = setup()
    check_method(p, args.control, args.method)
    if args.control == "shuffle":
        c = p.controls.shuffle
        jobs = [(p, args.method, r, s) for r in c.reprs for s in (c.seeds or p.seeds)]
        for _, method, repr_, seed in jobs:   # every mask file read before any work
            load_run(p, method, repr_, seed).start()
        rows = run_jobs(shuffle_run, jobs, p.train.workers, p.train.threads,
                        desc=f"shuffle@{args.method}")
    else:
        rows = lr_grid(p, args.method)
    write_json(CONTROLS_DIR / f"{args.control}-{args.method}.json", rows)


if __name__ == "__main__":
    main()
