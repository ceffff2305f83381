"""Stage `train@<method>-<repr>-<seed>`: sparse training of one run from its masks.

A checkpoint is written every epoch under results/checkpoints/ (outside the stage's
outputs, which DVC clears before a stage runs), so a killed run started again resumes
from its last epoch and ends with the metrics of an uninterrupted run.  The checkpoint is
removed once the run has finished and its outputs are written.  Its name carries a digest
of the run's inputs (spec, masks, initial weights, data), so a checkpoint left by a killed
run is never resumed after any of them changed (it is deleted instead).

With ``train.world_size`` > 1 the stage re-launches itself under torchrun (one process per
rank on this machine; dvc.yaml's command stays the same) and trains with DDP, see
ip/distributed.py; only rank 0 writes outputs.  Started by torchrun already (several
machines: ``torchrun --nnodes ... -m pipeline.train ...``), it joins the process group.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from ip import distributed as dist_utils
from ip.experiment import build_model, train_run
from ip.masks import check_masks
from ip.train import CheckpointError, DivergenceError

from .common import (INIT_DIR, MASK_DIR, PREPARED, RESULTS, RUN_DIR, load_init, load_prepared, run_id, run_spec,
                     setup, spec_dict, write_json)
from .masks import parse

CHECKPOINTS = RESULTS / "checkpoints"


def load_mask_file(path: Path, model) -> tuple[dict, dict]:
    if not path.exists():
        raise SystemExit(f"error: {path} missing: run the matching masks stage first")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        masks, start = blob["masks"], blob["start_state"]
    except Exception as exc:  # noqa: BLE001
        raise SystemExit(f"error: mask file {path} is unreadable or corrupt ({type(exc).__name__}); "
                         "re-run its masks stage (dvc repro -f masks@...)") from exc
    try:
        masks = check_masks(masks, model, f"mask file {path}")
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc
    return masks, start


def log_with_dvclive(directory: Path, history: list[dict]) -> None:
    """Per-epoch metrics in DVCLive's layout (live/metrics.json, live/plots/metrics/*.tsv),
    which dvc.yaml declares as the stage's plots."""
    from dvclive import Live
    from scmrepo.exceptions import SCMError

    class FilesOnlyLive(Live):
        def _init_dvc(self):   # no repository integration: dvc.yaml already declares the files
            pass

    try:
        live = Live(dir=str(directory), dvcyaml=None, save_dvc_exp=False, report=None)
    except SCMError:   # e.g. a git repository without commits yet, where DVCLive cannot read HEAD
        live = FilesOnlyLive(dir=str(directory), dvcyaml=None, save_dvc_exp=False, report=None)
    with live:
        for record in history:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)) and value == value:
                    live.log_metric(key, value)
            live.next_step()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_path(spec, name: str, inputs: list[Path]) -> Path:
    """results/checkpoints/<run>-<digest of the spec and the input files>.pt"""
    h = hashlib.sha256(json.dumps(spec_dict(spec), sort_keys=True, default=str).encode())
    for path in inputs:
        h.update(_file_digest(path).encode())
    return CHECKPOINTS / f"{name}-{h.hexdigest()[:16]}.pt"


def _remove_stale_checkpoints(name: str, keep: Path) -> None:
    for old in [CHECKPOINTS / f"{name}.pt", *CHECKPOINTS.glob(f"{name}-" + "[0-9a-f]" * 16 + ".pt")]:
        if old != keep and old.exists():
            print(f"{name}: removing checkpoint {old}, written for other inputs")
            old.unlink()


def _exit_bad_param(message: str) -> None:
    print(f"error: params.yaml: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    p = setup()
    world = p.train.world_size
    if world > 1 and p.train.batch_size % world:
        _exit_bad_param(f"train.batch_size: {p.train.batch_size} must be a multiple of train.world_size ({world})")
    if world > 1 and not dist_utils.launched_by_torchrun():
        # one process per rank on this machine, under torchrun; dvc.yaml's cmd stays `python -m pipeline.train`
        raise SystemExit(subprocess.call(dist_utils.torchrun_command(world, "pipeline.train", argv)))
    if dist_utils.launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) != world:
        _exit_bad_param(f"train.world_size: {world}, but torchrun started {os.environ['WORLD_SIZE']} processes")
    if world > 1:
        dist_utils.init_distributed()
    try:
        _train(args, p)
    finally:
        dist_utils.teardown()


def _train(args, p) -> None:
    main_process = dist_utils.is_main_process()
    spec = run_spec(p, args.method, args.repr_, args.seed)
    name = run_id(args.method, args.repr_, args.seed)
    data = load_prepared()
    model = build_model(spec, load_init(args.seed), data.num_classes, data.input_shape[0])
    mask_file = MASK_DIR / f"{name}.pt"
    masks, start_state = load_mask_file(mask_file, model)
    model.load_state_dict(start_state)
    ckpt = checkpoint_path(spec, name, [PREPARED, INIT_DIR / f"s{args.seed}.pt", mask_file])
    if main_process:
        _remove_stale_checkpoints(name, ckpt)
    try:
        metrics, history, final_masks = train_run(spec, model, masks, data, checkpoint=ckpt, progress=True)
    except (DivergenceError, CheckpointError) as exc:
        raise SystemExit(f"error: {name}: {exc}") from exc
    if not main_process:
        return
    out = RUN_DIR / name
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "model.pt")
    torch.save(final_masks, out / "final_masks.pt")
    write_json(out / "history.json", history)
    log_with_dvclive(out / "live", history)
    write_json(out / "metrics.json", metrics)
    ckpt.unlink(missing_ok=True)
    print(f"{name}: test acc {metrics['test_acc']:.4f}, train acc {metrics['train_acc']:.4f}, "
          f"sparsity {metrics['sparsity_actual']:.4f}, {metrics['seconds']:.0f}s")


if __name__ == "__main__":
    main()
