"""Which convolutions reach oneDNN's faulty 1x1 backward-weights kernel (see ip/onednn_guard.py).

Each configuration runs in a forked child: a conv of the given shape, memory format and
thread count, forward and backward ``--steps`` times; the child reports the oneDNN
kernel that computed the weight gradient (oneDNN's verbose log) and compares the
gradient with oneDNN turned off.  The parent prints one row per configuration:

    in out k stride batch hw format threads  result  kernel

with result ``ok``, ``wrong-grad`` (relative error above 1e-4), ``signal6``/``signal11``
(the child died: abort or segfault).  Heap corruption is caught at the next free when
glibc's malloc checks are on, so run it as

    LD_PRELOAD=libc_malloc_debug.so.0 GLIBC_TUNABLES=glibc.malloc.check=3 \\
        .venv/bin/python benchmarks/onednn_1x1.py --grid channels

Grids: ``channels`` (in x out channels x stride x format x threads, batch 16, 8x8),
``sizes`` (batch and image size at 3, 4 and 12 in channels), ``kernel3`` (3x3 convs),
``study`` (the 1x1 convs of the study's and the presets' networks: ResNet-20 width 16 and
ResNet-32 width 16 on 32x32 images, resnet18's shortcuts; 1x1 convs of 8 or more input
channels, as all of resnet50's, are never guarded).  ``--guarded`` runs each
conv through ``ip.guard_convs`` (the library's fix) instead of plain ``nn.Conv2d``.
A whole grid takes minutes (about one second a row: every child compiles its kernels).
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from ip.onednn_guard import guard_convs  # noqa: E402

GRIDS = {
    "channels": dict(cin=[1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24], cout=[4, 8, 16, 32, 64], k=[1], stride=[1, 2],
                     n=[16], hw=[8], cl=[0, 1], threads=[1, 2]),
    "sizes": dict(cin=[3, 4, 12], cout=[8, 16], k=[1], stride=[1, 2], n=[1, 2, 64, 128], hw=[4, 16, 32],
                  cl=[0, 1], threads=[1]),
    "kernel3": dict(cin=[1, 3, 4, 8, 16], cout=[4, 8, 16, 32], k=[3], stride=[1, 2], n=[16], hw=[8], cl=[0, 1],
                    threads=[1, 2]),
    # (in, out, stride, image size at that layer) of every 1x1 conv, batch 128, one thread per worker
    "study": dict(shape=[(16, 32, 2, 28), (32, 64, 2, 14), (16, 32, 2, 32), (32, 64, 2, 16),
                         (64, 128, 2, 56), (128, 256, 2, 28), (256, 512, 2, 14)],
                  n=[128], cl=[0, 1], threads=[1, 2]),
}


def child(cin, cout, k, stride, n, hw, cl, threads, steps, guarded, log_path) -> int:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
    x = torch.randn(n, cin, hw, hw, generator=g)
    if cl:
        conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if guarded:
        guard_convs(conv)
    with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
        conv(x).sum().backward()
    sys.stdout.flush()
    with torch.backends.mkldnn.flags(enabled=False):
        reference = torch.func.grad(lambda w: F.conv2d(x, w, None, stride, k // 2).sum())(conv.weight.detach())
    for _ in range(steps):
        conv.weight.grad = None
        conv(x).sum().backward()
    err = (conv.weight.grad - reference).abs().max() / reference.abs().max()
    return 0 if err < 1e-4 else 3


def run(cfg: tuple, steps: int, guarded: bool) -> tuple[str, str]:
    fd, log_path = tempfile.mkstemp()
    os.close(fd)
    pid = os.fork()
    if pid == 0:
        try:
            code = child(*cfg, steps, guarded, log_path)
        except BaseException:  # noqa: BLE001 - any error is reported as such by the parent
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    with open(log_path) as f:
        lines = f.read().splitlines()
    os.unlink(log_path)
    kernels = [line.split(",")[6] for line in lines
               if line.startswith("onednn_verbose") and ",exec," in line and "backward_weights" in line]
    if os.WIFSIGNALED(status):
        result = f"signal{os.WTERMSIG(status)}"
    else:
        result = {0: "ok", 3: "wrong-grad", 4: "error"}[os.WEXITSTATUS(status)]
    return result, kernels[0] if kernels else "(none)"


def configs(grid: str):
    axes = GRIDS[grid]
    if grid == "study":
        for (cin, cout, stride, hw), n, cl, threads in itertools.product(*axes.values()):
            yield cin, cout, 1, stride, n, hw, cl, threads
    else:
        yield from itertools.product(*axes.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", choices=sorted(GRIDS), default="channels")
    ap.add_argument("--steps", type=int, default=5, help="forward+backward passes per configuration")
    ap.add_argument("--guarded", action="store_true", help="convs through ip.guard_convs")
    ap.add_argument("--failures-only", action="store_true", help="print only rows that are not ok")
    args = ap.parse_args()
    print(f"# torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{'guarded' if args.guarded else 'plain nn.Conv2d'}, {args.steps} steps")
    print("in out k stride batch hw format threads result kernel")
    bad = 0
    for cfg in configs(args.grid):
        result, kernel = run(cfg, args.steps, args.guarded)
        bad += result != "ok"
        if result != "ok" or not args.failures_only:
            cin, cout, k, stride, n, hw, cl, threads = cfg
            print(cin, cout, k, stride, n, hw, "channels_last" if cl else "contiguous", threads, result, kernel,
                  flush=True)
    print(f"# {bad} of the configurations not ok")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
