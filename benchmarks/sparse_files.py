"""Sizes and save/load times of sparse model files against ``torch.save``.

For ResNet-20 (width 16, Fashion-MNIST shapes) at sparsity 0.9 and 0.98 and torchvision's
resnet18 (ImageNet shapes) at 0.98, SP and IP (DCT bases moved off their start, as after
training), random masks applied: the bytes of

- ``torch.save({"state": state_dict, "masks": masks})``, the way a pruned model is commonly
  saved (bool masks: a byte per entry);
- ``ip.save_sparse``; and the packed ideal (kept values, one bit per masked entry, every
  other tensor once), which no file of this content can go below;

and the median wall time of saving and of loading each (loading ``torch.load`` with
``weights_only=True`` into a dict; ``ip.load_sparse`` rebuilds the model and fills it).

    .venv/bin/python benchmarks/sparse_files.py [--repeats 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ip  # noqa: E402
from ip.masks import MaskEnforcer, masks_from_scores, prunable_parameters  # noqa: E402
from ip.sparse_files import packed_ideal_bytes  # noqa: E402

CASES = [("resnet20", 16, 1, 0.9), ("resnet20", 16, 1, 0.98), ("resnet18", None, 3, 0.98)]


def pruned(name, width, in_channels, sparsity, repr_):
    torch.manual_seed(0)
    model = ip.get_model(name, num_classes=10 if name == "resnet20" else 1000, in_channels=in_channels, width=width)
    if repr_ == "ip":
        model = ip.to_interspace(model, fb_init="dct")
        with torch.no_grad():
            for fb in ip.basis_parameters(model):
                fb.add_(0.01 * torch.randn_like(fb))
    masks = masks_from_scores({n: torch.rand_like(p) for n, p in prunable_parameters(model).items()}, sparsity)
    MaskEnforcer(model, masks).remove()
    return model, masks


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, width, in_channels, sparsity in CASES:
            for repr_ in ("sp", "ip"):
                model, masks = pruned(name, width, in_channels, sparsity, repr_)
                pt, st = tmp / "m.pt", tmp / "m.safetensors"
                save_pt = timed(lambda: torch.save({"state": model.state_dict(), "masks": masks}, pt), args.repeats)
                load_pt = timed(lambda: torch.load(pt, weights_only=True), args.repeats)
                save_st = timed(lambda: ip.save_sparse(model, masks, st), args.repeats)
                load_st = timed(lambda: ip.load_sparse(st), args.repeats)
                ideal = packed_ideal_bytes(model, masks)
                rows.append(dict(model=name, repr=repr_, sparsity=sparsity, torch_save_bytes=pt.stat().st_size,
                                 sparse_bytes=st.stat().st_size, ideal_bytes=ideal,
                                 sparse_over_ideal=st.stat().st_size / ideal,
                                 torch_save_over_sparse=pt.stat().st_size / st.stat().st_size,
                                 save_ms_torch=1e3 * save_pt, save_ms_sparse=1e3 * save_st,
                                 load_ms_torch=1e3 * load_pt, load_ms_sparse=1e3 * load_st))
    print(f"{'model':9} {'repr':4} {'sparsity':>8} {'torch.save':>11} {'sparse':>10} {'ideal':>10} "
          f"{'/ideal':>6} {'smaller':>7} {'save ms':>15} {'load ms':>15}")
    for r in rows:
        print(f"{r['model']:9} {r['repr']:4} {r['sparsity']:8.2f} {r['torch_save_bytes']:11,d} "
              f"{r['sparse_bytes']:10,d} {r['ideal_bytes']:10,d} {r['sparse_over_ideal']:6.3f} "
              f"{r['torch_save_over_sparse']:6.1f}x {r['save_ms_torch']:6.1f} / {r['save_ms_sparse']:6.1f} "
              f"{r['load_ms_torch']:6.1f} / {r['load_ms_sparse']:6.1f}")
    print("save ms, load ms: torch.save / ip.save_sparse, torch.load / ip.load_sparse (medians, one thread)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
