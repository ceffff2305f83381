"""Stage `train@<method>-<repr>-<seed>`: sparse training of one run from its masks.

A checkpoint is written every epoch under results/checkpoints/ (outside the stage's
outputs, which DVC clears before a stage runs), so a killed run started again resumes
from its last epoch and ends with the metrics of an uninterrupted run.  The checkpoint is
removed once the run has finished and its outputs are written.  Its name carries a digest
of the run's inputs (spec, masks, initial weights, data), so a checkpoint left by a killed
run is never resumed after any of them changed (it is deleted instead).

With ``train.world_size`` > 1 the stage re-launches itself under torchrun and trains with DDP
(ip/distributed.py); only rank 0 writes outputs.  Started by torchrun already (several
machines: ``torchrun --nnodes ... -m pipeline.train ...``), it joins the process group.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import torch

from ip import distributed as dist_utils
from ip.experiment import train_run
from ip.train import CheckpointError, DivergenceError, checkpoint_file, remove_stale_checkpoints

from .common import (INIT_DIR, MASK_DIR, PHASES, PREPARED, RESULTS, RUN_DIR, load_run, parse_run_args,
                     run_id, setup, spec_dict, stage, write_json)
from .live import dvclive_logger

CHECKPOINTS = RESULTS / "checkpoints"


def checkpoint_path(spec, name: str, inputs: list[Path]) -> Path:
    """results/checkpoints/<run>-<digest of the spec and the input files>.pt"""
    return checkpoint_file(CHECKPOINTS, name, spec_dict(spec), inputs)


@stage
def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_run_args(argv)
    p = setup()
    world = p.train.world_size
    if world > 1 and not dist_utils.launched_by_torchrun():
        # one process per rank on this machine, under torchrun; dvc.yaml's cmd stays `python -m pipeline.train`
        raise SystemExit(subprocess.call(dist_utils.torchrun_command(world, "pipeline.train", argv)))
    if dist_utils.launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) != world:
        print(f"error: params.yaml: train.world_size: {world}, but torchrun started {os.environ['WORLD_SIZE']} "
              "processes", file=sys.stderr)
        raise SystemExit(2)
    if world > 1:
        dist_utils.init_distributed()
    try:
        _train(args, p)
    finally:
        dist_utils.teardown()


def _train(args, p) -> None:
    main_process = dist_utils.is_main_process()
    name = run_id(args.method, args.repr_, args.seed)
    with PHASES("loading"):
        run = load_run(p, args.method, args.repr_, args.seed)
        model, masks = run.start()
    ckpt = checkpoint_path(run.spec, name, [PREPARED, INIT_DIR / f"s{args.seed}.pt", MASK_DIR / f"{name}.pt"])
    out = RUN_DIR / name
    if main_process:
        remove_stale_checkpoints(CHECKPOINTS, name, keep=ckpt)
    try:
        with dvclive_logger(out / "live") if main_process else contextlib.nullcontext() as log:
            metrics, history, final_masks = train_run(run.spec, model, masks, run.data, checkpoint=ckpt, log=log,
                                                      progress=True)
    except (DivergenceError, CheckpointError) as exc:
        raise SystemExit(f"error: {name}: {exc}") from exc
    if not main_process:
        return
    with PHASES("writing"):
        out.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), out / "model.pt")
        torch.save(final_masks, out / "final_masks.pt")
        write_json(out / "history.json", history)
        write_json(out / "metrics.json", metrics)
        ckpt.unlink(missing_ok=True)
    # the run's own breakdown: training steps, evaluation, recalibration, gradient flow, ...
    PHASES.update({f"run_{key.removeprefix('time_')}": value for key, value in metrics.items()
                   if key.startswith("time_")})
    print(f"{name}: test acc {metrics['test_acc']:.4f}, train acc {metrics['train_acc']:.4f}, "
          f"sparsity {metrics['sparsity_actual']:.4f}, {metrics['seconds']:.0f}s")


if __name__ == "__main__":
    main()
