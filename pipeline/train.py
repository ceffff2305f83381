"""Stages `dense` and `train@<method>`: every main run of one method (each representation and
seed), from its masks to its trained weights and metrics.

A run first finds its masks at the headline sparsity (written to start.safetensors, a sparse model
file, with the weights training starts from, and masks.json with their costs and connectivity: the trainability
and Thm 1 stages read them), then trains.  The runs of a stage are independent and go to
a pool of `train.workers` processes of `train.threads // train.workers` torch threads
each; a run's result depends on that thread count only, never on which process took it
(tests/test_pipeline_parallel.py).

Dense runs first (stage `dense`): they are the reference of every comparison, and the
methods that start by training dense (lt, oneshot) take theirs from the dense run of the
same seed and representation (its final weights, and its weights after the lottery
ticket's rewind step, rewind.pt) instead of training it again.

A checkpoint is written every epoch under results/checkpoints/ (outside the stage's
outputs, which DVC clears before a stage runs), so a killed stage started again resumes
each run from its last epoch and ends with the metrics of an uninterrupted run.  The
checkpoints are removed once every run of the stage has written its outputs.  A name
carries a digest of the run's inputs (spec, masks, initial weights, data), so a
checkpoint left by a killed run is never resumed after any of them changed.

With ``train.world_size`` > 1 the stage re-launches itself under torchrun and trains its
runs one after another with DDP (ip/distributed.py); only rank 0 writes outputs.
``--repr`` and ``--seed`` restrict a stage to some of its runs (debugging; DVC runs all).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import torch

from ip import distributed as dist_utils
from ip.connectivity import connectivity_report
from ip.experiment import DenseRun, KeepState, PhaseTimes, compute_masks, train_run
from ip.files import RunFileError, load_file
from ip.masks import mask_summary
from ip.parallel import run_jobs
from ip.pruning import method_info
from ip.run import FINAL_FILE, write_final, write_start
from ip.train import CheckpointError, DivergenceError, checkpoint_file, remove_stale_checkpoints

from .common import (INIT_DIR, PHASES, PREPARED, RESULTS, STAGE_INFO, budget_problem, load_run, mask_file,
                     model_dir, prepared, run_dir, run_id, setup, spec_dict, stage, write_json)
from .live import dvclive_logger

CHECKPOINTS = RESULTS / "checkpoints"


def checkpoint_path(spec, name: str, inputs: list[Path]) -> Path:
    """results/checkpoints/<run>-<digest of the spec and the input files>.pt"""
    return checkpoint_file(CHECKPOINTS, name, spec_dict(spec), inputs)


def rewind_step(p) -> int:
    """The step after which a dense run keeps its weights for the lottery tickets."""
    return p.prune.options_for("lt").rewind_step


def dense_run(p, repr_: str, seed: int) -> DenseRun:
    """The finished dense run of (repr, seed), as lt and oneshot take it (``ip_eq``: the dense
    IP run; a dense network has no budget to charge the FB entries to)."""
    directory = model_dir("dense", "ip" if repr_ == "ip_eq" else repr_, seed)
    rewind = load_file(directory / "rewind.pt", "rewind weights of the dense run")
    if rewind.get("step") != rewind_step(p):
        raise RunFileError(directory / "rewind.pt", f"holds the weights after step {rewind.get('step')}, but "
                                                    f"prune.lt.rewind_step is {rewind_step(p)}")
    trained, _ = load_run(p, "dense", "ip" if repr_ == "ip_eq" else repr_, seed).trained()
    return DenseRun(trained.state_dict(), rewind["step"], rewind["state"])


def find_run_masks(p, run, method: str, repr_: str, seed: int, times: PhaseTimes) -> None:
    """The start file and masks.json of one run (``run``: its :class:`ip.run.Run`)."""
    name = run_id(method, repr_, seed)
    with times("loading"):
        model = run.new_model()
        dense = dense_run(p, repr_, seed) if method_info(method).starts_from_dense else None
    with times("mask_scoring"):
        masks, start_state = compute_masks(run.spec, model, run.data, dense_run=dense)
    with times("costs_and_connectivity"):
        summary = mask_summary(masks)
        connectivity = connectivity_report(model, masks, run.data.input_shape)
    with times("writing"):
        write_start(mask_file(method, repr_, seed), model, masks, start_state)
        write_json(run_dir(method, repr_, seed) / "masks.json",
                   {"kept_params": summary.kept_params, "prunable_params": summary.prunable_params,
                    "sparsity": summary.sparsity, "collapsed_layers": summary.collapsed_layers,
                    "per_layer": summary.per_layer, **connectivity})
    print(f"{name}: kept {summary.kept_params}/{summary.prunable_params} (sparsity {summary.sparsity:.4f}); "
          f"collapsed layers: {summary.collapsed_layers or 'none'}", flush=True)


def run_checkpoint(p, method: str, repr_: str, seed: int, spec=None) -> Path:
    """The checkpoint of a main run (``spec``: its spec, when the caller has it already)."""
    spec = spec if spec is not None else load_run(p, method, repr_, seed).spec
    return checkpoint_path(spec, run_id(method, repr_, seed),
                           [PREPARED, INIT_DIR / f"s{seed}.pt", mask_file(method, repr_, seed)])


def train_one(p, method: str, repr_: str, seed: int, threads: int | None = None) -> dict:
    """Masks, training and outputs of one run; returns its phase times (seconds)."""
    if threads is not None:
        torch.set_num_threads(threads)
    times = PhaseTimes()
    main_process = dist_utils.is_main_process()
    name = run_id(method, repr_, seed)
    with times("loading"):
        run = load_run(p, method, repr_, seed)
    if main_process:
        find_run_masks(p, run, method, repr_, seed, times)
    if dist_utils.is_distributed():
        torch.distributed.barrier()   # the other ranks read the mask file rank 0 wrote
    with times("loading"):
        model, masks = run.start()
    ckpt = run_checkpoint(p, method, repr_, seed, run.spec)
    if main_process:
        remove_stale_checkpoints(CHECKPOINTS, name, keep=ckpt)
    # a dense run keeps its weights after the lottery ticket's rewind step (on disk at once,
    # so that a run resumed past that step still has them)
    keep_file = ckpt.with_name(ckpt.stem + "-rewind.pt")
    keep = KeepState(rewind_step(p)) if method == "dense" else None

    def save_kept(step: int) -> None:
        if main_process:
            keep_file.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"step": step, "state": keep.state}, keep_file.with_suffix(".tmp"))
            os.replace(keep_file.with_suffix(".tmp"), keep_file)

    def step_end(step: int, m) -> None:
        keep(step, m)
        if step == keep.step:
            save_kept(step)

    if keep is not None and keep.step == 0:
        keep(0, model)
        save_kept(0)
    out, tensors = run_dir(method, repr_, seed), model_dir(method, repr_, seed)
    try:
        with dvclive_logger(out / "live") if main_process else contextlib.nullcontext() as log:
            metrics, history, final_masks = train_run(run.spec, model, masks, run.data, checkpoint=ckpt, log=log,
                                                      step_end=step_end if keep else None)
    except (DivergenceError, CheckpointError) as exc:
        raise SystemExit(f"error: {name}: {exc}") from exc
    if main_process:
        with times("writing"):
            tensors.mkdir(parents=True, exist_ok=True)
            write_final(tensors / FINAL_FILE, model, final_masks)
            if keep is not None:
                if not keep_file.exists():
                    raise SystemExit(f"error: {name}: the weights after step {keep.step} were not kept "
                                     f"({keep_file} is missing); delete results/checkpoints/{name}-* and re-run")
                os.replace(keep_file, tensors / "rewind.pt")
            write_json(out / "history.json", history)
            write_json(out / "metrics.json", metrics)
        print(f"{name}: test acc {metrics['test_acc']:.4f}, train acc {metrics['train_acc']:.4f}, "
              f"sparsity {metrics['sparsity_actual']:.4f}, {metrics['seconds']:.0f}s", flush=True)
    # the run's own breakdown: training steps, evaluation, recalibration, gradient flow, ...
    return {**times, **{f"run_{key.removeprefix('time_')}": value for key, value in metrics.items()
                        if key.startswith("time_")}}


def check_inputs(p, method: str, runs: list[tuple[str, int]]) -> None:
    """Every file the stage's runs read, checked before any of them starts (a bad one ends the
    stage with one line naming it, and nothing is written)."""
    prepared()
    for repr_, seed in runs:
        run = load_run(p, method, repr_, seed)
        run.new_model()
        problem = budget_problem(run.spec, run.init_state, run.data)
        if problem:
            print(f"error: {run.spec.run_id}: {problem}; lower sparsity or leave ip_eq out of reprs", file=sys.stderr)
            raise SystemExit(2)
        if method_info(method).starts_from_dense:
            dense_run(p, repr_, seed)


def parse_args(argv) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="train the main runs of one method")
    ap.add_argument("--method", required=True)
    ap.add_argument("--repr", dest="repr_", action="append", help="only this representation (repeatable)")
    ap.add_argument("--seed", type=int, action="append", help="only this seed (repeatable)")
    return ap.parse_args(argv)


def stage_runs(p, args) -> list[tuple[str, int]]:
    """(repr, seed) of the stage's runs, in the order of params.yaml."""
    for value, allowed, key in ((args.repr_, p.reprs, "reprs"), (args.seed, p.seeds, "seeds")):
        if value and not set(value) <= set(allowed):
            print(f"error: {sorted(set(value) - set(allowed))} not in params.yaml's {key} ({allowed})",
                  file=sys.stderr)
            raise SystemExit(2)
    return [(r, s) for r in p.reprs_of(args.method) for s in p.seeds if (not args.repr_ or r in args.repr_)
            and (not args.seed or s in args.seed)]


