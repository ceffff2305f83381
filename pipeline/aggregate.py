"""Stage `aggregate`: gather every stage's outputs into the tidy tables under results/ that
the figures and the report read (schema: docs/results.md), and the headline metrics that
`dvc exp show` lists (results/metrics.json)."""
from __future__ import annotations

import shutil

import pandas as pd
import torch

from analysis.collect import ablation_table, axis_table, headline_metrics, sweep_table
from analysis.controls import controls_table
from ip.reference import fb_overhead_table

from .controls import CONTROLS_DIR
from .common import (
    ABLATION_FILE,
    AXIS_DIR,
    PROFILE_DIR,
    RESULTS,
    SWEEP_DIR,
    TRAINABILITY_DIR,
    cpu_model,
    read_json,
    run_dir,
    run_id,
    setup,
    stage,
    write_json,
)


def main_runs(p) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, hist = [], []
    per_run = read_json(TRAINABILITY_DIR / "per_run.json") if (TRAINABILITY_DIR / "per_run.json").exists() else {}
    for method in p.run_methods:
        for repr_ in p.reprs_of(method):
            for seed in p.seeds:
                name = run_id(method, repr_, seed)
                path = run_dir(method, repr_, seed) / "metrics.json"
                if not path.exists():
                    continue  # a missing run stays missing; the report says so
                rows.append({"experiment": "main", **read_json(path), **per_run.get(name, {})})
                for rec in read_json(run_dir(method, repr_, seed) / "history.json"):
                    hist.append({"method": method, "repr": repr_, "seed": seed, **rec})
    return pd.DataFrame(rows), pd.DataFrame(hist)


def stage_profiles(p) -> dict[str, dict]:
    """The record in results/profile/ of the last run of each stage of this study that left one
    (named as the records are: ``train-dense``, ``train-<method>``, ``sweep-<s>``, ...)."""
    names = ["prepare", "init", *(f"train-{m}" for m in p.run_methods), *(f"sweep-{s}" for s in p.sweep.sparsities),
             *(f"axis-{e}-{s}" for e in p.axis.epochs for s in p.axis.seeds),
             "ablation", "trainability", "theorem1", *(f"controls-shuffle-{m}" for m in p.controls.shuffle.methods),
             *(f"controls-lr-{m}" for m in p.controls.lr.methods)]
    return {name: read_json(PROFILE_DIR / f"{name}.json") for name in names if (PROFILE_DIR / f"{name}.json").exists()}


def stage_wall_seconds(profiles: dict[str, dict]) -> dict:
    """Wall seconds of each stage record of :func:`stage_profiles`."""
    return {name: float(record["total_seconds"]) for name, record in profiles.items()}


def stage_cpus(profiles: dict[str, dict]) -> str:
    """The CPU models the stage records of :func:`stage_profiles` name ("; "-joined), or this
    machine's where none does: the machine that trained, not only the one that aggregates."""
    cpus = sorted({record["cpu"] for record in profiles.values() if record.get("cpu")})
    return "; ".join(cpus) or cpu_model()


@stage
def main() -> None:
    p = setup()
    summary, history = main_runs(p)
    summary.to_csv(RESULTS / "summary.csv", index=False)
    history.to_csv(RESULTS / "history.csv", index=False)
    sweep_rows = [row for s in p.sweep.sparsities if (SWEEP_DIR / f"s{s}.json").exists()
                  for row in read_json(SWEEP_DIR / f"s{s}.json")]
    sweep_table(sweep_rows, summary, p.sweep.methods).to_csv(RESULTS / "sweep.csv", index=False)
    a = p.axis
    axis_files = [AXIS_DIR / f"{kind}e{e}-s{seed}.json" for kind, lengths in (("dense-", a.dense_epochs), ("", a.epochs))
                  for e in lengths for seed in a.seeds]
    axis_rows = [row for path in axis_files if path.exists() for row in read_json(path)]
    axis_methods = [*(["dense"] if a.dense_epochs else []), *a.methods, *a.published.methods]
    axis_table(axis_rows, summary, axis_methods, a.seeds).to_csv(RESULTS / "axis.csv", index=False)
    ablation_rows = read_json(ABLATION_FILE) if ABLATION_FILE.exists() else []
    ablation = (ablation_table(ablation_rows, summary, p.ablation.method, p.interspace, seeds=p.ablation.seeds or p.seeds)
                if p.ablation_variants() else pd.DataFrame(columns=[*summary.columns, "variant"]))   # switched off
    ablation.to_csv(RESULTS / "ablation.csv", index=False)
    control_rows = {kind: [row for m in getattr(p.controls, kind).methods
                           if (CONTROLS_DIR / f"{kind}-{m}.json").exists()
                           for row in read_json(CONTROLS_DIR / f"{kind}-{m}.json")] for kind in ("shuffle", "lr")}
    controls_table(control_rows["shuffle"], control_rows["lr"], summary).to_csv(RESULTS / "controls.csv",
                                                                               index=False)
    for name in ("filters.csv", "filter_density.csv"):
        if (TRAINABILITY_DIR / name).exists():
            shutil.copyfile(TRAINABILITY_DIR / name, RESULTS / name)
    pd.DataFrame([{"share": share, **row} for share in ("layer", "network") for row in fb_overhead_table(share)]) \
        .to_csv(RESULTS / "costs_reference.csv", index=False)
    profiles = stage_profiles(p)
    meta = {"dataset": p.data.name, "model": p.model.name, "width": p.model.width, "epochs": p.train.epochs,
            "seeds": p.seeds, "methods": p.run_methods, "train_subset": p.data.train_subset,
            "test_subset": p.data.test_subset, "sparsity": p.sparsity, "torch": torch.__version__,
            "hardware": {"cpu": stage_cpus(profiles), "threads": p.train.threads,
                         "workers": p.train.workers},
            "training_seconds_main_runs": float(summary["seconds"].sum()) if not summary.empty else 0.0,
            "runs_main": int(len(summary)),
            "stage_wall_seconds": stage_wall_seconds(profiles),
            "runs_expected_main": sum(len(p.reprs_of(m)) for m in p.run_methods) * len(p.seeds),
            "params": p.model_dump()}
    write_json(RESULTS / "meta.json", meta)
    write_json(RESULTS / "metrics.json", headline_metrics(summary, p.analysis.alpha))
    print(f"aggregated {len(summary)} main runs, {len(history)} epoch records")


if __name__ == "__main__":
    main()
