"""Why the Hessian trace of the trainability stage is negative at the start of training, read from the
runs' start (or, with ``--when final``, trained) networks (results/models/<method>/<repr>-s<seed>/, as
the trainability stage reads them).

The Hessian of the mean cross-entropy splits into the Gauss-Newton part G (positive semi-definite)
and the residual term R = sum_i sum_c (p_ic - y_ic) d^2 z_ic / N (``ip.metrics.gauss_newton_trace``).
A network that is linear in each parameter tensor taken alone, as a ReLU ResNet is when BN is a
fixed affine map, has tr R = 0, so its trace is tr G >= 0; BN on batch statistics divides each
channel by a standard deviation that depends on the weights, and then tr R can have either sign.
Per run, on the trainability stage's samples: tr G exactly and tr H by Hutchinson (the stage's
probes), with BN on batch statistics (the stage's ``trainability.bn_mode``) and with BN on running
statistics after the stage's recalibration; tr H - tr G is the residual term's trace.

    python benchmarks/hessian_trace_sign.py [--methods dense snip rigl] [--reprs sp ip] [--seed 0]
                                            [--when init|final]
"""
from __future__ import annotations

import argparse

from ip.experiment import recalibrate
from ip.masks import MaskEnforcer
from ip.metrics import HessianOperator, gauss_newton_trace, hutchinson_trace
from pipeline.common import load_run
from study.params import load_params


def traces(model, batches, masks, bn_mode: str, probes: int, seed: int) -> dict:
    gn = gauss_newton_trace(model, batches, masks, bn_mode=bn_mode)
    full = hutchinson_trace(HessianOperator(model, batches, masks, bn_mode=bn_mode), probes, generator=seed + 1)
    return {"loss": gn["loss"], "tr_G": gn["trace"], "tr_H": full["trace"], "stderr": full["stderr"],
            "tr_R": full["trace"] - gn["trace"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["dense", "snip", "rigl"])
    ap.add_argument("--reprs", nargs="+", default=["sp", "ip"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--probes", type=int, default=None, help="Hutchinson probes (default: trainability's)")
    ap.add_argument("--when", choices=("init", "final"), default="init", help="start of training or trained")
    args = ap.parse_args()
    p = load_params("params.yaml")
    t = p.trainability
    probes = args.probes or t.hutchinson_probes
    when = "start of training" if args.when == "init" else "trained"
    print(f"{when}, seed {args.seed}, {t.samples} samples, {probes} Hutchinson probes (tr H +- 1 s.e.)")
    for method in args.methods:
        for repr_ in args.reprs:
            run = load_run(p, method, repr_, args.seed)
            if args.when == "init":
                model, masks = run.start()
                MaskEnforcer(model, masks).remove()   # zeroes pruned storage, as training starts
            else:
                model, masks = run.trained()
            batches = [(run.data.x_metric[:t.samples], run.data.y_metric[:t.samples])]
            batch = traces(model, batches, masks, "batch", probes, args.seed)
            recalibrate(model, run.spec, run.data)
            running = traces(model, batches, masks, "running", probes, args.seed)
            for name, r in (("batch statistics", batch), ("running statistics", running)):
                print(f"{method:8s} {repr_:5s} BN on {name:18s}: loss {r['loss']:.3f}  tr G {r['tr_G']:10.1f}  "
                      f"tr H {r['tr_H']:10.1f} +- {r['stderr']:7.1f}  tr R = tr H - tr G {r['tr_R']:10.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