@stage
def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    p = setup()
    if args.method not in p.run_methods:
        print(f"error: --method {args.method} is not a method of params.yaml ({', '.join(p.run_methods)})",
              file=sys.stderr)
        raise SystemExit(2)
    world = p.train.world_size
    if world > 1 and not dist_utils.launched_by_torchrun():
        # one process per rank on this machine, under torchrun; dvc.yaml's cmd stays `python -m pipeline.train`
        raise SystemExit(subprocess.call(dist_utils.torchrun_command(world, "pipeline.train", argv)))
    if dist_utils.launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) != world:
        print(f"error: params.yaml: train.world_size: {world}, but torchrun started {os.environ['WORLD_SIZE']} "
              "processes", file=sys.stderr)
        raise SystemExit(2)
    runs = stage_runs(p, args)
    check_inputs(p, args.method, runs)
    if world > 1:
        dist_utils.init_distributed()
        try:
            phases = [train_one(p, args.method, r, s) for r, s in runs]
        finally:
            dist_utils.teardown()
    else:
        workers = max(1, min(p.train.workers, len(runs)))
        per_run_threads = max(1, p.train.threads // max(1, p.train.workers))
        jobs = [(p, args.method, r, s, per_run_threads) for r, s in runs]
        phases = run_jobs(train_one, jobs, workers, p.train.threads,
                          desc="dense" if args.method == "dense" else f"train@{args.method}")
        STAGE_INFO["processes"] = workers
    for record in phases:
        for key, value in record.items():
            PHASES[key] = PHASES.get(key, 0.0) + value
    if dist_utils.is_main_process():
        for r, s in runs:
            name = run_id(args.method, r, s)
            for old in CHECKPOINTS.glob(f"{name}-*"):
                old.unlink()


if __name__ == "__main__":
    main()
