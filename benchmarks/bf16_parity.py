"""Does bf16 training change the study's accuracies?  Paired fp32 vs bf16 runs.

For every seed and method, the same run (the default study's data, model, schedule and
masks: params.yaml, SP) is trained twice, once with ``train.precision: fp32`` and once
with ``bf16``; the two share initial weights, data order and masks (masks are scored in
fp32 either way), so the pair differs in the training arithmetic only.  Printed: each
pair's final test accuracy, and per method the mean difference bf16 - fp32 with its 95 %
Student-t confidence interval over the seeds; the verdict says whether the interval lies
within +-``--margin`` percentage points.  Also printed: the median training-step time of
each precision, measured inside the runs (the speed-up a study run would see).

    .venv/bin/python benchmarks/bf16_parity.py [--seeds 0 1 2 3 4] [--methods dense snip]
        [--sparsity 0.98] [--params params.yaml] [--workers 2 --threads 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ip.data import PreparedData, prepared_cache, read_prepared_cache  # noqa: E402
from ip.experiment import initial_state, run_experiment  # noqa: E402
from ip.parallel import run_jobs  # noqa: E402
from pipeline.common import run_spec  # noqa: E402
from study.params import load_params  # noqa: E402

PRECISIONS = ("fp32", "bf16")


def load_data(p, prepared_path: Path):
    """The prepare stage's cache when it exists, else the same subsets built here."""
    if prepared_path.exists():
        return read_prepared_cache(prepared_path)
    blob, _ = prepared_cache(p.data)
    return PreparedData(**{k: (v.item() if isinstance(v, torch.Tensor) and v.dim() == 0 else v)
                           for k, v in blob.items()})


@functools.lru_cache(maxsize=1)
def _inputs(params_path: str, prepared_path: str):
    p = load_params(Path(params_path))
    return p, load_data(p, Path(prepared_path))


def paired_runs(params_path: str, prepared_path: str, seed: int, method: str, sparsity: float,
                epochs: int | None) -> list[dict]:
    """The fp32 and the bf16 run of one (seed, method): same init, data order and masks."""
    p, data = _inputs(params_path, prepared_path)
    init = initial_state(p.model.name, p.model.width, data.num_classes, data.input_shape[0], seed)
    base = run_spec(p, method, "sp", seed, sparsity=sparsity, epochs=epochs)
    runs = []
    for precision in PRECISIONS:
        spec = dataclasses.replace(base, train=base.train.model_copy(update={"precision": precision}))
        start = time.perf_counter()
        metrics, _ = run_experiment(spec, init, data)
        runs.append({"seed": seed, "method": method, "precision": precision, "test_acc": metrics["test_acc"],
                     "step_seconds": metrics["step_seconds"], "seconds": time.perf_counter() - start})
        print(f"  seed {seed} {method:6s} {precision}: test acc {100 * metrics['test_acc']:6.2f} %, "
              f"median step {1e3 * metrics['step_seconds']:6.1f} ms, {time.perf_counter() - start:5.0f} s", flush=True)
    return runs


def paired_ci(differences: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean of the paired differences and its Student-t confidence interval."""
    n = len(differences)
    mean = statistics.fmean(differences)
    if n < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, n - 1) * statistics.stdev(differences) / n ** 0.5
    return mean, float(mean - half), float(mean + half)   # plain floats: the result is written as JSON


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--prepared", type=Path, default=ROOT / "data" / "prepared.pt")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", default=["dense", "snip"])
    parser.add_argument("--sparsity", type=float, default=0.98)
    parser.add_argument("--epochs", type=int, default=None, help="default: params.yaml's train.epochs")
    parser.add_argument("--margin", type=float, default=1.0, help="parity margin in percentage points")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: params' train.threads)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes, each training its (seed, method) pairs on threads // workers threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    p = load_params(args.params)
    threads = args.threads or p.train.threads
    torch.set_num_threads(threads)
    print(f"{p.data.name}: {p.model.name} width {p.model.width}, {args.epochs or p.train.epochs} epochs, "
          f"batch {p.train.batch_size}, SP, sparsity {args.sparsity}, seeds {args.seeds}, "
          f"{args.workers} worker(s) x {max(1, threads // args.workers) if args.workers > 1 else threads} threads",
          flush=True)
    jobs = [(str(args.params), str(args.prepared), seed, method, args.sparsity, args.epochs)
            for seed in args.seeds for method in args.methods]
    runs = [run for pair in run_jobs(paired_runs, jobs, workers=args.workers, threads=threads) for run in pair]

    def acc(seed, method, precision):
        return next(r["test_acc"] for r in runs
                    if r["seed"] == seed and r["method"] == method and r["precision"] == precision)

    print()
    print(f"{'method':>7} {'seed':>4} | {'fp32 acc %':>10} {'bf16 acc %':>10} {'bf16-fp32 pp':>13}")
    summary = {}
    for method in args.methods:
        diffs = []
        for seed in args.seeds:
            a32, a16 = 100 * acc(seed, method, "fp32"), 100 * acc(seed, method, "bf16")
            diffs.append(a16 - a32)
            print(f"{method:>7} {seed:>4} | {a32:10.2f} {a16:10.2f} {a16 - a32:+13.2f}")
        mean, low, high = paired_ci(diffs)
        within = -args.margin <= low and high <= args.margin
        summary[method] = {"mean_pp": mean, "ci95_pp": [low, high], "within_margin": within}
        print(f"{method:>7} mean | bf16 - fp32 = {mean:+.2f} pp, 95 % CI [{low:+.2f}, {high:+.2f}] -> "
              f"{'within' if within else 'NOT within'} +-{args.margin:g} pp")
    step = {precision: statistics.median(r["step_seconds"] for r in runs if r["precision"] == precision)
            for precision in PRECISIONS}
    print(f"median training step inside the runs: fp32 {1e3 * step['fp32']:.1f} ms, bf16 {1e3 * step['bf16']:.1f} ms "
          f"(bf16 speed-up {step['fp32'] / step['bf16']:.2f}x)")
    result = {"seeds": args.seeds, "methods": args.methods, "sparsity": args.sparsity, "runs": runs,
              "summary": summary, "median_step_seconds": step}
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
