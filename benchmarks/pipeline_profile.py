"""Where a `dvc repro` spends its time, per stage kind, from the stages' own records.

Every pipeline stage (pipeline/; not the figures and report, which are analysis) run as a
process of its own writes results/profile/<stage>[-<args>].json
(pipeline.common.stage): its start-up (process start to ``main``: interpreter, torch and
project imports), its phases and its total wall time; a train stage adds the breakdown of
its run (training steps, evaluation, BN recalibration, gradient flow, costs and
connectivity), summed over its runs.  A stage whose runs go to a pool of worker processes
records how many (``processes``): its capacity is wall time x processes, and the share of
that capacity spent in training steps (the work the study is for) is what this script
prints per stage kind, with the rest split into the phases above and ``other`` (worker
start-up, waiting on the last run of a pool, unmeasured glue).

    .venv/bin/python benchmarks/pipeline_profile.py [--profile results/profile] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: column -> the recorded phases it sums (``startup`` is the record's start-up time)
COLUMNS = {
    "start-up": ("startup",),
    "loading": ("loading",),
    "mask scoring": ("mask_scoring",),
    "training steps": ("run_steps",),
    "evaluation and metrics": ("run_evaluation", "run_recalibration", "run_gradient_flow",
                               "run_costs_and_connectivity", "costs_and_connectivity"),
    "writing": ("writing",),
}


def profile_table(records: list[dict]) -> dict[str, dict[str, float]]:
    """Per stage kind: the number of stages, seconds per column (summed over its stages and
    their worker processes), ``other`` (the rest of their capacity), ``total`` (wall seconds)
    and ``capacity`` (wall seconds x worker processes)."""
    table: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for rec in records:
        row = table[rec["stage"]]
        phases = {"startup": rec["startup_seconds"], **rec["phases"]}
        capacity = rec["total_seconds"] * rec.get("processes", 1)
        row["stages"] += 1
        row["total"] += rec["total_seconds"]
        row["capacity"] += capacity
        accounted = 0.0
        for column, keys in COLUMNS.items():
            seconds = sum(phases.get(k, 0.0) for k in keys)
            row[column] += seconds
            accounted += seconds
        row["other"] += capacity - accounted
    return {kind: dict(row) for kind, row in table.items()}


def print_table(table: dict[str, dict[str, float]]) -> None:
    columns = [*COLUMNS, "other", "capacity", "total"]
    print(f"{'stage kind':13s} {'n':>3s} " + " ".join(f"{c[:14]:>14s}" for c in columns) + "  steps share")
    for kind, row in sorted(table.items()):
        share = row["training steps"] / row["capacity"] if row["capacity"] else 0.0
        print(f"{kind:13s} {int(row['stages']):3d} " + " ".join(f"{row[c]:13.1f}s" for c in columns)
              + f"  {100 * share:10.1f} %")
    total = {c: sum(row[c] for row in table.values()) for c in columns}
    share = total["training steps"] / total["capacity"] if total["capacity"] else 0.0
    print(f"{'all':13s} {int(sum(r['stages'] for r in table.values())):3d} "
          + " ".join(f"{total[c]:13.1f}s" for c in columns) + f"  {100 * share:10.1f} %")
    runs = table.get("train")
    if runs and runs["training steps"]:
        outside = runs["capacity"] - runs["training steps"]
        print(f"train stages: time outside training steps = {100 * outside / runs['training steps']:.0f} % of the "
              f"training steps' time (start-up, loading, evaluation and metrics, writing)")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", type=Path, default=ROOT / "results" / "profile")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    records = [json.loads(p.read_text()) for p in sorted(args.profile.glob("*.json"))]
    if not records:
        raise SystemExit(f"error: no stage records in {args.profile}: run `dvc repro` (or a stage) first")
    table = profile_table(records)
    print_table(table)
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n")
    return table


if __name__ == "__main__":
    main()
