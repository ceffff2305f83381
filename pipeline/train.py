"""Stage `train@<method>-<repr>-<seed>`: sparse training of one run from its masks.

A checkpoint is written every epoch under results/checkpoints/ (outside the stage's
outputs, which DVC clears before a stage runs), so a killed run started again resumes
from its last epoch and ends with the metrics of an uninterrupted run.  The checkpoint is
removed once the run has finished and its outputs are written."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ip.experiment import build_model, train_run
from ip.masks import check_masks
from ip.train import CheckpointError, DivergenceError

from .common import MASK_DIR, RESULTS, RUN_DIR, load_init, load_prepared, run_id, run_spec, setup, write_json
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
    from dvclive import Live
    with Live(dir=str(directory), dvcyaml=None, save_dvc_exp=False, report=None) as live:
        for record in history:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)) and value == value:
                    live.log_metric(key, value)
            live.next_step()


def main(argv=None) -> None:
    args = parse(argv)
    p = setup()
    spec = run_spec(p, args.method, args.repr_, args.seed)
    name = run_id(args.method, args.repr_, args.seed)
    data = load_prepared()
    model = build_model(spec, load_init(args.seed), data.num_classes, data.input_shape[0])
    masks, start_state = load_mask_file(MASK_DIR / f"{name}.pt", model)
    model.load_state_dict(start_state)
    ckpt = CHECKPOINTS / f"{name}.pt"
    try:
        metrics, history, final_masks = train_run(spec, model, masks, data, checkpoint=ckpt, progress=True)
    except (DivergenceError, CheckpointError) as exc:
        raise SystemExit(f"error: {name}: {exc}") from exc
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
