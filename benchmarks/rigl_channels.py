"""What the conv output channels that RigL emptied look like at the end of training, read from the
trained runs of the `train@rigl` stage (results/models/rigl/<repr>-s<seed>/).

For every conv layer with output channels that keep no entry, one forward and backward pass in
training mode (BN on batch statistics, as in RigL's updates) on a fixed slice of the training set
gives, per output channel, the norm of the dense gradient of its entries (w for SP, lambda for IP).
An empty channel feeds BN a constant, so its normalised output is 0 and BN's backward multiplies
its gradient by gamma / sqrt(eps): where the following ReLU passes (a positive BN bias, or a
residual sum), that channel's gradient is orders of magnitude above the others', and gradient
regrowth puts its new entries there; where nothing passes it back (bias <= 0 straight into a ReLU,
or no kept entry of the next layer reads the channel), the gradient is exactly 0 and the channel
never grows back.  The last column is the share of the
layer's largest-|gradient| inactive entries (as many as ``--grow-share`` of its kept entries) that
lie in empty channels: what the next RigL update would grow there.

    python benchmarks/rigl_channels.py [--seed 0] [--reprs sp ip ip_eq] [--samples 512]
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from pipeline.common import load_run, prepared
from study.params import load_params


def bn_bias(model: torch.nn.Module, conv_name: str) -> torch.Tensor | None:
    """The bias of the BN that follows conv ``conv_name`` in the ResNets of ip.models (convN -> bnN,
    shortcut.0 -> shortcut.1), or None."""
    module = conv_name.split(".parametrizations")[0].removesuffix(".weight")
    head, _, last = module.rpartition(".")
    if last.startswith("conv"):
        bn = f"{head + '.' if head else ''}bn{last[4:]}"
    elif last == "0" and head.endswith("shortcut"):
        bn = f"{head}.1"
    else:
        return None
    modules = dict(model.named_modules())
    return modules[bn].bias.detach() if bn in modules else None


def layer_rows(model: torch.nn.Module, masks: dict, x: torch.Tensor, y: torch.Tensor, grow_share: float) -> list:
    model.train()
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    params = dict(model.named_parameters())
    rows = []
    for name, mask in masks.items():
        if mask.dim() != 4:
            continue
        out = mask.shape[0]
        empty = ~mask.reshape(out, -1).any(1)
        if not empty.any():
            continue
        grad = params[name].grad
        norms = grad.reshape(out, -1).norm(dim=1)
        k = max(1, int(grow_share * mask.sum()))
        top = grad.abs().masked_fill(mask, -1.0).reshape(-1).topk(k).indices
        bias = bn_bias(model, name)
        rows.append({
            "layer": name.split(".parametrizations")[0].removesuffix(".weight"),
            "empty": f"{int(empty.sum())}/{out}",
            "empty |g| max": float(norms[empty].max()),
            "empty |g| = 0": int((norms[empty] == 0).sum()),
            "kept |g| median": float(norms[~empty].median()) if (~empty).any() else float("nan"),
            "empty BN bias > 0": "-" if bias is None else int((bias[empty] > 0).sum()),
            "growth into empty": float(empty[top // mask[0].numel()].float().mean()),
        })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="rigl")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reprs", nargs="+", default=["sp", "ip", "ip_eq"])
    ap.add_argument("--samples", type=int, default=512, help="training images of the forward/backward pass")
    ap.add_argument("--grow-share", type=float, default=0.1, help="regrowth candidates per layer, share of kept")
    args = ap.parse_args()
    p = load_params("params.yaml")
    x, y = prepared().sample_train(args.samples, torch.Generator().manual_seed(0))
    for repr_ in args.reprs:
        model, masks = load_run(p, args.method, repr_, args.seed).trained()
        rows = layer_rows(model, masks, x, y, args.grow_share)
        print(f"{args.method} {repr_} seed {args.seed}: {len(rows)} conv layers with empty output channels")
        for row in rows:
            print("  " + "  ".join(f"{k} {v:.2e}" if isinstance(v, float) and k != "growth into empty"
                                   else f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                   for k, v in row.items()))


if __name__ == "__main__":
    main()
