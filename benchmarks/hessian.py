"""Top-k Hessian eigenvalues: Lanczos (ARPACK) vs power iteration with deflation (PyHessian).

Network: ResNet-20 (width 16, 1 input channel) trained briefly on Fashion-MNIST
(``--train-images`` images for ``--epochs`` epochs of SGD; the idx files are read from
/usr/share/datasets/fashion-mnist if present, otherwise random images are used and the
table says so).  Operator: Hessian of the mean cross-entropy on ``--hessian-images``
fixed training images, BN in eval mode, all trainable coordinates (dense network, or
masked with ``--sparsity`` random global masks).

For each method the table gives the number of Hessian-vector products, seconds, and
the largest relative error of the top-k eigenvalues against a tight Lanczos reference
(tol 1e-6, another start vector, counted separately).  Power iteration converges to the
eigenvalues of largest *modulus*, so it is compared with Lanczos ``which='LM'`` and
its reference; Lanczos ``which='LA'`` (largest algebraic, the library default) is shown
too.  Power iteration is run with PyHessian's stopping rule at ``--tol`` and at
``--tol``/10, because the rule bounds the change between iterates, not the error.

Run: ``.venv/bin/python benchmarks/hessian.py`` (about 10 minutes on 2 shared CPU cores).
"""
from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ip.interspace import to_interspace  # noqa: E402
from ip.masks import MaskEnforcer, masks_from_scores, prunable_parameters  # noqa: E402
from ip.metrics.hessian import HessianOperator, power_iteration_top_k, top_eigenvalues  # noqa: E402
from ip.models import get_model  # noqa: E402

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: Path) -> np.ndarray:
    """An idx file (optionally gzipped): big-endian dims after a 4-byte magic whose last byte is the rank."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def load_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    images = FASHION_MNIST / "train-images-idx3-ubyte.gz"
    labels = FASHION_MNIST / "train-labels-idx1-ubyte.gz"
    gen = torch.Generator().manual_seed(seed)
    if images.exists() and labels.exists():
        x = torch.from_numpy(read_idx(images).copy()).float().div_(255.0)
        y = torch.from_numpy(read_idx(labels).copy()).long()
        idx = torch.randperm(x.shape[0], generator=gen)[:n]
        x = x[idx].unsqueeze(1)
        x = (x - x.mean()) / x.std()
        return x, y[idx], "fashion-mnist"
    return torch.randn(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen), "random"


def train_briefly(model, x, y, epochs: int, batch_size: int, lr: float, seed: int,
                  enforcer: MaskEnforcer | None = None) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    if enforcer is not None:
        enforcer.attach(opt)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    loss = float("nan")
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for start in range(0, x.shape[0], batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad()
            out = F.cross_entropy(model(x[idx]), y[idx])
            out.backward()
            opt.step()
            loss = float(out.detach())
    return loss


def max_rel_error(values, reference) -> float:
    """Largest relative error after matching both lists in order of decreasing modulus."""
    values = np.asarray(values)[np.argsort(-np.abs(values))]
    reference = np.asarray(reference)[np.argsort(-np.abs(reference))]
    return float(np.max(np.abs(values - reference) / np.abs(reference)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--hessian-images", type=int, default=128)
    parser.add_argument("--repr", choices=["sp", "ip"], default="sp")
    parser.add_argument("--sparsity", type=float, default=0.0)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--max-iter", type=int, default=100, help="power iterations per eigenvalue, at most")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 avoids spin-waiting when the cores are shared)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)
    x, y, source = load_images(args.train_images, args.seed)
    model = get_model("resnet20", num_classes=10, in_channels=1, width=16)
    if args.repr == "ip":
        to_interspace(model, fb_init="spatial")
    masks = None
    if args.sparsity > 0:
        gen = torch.Generator().manual_seed(args.seed)
        masks = masks_from_scores({n: torch.rand(p.shape, generator=gen)
                                   for n, p in prunable_parameters(model).items()}, args.sparsity)
    enforcer = MaskEnforcer(model, masks) if masks else None
    start = time.perf_counter()
    final_loss = train_briefly(model, x, y, args.epochs, 128, 0.05, args.seed, enforcer)
    if enforcer:
        enforcer.remove()
    train_seconds = time.perf_counter() - start

    n = args.hessian_images
    batches = [(x[i:i + 128], y[i:i + 128]) for i in range(0, n, 128)]
    op = HessianOperator(model, batches, masks)
    print(f"data: {source}; trained {args.epochs} epoch(s) on {args.train_images} images in {train_seconds:.0f} s, "
          f"last batch loss {final_loss:.3f}; repr {args.repr}, sparsity {args.sparsity}; "
          f"Hessian on {n} images, dim {op.dim}; torch threads {torch.get_num_threads()}")

    # references with another start vector, so they share no Krylov space with the runs measured
    ref = {which: top_eigenvalues(op, k=args.k, tol=1e-6, which=which, generator=args.seed + 1)
           for which in ("LA", "LM")}
    rows = [(f"lanczos {which} (reference)", 1e-6, which, ref[which]) for which in ("LA", "LM")]
    for which in ("LA", "LM"):
        rows.append((f"lanczos {which}", args.tol, which, top_eigenvalues(op, k=args.k, tol=args.tol, which=which,
                                                                           generator=args.seed)))
    # power iteration converges to the largest |eigenvalue|: its reference is LM
    for tol in (args.tol, args.tol / 10):
        rows.append(("power+deflation", tol, "LM",
                     power_iteration_top_k(op, k=args.k, tol=tol, max_iter=args.max_iter, generator=args.seed)))

    for which in ("LA", "LM"):
        print(f"reference top-{args.k} ({which}): " + ", ".join(f"{v:.5g}" for v in ref[which]["eigenvalues"]))
    print(f"{'method':<26}{'tol':>8}{'HVPs':>7}{'seconds':>9}{'s/HVP':>7}{'max rel err':>13}  within {args.tol:g}")
    for name, tol, which, res in rows:
        err = max_rel_error(res["eigenvalues"], ref[which]["eigenvalues"])
        print(f"{name:<26}{tol:>8.0e}{res['hvps']:>7d}{res['seconds']:>9.1f}{res['seconds'] / res['hvps']:>7.2f}"
              f"{err:>13.2e}  {'yes' if err <= args.tol else 'no'}")
    for name, tol, which, res in rows:
        if name.startswith("power"):
            print(f"power (tol {tol:g}): eigenvalues " + ", ".join(f"{v:.5g}" for v in res["eigenvalues"])
                  + f"; iterations {res['iterations']}; converged {res['converged']}")
    lanczos = {which: res for name, _, which, res in rows if name == f"lanczos {which}"}
    for name, tol, which, res in rows:
        if name.startswith("power"):
            print(f"HVPs lanczos LM / power (tol {tol:g}): {lanczos['LM']['hvps'] / res['hvps']:.2f}")

if __name__ == "__main__":
    main()
