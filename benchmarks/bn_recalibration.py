"""How many fixed training batches a BN recalibration needs: test accuracy in eval mode after
recalibrating on k batches, against the accuracy with batch statistics, on networks whose
weights changed after their running statistics were last updated (GMP, RigL, a lottery
ticket), with the default study's data, model and schedule (params.yaml).

    python benchmarks/bn_recalibration.py [--seeds 0 1]
"""
from __future__ import annotations

import argparse
import dataclasses

import torch

from ip.data import prepared_cache, read_prepared_cache
from ip.experiment import build_model, compute_masks, initial_state, train_run
from ip.metrics.batchnorm import preserved_state, recalibrate_bn
from ip.metrics.generalisation import evaluate_batches
from pipeline.common import PREPARED, run_spec
from study.params import load_params

BATCH_COUNTS = (0, 1, 2, 5, 10, 20, 50)


def batch_statistics_accuracy(model, data) -> float:
    with preserved_state(model), torch.no_grad():
        model.train()
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in data.eval_batches("test", batch_size=500))
    return correct / data.x_test.shape[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--methods", nargs="+", default=["gmp", "rigl", "lt"])
    args = ap.parse_args()
    p = load_params()
    torch.set_num_threads(p.train.threads)
    if PREPARED.exists():
        data = read_prepared_cache(PREPARED)
    else:
        from ip.data import PreparedData
        blob, _ = prepared_cache(p.data)
        data = PreparedData(**{k: (v.item() if isinstance(v, torch.Tensor) and not v.dim() else v)
                               for k, v in blob.items()})
    size = p.train.batch_size
    print(f"{'method':8s} {'seed':>4s} {'batch-stat':>10s} " + " ".join(f"k={k:<5d}" for k in BATCH_COUNTS))
    for method in args.methods:
        for seed in args.seeds:
            spec = run_spec(p, method, "sp", seed)
            # training leaves its momentum-averaged running statistics (no recalibration at the end)
            spec = dataclasses.replace(spec, train=spec.train.model_copy(update={"bn_recalibration_batches": 0}))
            model = build_model(spec, initial_state(p.model.name, p.model.width, data.num_classes,
                                                    data.input_shape[0], seed), data.num_classes, data.input_shape[0])
            masks, start = compute_masks(spec, model, data)
            if start is not None:
                model.load_state_dict(start)
            train_run(spec, model, masks, data)
            trained = {k: v.clone() for k, v in model.state_dict().items()}
            accuracies = []
            for k in BATCH_COUNTS:
                model.load_state_dict(trained)   # the running statistics training left
                if k:
                    recalibrate_bn(model, data.eval_batches("train", k * size, size))
                accuracies.append(evaluate_batches(model, data.eval_batches("test"))[1])
            print(f"{method:8s} {seed:4d} {batch_statistics_accuracy(model, data):10.4f} "
                  + " ".join(f"{a:7.4f}" for a in accuracies), flush=True)


if __name__ == "__main__":
    main()
