"""What the study's files in git weigh: each kind of run's model files at the default's shapes
(written by the pipeline's own writers), and the whole default study projected from them.

The files of one run of each kind are written exactly as the stages write them: a sparse run's
start.safetensors and final.safetensors (masks from random ERK pruning at the headline
sparsity; the format's size does not depend on which entries are kept), a run of a method that
prunes during training (GMP: its start is the dense initial model, its final file sparse), a
dense run's start, final and rewind files, and one seed's initial weights.  The projection
multiplies them by the numbers of runs of params.yaml and adds the run records now in
results/runs/; the model files now in results/models/ are printed beside it.

Usage: python benchmarks/study_size.py [--params params.yaml]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ip.experiment import build_model, initial_state  # noqa: E402
from ip.masks import MaskEnforcer  # noqa: E402
from ip.pruning import find_masks, method_info  # noqa: E402
from ip.run import write_final, write_start  # noqa: E402
from pipeline.common import run_spec  # noqa: E402
from pipeline.plan import SHAPES  # noqa: E402
from study.params import validate  # noqa: E402


def run_files(p, repr_: str, method: str, out: Path, dense_start: bool = False) -> int:
    """Bytes of one main run's model files, written by the pipeline's writers (``dense_start``:
    the start file holds the unpruned model, as for a method that prunes during training)."""
    channels, _, _, classes = SHAPES[p.data.name]
    init = initial_state(p.model.name, p.model.width, classes, channels, 0)
    spec = run_spec(p, method, repr_, 0)
    model = build_model(spec, init, classes, channels)
    if method == "dense":
        masks = {}
    else:
        masks, _ = find_masks("random", model, spec.sparsity, distribution="erk", fb_in_budget=repr_ == "ip_eq",
                              generator=torch.Generator().manual_seed(0))
    out.mkdir(parents=True, exist_ok=True)
    write_start(out / "start.safetensors", model, {k: torch.ones_like(v) for k, v in masks.items()}
                if dense_start else masks, None)
    MaskEnforcer(model, masks).remove()   # as after training: pruned entries zero
    write_final(out / "final.safetensors", model, masks)
    if method == "dense":
        torch.save({"step": 0, "state": model.state_dict()}, out / "rewind.pt")
    return sum(f.stat().st_size for f in out.iterdir())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    p = validate(yaml.safe_load(Path(args.params).read_text()))
    channels, _, _, classes = SHAPES[p.data.name]
    gradual = [m for m in p.methods if dense_start(m)]   # their start file holds the dense model
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.save(initial_state(p.model.name, p.model.width, classes, channels, 0), tmp / "s0.pt")
        init_bytes = (tmp / "s0.pt").stat().st_size
        sizes = {(m, r): run_files(p, r, m, tmp / f"{m}-{r}") for m in ("dense", "random") for r in p.reprs_of(m)}
        if gradual:
            sizes.update({("gradual", r): run_files(p, r, "random", tmp / f"gradual-{r}", dense_start=True)
                          for r in p.reprs})
    seeds = sorted(set(p.seeds) | set(p.sweep.seeds or []) | set(p.ablation.seeds or []))
    sparse_runs = {r: (len(p.methods) - len(gradual)) * len(p.seeds) for r in p.reprs}
    gradual_runs = {r: len(gradual) * len(p.seeds) for r in p.reprs} if gradual else {}
    dense_runs = {r: len(p.seeds) for r in p.reprs_of("dense")}
    records = [f for f in Path("results/runs").rglob("*") if f.is_file()]
    record_bytes = sum(f.stat().st_size for f in records)
    run_dirs = {f.parent for f in records if f.name == "history.json"}
    print(f"{p.model.name} width {p.model.width}, sparsity {p.sparsity}, {p.data.name}")
    print("one run's model files (start + final [+ rewind]):")
    for (m, r), b in sizes.items():
        kind = {"dense": "dense", "random": "pruned"}.get(m, "pruned during training (dense start)")
        print(f"  {r:5s} {kind:38s} {b / 1e3:9.1f} kB")
    models = (sum(sizes[("random", r)] * n for r, n in sparse_runs.items())
              + sum(sizes[("gradual", r)] * n for r, n in gradual_runs.items())
              + sum(sizes[("dense", r)] * n for r, n in dense_runs.items()))
    print(f"initial weights: {init_bytes / 1e3:.1f} kB per seed, {len(seeds)} seeds: {init_bytes * len(seeds) / 1e6:.1f} MB")
    print(f"models of the default's {sum(sparse_runs.values()) + sum(gradual_runs.values())} pruned and "
          f"{sum(dense_runs.values())} dense runs: {models / 1e6:.1f} MB")
    present = [f for f in Path("results/models").rglob("*") if f.is_file()]
    if present:
        print(f"model files in results/models/ now: {sum(f.stat().st_size for f in present) / 1e6:.1f} MB")
    if run_dirs:
        print(f"run records in results/runs/ now: {record_bytes / 1e6:.1f} MB over {len(run_dirs)} runs "
              f"({record_bytes / len(run_dirs) / 1e3:.0f} kB per run)")
    print(f"projected results/ (models + initial weights + records): "
          f"{(models + init_bytes * len(seeds) + record_bytes) / 1e6:.1f} MB")


def dense_start(method: str) -> bool:
    """Whether a method's start file holds the unpruned model (it prunes during training)."""
    return method_info(method).family == "gradual"


if __name__ == "__main__":
    main()
