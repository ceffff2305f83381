"""Stage `aggregate`: gather every stage's outputs into the tidy tables under results/ that
the figures and the report read (schema: docs/results.md), and the headline metrics that
`dvc exp show` lists (results/metrics.json)."""
from __future__ import annotations

import dataclasses
import platform
import shutil
import pandas as pd
import torch

from ip.interspace import fb_overhead_params, to_interspace
from ip.models import get_model

from .ablation import ABLATION_FILE
from .common import RESULTS, RUN_DIR, read_json, run_id, setup, write_json
from .sweep import SWEEP_DIR
from .trainability import OUT as TRAINABILITY_DIR

# FB overhead of the paper's networks (claim C4): model, width, input shape, classes
REFERENCE_NETS = [("resnet32", 16, 3, 10), ("vgg16", 64, 3, 10), ("resnet18", 64, 3, 1000), ("resnet50", 64, 3, 1000)]


def main_runs(p) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, hist = [], []
    per_run = read_json(TRAINABILITY_DIR / "per_run.json") if (TRAINABILITY_DIR / "per_run.json").exists() else {}
    for method in p.methods:
        for repr_ in p.reprs:
            for seed in p.seeds:
                name = run_id(method, repr_, seed)
                path = RUN_DIR / name / "metrics.json"
                if not path.exists():
                    continue  # a missing run stays missing; the report says so
                rows.append({"experiment": "main", **read_json(path), **per_run.get(name, {})})
                for rec in read_json(RUN_DIR / name / "history.json"):
                    hist.append({"method": method, "repr": repr_, "seed": seed, **rec})
    return pd.DataFrame(rows), pd.DataFrame(hist)


def sweep_table(p, summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for s in p.sweep.sparsities:
        path = SWEEP_DIR / f"s{s}.json"
        if path.exists():
            rows += read_json(path)
    sweep = pd.DataFrame(rows)
    if not summary.empty:
        head = summary[summary["method"].isin(p.sweep.methods)].assign(experiment="sweep")
        sweep = pd.concat([sweep, head], ignore_index=True)
    if not sweep.empty:  # the main run wins where a sweep point repeats the headline sparsity
        sweep = sweep.drop_duplicates(subset=["method", "repr", "seed", "sparsity"], keep="last")
    return sweep


def ablation_table(p, summary: pd.DataFrame) -> pd.DataFrame:
    parts = [pd.DataFrame(read_json(ABLATION_FILE))] if ABLATION_FILE.exists() else []
    if not summary.empty:
        base = summary[summary["method"] == p.ablation.method]
        parts.append(base[base["repr"] == "sp"].assign(variant="sp"))
        ip_main = base[base["repr"] == "ip"]
        parts.append(ip_main.assign(variant=f"fb_init={p.interspace.fb_init}"))
        parts.append(ip_main.assign(variant=f"share={p.interspace.share}"))
        dense = summary[summary["method"] == "dense"]
        parts.append(dense.assign(variant="dense-" + dense["repr"]))
    parts = [x for x in parts if not x.empty]
    return pd.concat(parts, ignore_index=True).assign(experiment="ablation") if parts else pd.DataFrame()


def reference_costs() -> pd.DataFrame:
    rows = []
    for name, width, c_in, classes in REFERENCE_NETS:
        model = to_interspace(get_model(name, classes, c_in, width))
        dense = sum(p.numel() for p in model.parameters()) - fb_overhead_params(model)
        fb = fb_overhead_params(model)
        rows.append({"model": name, "width": width, "dense_params": dense, "fb_overhead_params": fb,
                     "fb_overhead_percent": 100.0 * fb / dense})
    return pd.DataFrame(rows)


def headline_metrics(summary: pd.DataFrame) -> dict:
    """Mean test accuracy per method and representation, and the IP - SP difference."""
    out: dict = {}
    if summary.empty:
        return out
    means = summary.groupby(["method", "repr"])["test_acc"].mean()
    for (method, repr_), v in means.items():
        out.setdefault(method, {})[f"test_acc_{repr_}"] = round(float(v), 4)
    for method, d in out.items():
        if "test_acc_sp" in d and "test_acc_ip" in d:
            d["ip_minus_sp"] = round(d["test_acc_ip"] - d["test_acc_sp"], 4)
    return out


def main() -> None:
    p = setup()
    summary, history = main_runs(p)
    summary.to_csv(RESULTS / "summary.csv", index=False)
    history.to_csv(RESULTS / "history.csv", index=False)
    sweep_table(p, summary).to_csv(RESULTS / "sweep.csv", index=False)
    ablation_table(p, summary).to_csv(RESULTS / "ablation.csv", index=False)
    for name in ("filters.csv", "filter_density.csv"):
        if (TRAINABILITY_DIR / name).exists():
            shutil.copyfile(TRAINABILITY_DIR / name, RESULTS / name)
    reference_costs().to_csv(RESULTS / "costs_reference.csv", index=False)
    stage_seconds = float(summary["seconds"].sum()) if not summary.empty else 0.0
    meta = {"dataset": p.data.name, "model": p.model.name, "width": p.model.width, "epochs": p.train.epochs,
            "seeds": p.seeds, "methods": p.methods, "train_subset": p.data.train_subset,
            "test_subset": p.data.test_subset, "sparsity": p.sparsity, "torch": torch.__version__,
            "hardware": {"cpu": platform.processor() or platform.machine(), "threads": p.train.threads,
                         "workers": p.train.workers},
            "training_seconds_main_runs": stage_seconds, "runs_main": int(len(summary)),
            "runs_expected_main": len(p.methods) * len(p.reprs) * len(p.seeds),
            "params": dataclasses.asdict(p)}
    write_json(RESULTS / "meta.json", meta)
    write_json(RESULTS / "metrics.json", headline_metrics(summary))
    print(f"aggregated {len(summary)} main runs, {len(history)} epoch records")


if __name__ == "__main__":
    main()
