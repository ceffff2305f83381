"""The study's tidy tables: loaders with a fixed schema, and SP/IP pairing.

Every table written by the pipeline's ``aggregate`` stage is described once, in
:data:`SCHEMAS` (file path under ``results/`` and columns); ``docs/results.md`` is the
human-readable version of the same contract.  A loader never fails on a missing stage:
a missing or empty file gives an empty frame with the schema's columns, a missing
column is added as NaN, so that downstream code reports "missing" instead of crashing
or, worse, drawing zeros.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ip.pruning import METHODS

#: display order of methods: the library's registration order (families: baseline, PaI, LT, DST,
#: during/after training), so a method added to ``ip.pruning`` is ordered without editing this file
METHOD_ORDER = METHODS
REPRS = ("sp", "ip")
#: IP under equal storage: kept λ plus every FB entry ≤ SP's kept weights (STUDY_SPEC section 6, accounting ii)
EQUAL_STORAGE = "ip_eq"
#: the two cost accountings, by the representation compared with SP under each
ACCOUNTINGS = {"ip": "paper's accounting: equal sparsity, FBs as overhead", EQUAL_STORAGE: "equal storage"}

#: one row per run (summary, sweep); ablation adds ``variant``
RUN_COLUMNS = [
    "experiment", "method", "repr", "seed", "sparsity",
    "test_acc", "train_acc", "test_loss", "train_loss", "gap_acc", "gap_loss",
    "sparsity_actual", "kept_params", "fb_overhead_params", "stored_params", "total_params",
    "flops_dense", "flops_sparse",
    "gf_init", "gf_init_shared", "gf_final", "gf_final_shared", "gf_rewind",
    "collapsed_layers", "epochs", "steps", "steps_trained", "mask_updates", "seconds", "step_seconds",
    "filter_density", "participation_ratio", "pr_dense_share",
    "hessian_top1_init", "hessian_top1_final", "hessian_trace_init", "hessian_trace_final",
    "disconnected", "unconnected_outputs",
]

#: name -> (path under the results folder, columns)
SCHEMAS: dict[str, tuple[str, list[str]]] = {
    "summary": ("summary.csv", RUN_COLUMNS),
    "history": ("history.csv", ["method", "repr", "seed", "epoch", "lr", "sparsity", "train_loss", "train_acc",
                                "test_loss", "test_acc", "gap_acc", "gap_loss", "gf", "gf_shared", "gf_fb"]),
    "sweep": ("sweep.csv", RUN_COLUMNS),
    "axis": ("axis.csv", RUN_COLUMNS),
    "ablation": ("ablation.csv", RUN_COLUMNS + ["variant"]),
    "hessian": ("trainability/hessian.csv", ["method", "repr", "seed", "when", "kind", "rank", "value"]),
    "density": ("trainability/density.csv", ["method", "repr", "seed", "when", "grid", "density"]),
    "gf_layers": ("trainability/gf_layers.csv", ["method", "repr", "seed", "when", "layer", "gf"]),
    "filters": ("filters.csv", ["method", "repr", "seed", "layer", "out_channel", "in_channel", "row", "col",
                                "value"]),
    "filter_density": ("filter_density.csv", ["method", "repr", "seed", "layer", "density", "participation_ratio",
                                              "pr_dense_share", "pr_filters"]),
    "checks": ("theorem1/checks.csv", ["check", "method", "sparsity", "seed", "value", "reference", "passed",
                                       "detail"]),
    "one_step": ("theorem1/one_step.csv", ["method", "sparsity", "seed", "eta", "loss_sp", "loss_ip", "pred_sp",
                                           "pred_ip"]),
    "gf_masks": ("theorem1/gf_masks.csv", ["method", "sparsity", "seed", "gf_sp", "gf_ip"]),
    "costs_reference": ("costs_reference.csv", ["model", "width", "share", "dense_params", "fb_overhead_params",
                                                "fb_overhead_percent"]),
    "controls": ("controls.csv", ["control", "method", "repr", "seed", "sparsity", "shuffled", "lr_scale", "lr",
                                  "warmup_epochs",
                                  "val_acc", "val_samples", "test_acc", "train_acc", "test_loss", "train_loss",
                                  "disconnected", "steps", "moved_share", "seconds"]),
}
META_FILE = "meta.json"

#: columns read as text; every other schema column is numeric (``passed`` is boolean)
TEXT_COLUMNS = {"experiment", "method", "repr", "when", "kind", "layer", "check", "detail", "model", "variant",
                "dataset", "share", "control"}
BOOL_COLUMNS = {"passed", "disconnected", "shuffled"}
#: sparsities are compared after rounding, so 0.98 written as 0.9800000001 still pairs
SPARSITY_DECIMALS = 6


def _normalise(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Schema columns first (missing ones as NaN), extra columns kept after them."""
    df = df.copy()
    for col in columns:
        if col not in df.columns:
            df[col] = np.nan
    for col in df.columns:
        if col in TEXT_COLUMNS:
            df[col] = df[col].map(lambda v: v if (isinstance(v, float) and math.isnan(v)) or v is None
                                  else str(v).strip())
            if col in ("method", "repr", "when", "kind"):
                df[col] = df[col].map(lambda v: v.lower() if isinstance(v, str) else v)
        elif col in BOOL_COLUMNS:
            df[col] = df[col].map(_as_bool).astype(object)
        elif col in columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    extra = [c for c in df.columns if c not in columns]
    df = df[list(columns) + extra]
    return _fill_gaps(df)


def _as_bool(value):
    """True/False from bools, 0/1 and 'true'/'false' text; anything else (blank) -> None (unknown)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return None if math.isnan(float(value)) else bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes", "pass", "passed"):
            return True
        if text in ("false", "0", "no", "fail", "failed"):
            return False
    return None


def _fill_gaps(df: pd.DataFrame) -> pd.DataFrame:
    """Generalisation gaps follow from their definition when a writer left them blank."""
    if {"gap_acc", "train_acc", "test_acc"} <= set(df.columns) and len(df):
        df["gap_acc"] = df["gap_acc"].fillna(df["train_acc"] - df["test_acc"])
    if {"gap_loss", "train_loss", "test_loss"} <= set(df.columns) and len(df):
        df["gap_loss"] = df["gap_loss"].fillna(df["test_loss"] - df["train_loss"])
    return df


def empty_table(name: str) -> pd.DataFrame:
    """An empty frame with the columns of table ``name``."""
    return _normalise(pd.DataFrame(columns=SCHEMAS[name][1]), SCHEMAS[name][1])


def normalise_table(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """Bring an in-memory frame to the schema of table ``name`` (as the loader does)."""
    return _normalise(df, SCHEMAS[name][1])


def load_table(results: str | Path, name: str) -> pd.DataFrame:
    """Table ``name`` from ``results``; a missing or empty file gives an empty frame with the schema."""
    rel, columns = SCHEMAS[name]
    path = Path(results) / rel
    if not path.is_file() or path.stat().st_size == 0:
        return empty_table(name)
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return empty_table(name)
    return _normalise(df, columns)


def load_meta(results: str | Path) -> dict:
    path = Path(results) / META_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}


@dataclass
class Tables:
    """All tables of one results folder; ``present[name]`` says whether the file existed."""
    summary: pd.DataFrame = field(default_factory=lambda: empty_table("summary"))
    history: pd.DataFrame = field(default_factory=lambda: empty_table("history"))
    sweep: pd.DataFrame = field(default_factory=lambda: empty_table("sweep"))
    axis: pd.DataFrame = field(default_factory=lambda: empty_table("axis"))
    ablation: pd.DataFrame = field(default_factory=lambda: empty_table("ablation"))
    hessian: pd.DataFrame = field(default_factory=lambda: empty_table("hessian"))
    density: pd.DataFrame = field(default_factory=lambda: empty_table("density"))
    gf_layers: pd.DataFrame = field(default_factory=lambda: empty_table("gf_layers"))
    filters: pd.DataFrame = field(default_factory=lambda: empty_table("filters"))
    filter_density: pd.DataFrame = field(default_factory=lambda: empty_table("filter_density"))
    checks: pd.DataFrame = field(default_factory=lambda: empty_table("checks"))
    one_step: pd.DataFrame = field(default_factory=lambda: empty_table("one_step"))
    gf_masks: pd.DataFrame = field(default_factory=lambda: empty_table("gf_masks"))
    costs_reference: pd.DataFrame = field(default_factory=lambda: empty_table("costs_reference"))
    controls: pd.DataFrame = field(default_factory=lambda: empty_table("controls"))
    meta: dict = field(default_factory=dict)
    present: dict = field(default_factory=dict)
    results_dir: str = "results"

    @classmethod
    def from_frames(cls, meta: dict | None = None, **frames: pd.DataFrame) -> "Tables":
        """Tables built in memory (tests, notebooks); frames are normalised to their schema."""
        unknown = set(frames) - set(SCHEMAS)
        if unknown:
            raise KeyError(f"unknown tables {sorted(unknown)}; known: {sorted(SCHEMAS)}")
        kwargs = {name: normalise_table(name, df) for name, df in frames.items()}
        present = {name: name in frames and len(frames[name]) > 0 for name in SCHEMAS}
        return cls(meta=dict(meta or {}), present=present, results_dir="(in memory)", **kwargs)

    def path_of(self, name: str) -> str:
        return f"{self.results_dir}/{SCHEMAS[name][0]}"


def load_tables(results: str | Path = "results") -> Tables:
    results = Path(results)
    frames = {name: load_table(results, name) for name in SCHEMAS}
    present = {name: (results / rel).is_file() and len(frames[name]) > 0 for name, (rel, _) in SCHEMAS.items()}
    return Tables(meta=load_meta(results), present=present, results_dir=str(results), **frames)


# --------------------------------------------------------------------------- selections

def ordered_methods(methods: Iterable) -> list[str]:
    """Methods in the study's display order; unknown names after the known ones, alphabetically."""
    names = {m for m in methods if isinstance(m, str)}
    known = [m for m in METHOD_ORDER if m in names]
    return known + sorted(names - set(METHOD_ORDER))


def dotted_lookup(node, dotted: str) -> tuple[bool, object]:
    """(whether ``dotted``, e.g. ``interspace.fb_init``, is present in nested dicts, its value)."""
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def meta_value(meta: dict, *keys, default=None):
    """First of ``keys`` found (and not null) at the top level of meta.json or in its ``params``
    snapshot.  A key may be dotted (``interspace.fb_init``) to reach into nested sections.
    """
    for source in (meta, meta.get("params") or {}):
        for key in keys:
            value = dotted_lookup(source, key)[1]
            if value is not None:
                return value
    return default


def headline_sparsity(tables: Tables) -> float | None:
    """The headline sparsity: meta.json, else the most frequent sparsity of the sparse runs in summary."""
    value = meta_value(tables.meta, "headline_sparsity", "sparsity")
    if value is not None:
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    sparse = tables.summary[(tables.summary["method"] != "dense") & tables.summary["sparsity"].notna()]
    if sparse.empty:
        return None
    return float(sparse["sparsity"].round(SPARSITY_DECIMALS).mode().iloc[0])


def at_sparsity(df: pd.DataFrame, sparsity: float | None, keep_dense: bool = True) -> pd.DataFrame:
    """Rows at ``sparsity`` (rounded); dense runs are kept whatever their sparsity field says."""
    if sparsity is None or df.empty:
        return df
    same = np.isclose(df["sparsity"].astype(float), float(sparsity), rtol=0, atol=10 ** -SPARSITY_DECIMALS)
    if keep_dense and "method" in df.columns:
        same = same | (df["method"] == "dense").to_numpy()
    return df[same]


def sparse_methods(df: pd.DataFrame) -> list[str]:
    return [m for m in ordered_methods(df["method"].dropna().unique()) if m != "dense"]


# --------------------------------------------------------------------------- pairing

def default_pair_keys(df: pd.DataFrame) -> list[str]:
    """(method, seed) plus sparsity and variant when the table has them filled."""
    keys = ["method", "seed"]
    for col in ("sparsity", "variant"):
        if col in df.columns and df[col].notna().any():
            keys.append(col)
    return keys


def is_disconnected(df: pd.DataFrame) -> pd.Series:
    """True for runs recorded as disconnected; a blank or absent column (older results) means connected."""
    if "disconnected" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["disconnected"].map(lambda v: _as_bool(v) is True).astype(bool)


def paired(df: pd.DataFrame, metric: str, keys: Sequence[str] | None = None, against: str = "ip",
           base: str = "sp") -> pd.DataFrame:
    """``base`` (SP) pairs of ``metric`` with ``against`` (IP, or IP_eq): one row per key with ``<metric>_<base>``,
    ``<metric>_<against>``, ``diff`` = against − base and ``disconnected`` (either run of the pair is).

    Keys default to (method, seed[, sparsity, variant]).  A run whose twin is missing, or
    whose metric is NaN, gives no pair (it is never paired with a zero).  Duplicate runs
    under one key are an error of the writer and raise ``ValueError``.  Pairs with a
    disconnected run are kept and flagged: a comparison leaves them out and counts them.
    """
    keys = list(keys) if keys is not None else default_pair_keys(df)
    out_cols = keys + [f"{metric}_{base}", f"{metric}_{against}", "diff", "disconnected"]
    if df.empty or metric not in df.columns:
        return pd.DataFrame(columns=out_cols)
    work = df[keys + ["repr", metric]].copy()
    work["disconnected"] = is_disconnected(df)
    # NaN keys (e.g. the sparsity of a dense run) must still match each other
    fill = {}
    for key in keys:
        if key == "sparsity":
            work[key] = work[key].astype(float).round(SPARSITY_DECIMALS)
        if work[key].isna().any():
            fill[key] = "__nan__" if work[key].dtype == object else -1.0e300
            work[key] = work[key].fillna(fill[key])
    sides = {}
    for rep in (base, against):
        side = work[(work["repr"] == rep) & work[metric].notna()].drop(columns="repr")
        dup = side.duplicated(subset=keys, keep=False)
        if dup.any():
            first = side[dup].iloc[0][keys].to_dict()
            raise ValueError(f"paired({metric}): several {rep} runs share the key {first}")
        sides[rep] = side.rename(columns={metric: f"{metric}_{rep}", "disconnected": f"disconnected_{rep}"})
    out = sides[base].merge(sides[against], on=keys, how="inner")
    out["diff"] = out[f"{metric}_{against}"] - out[f"{metric}_{base}"]
    out["disconnected"] = out[f"disconnected_{base}"] | out[f"disconnected_{against}"]
    for key, value in fill.items():
        out[key] = out[key].replace(value, np.nan)
    sort_keys = [k for k in keys if k != "method"]
    out["_order"] = out["method"].map({m: i for i, m in enumerate(ordered_methods(out["method"].unique()))})
    return out.sort_values(["_order"] + sort_keys).drop(columns="_order").reset_index(drop=True)[out_cols]


def reprs_present(df: pd.DataFrame) -> tuple[str, ...]:
    """SP and IP, plus IP_eq when the table has equal-storage runs."""
    has_eq = "repr" in df.columns and (df["repr"] == EQUAL_STORAGE).any()
    return REPRS + ((EQUAL_STORAGE,) if has_eq else ())


def starts_at_rewind(df: pd.DataFrame) -> pd.Series:
    """Runs whose training starts at a rewind point (LT): ``gf_rewind`` measured, ``gf_init`` blank.

    Their first gradient flow is not "at initialisation" and SP and IP tickets differ there, so it
    is never a Theorem 1 comparison (STUDY_SPEC section 3).
    """
    if "gf_rewind" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["gf_rewind"].notna() & df["gf_init"].isna()


def with_share(costs_reference: pd.DataFrame) -> pd.DataFrame:
    """The paper-scale FB-overhead table with ``share`` filled: a file without it was written for share=layer."""
    ref = costs_reference.copy()
    if "share" not in ref.columns:
        ref["share"] = np.nan
    ref["share"] = ref["share"].astype(object).where(ref["share"].notna(), "layer")
    return ref


#: classes of each dataset (chance level = 1 / classes)
NUM_CLASSES = {"fashion_mnist": 10, "cifar10": 10, "cifar100": 100, "tiny_imagenet": 200, "imagenet": 1000}


def chance_level(meta: dict) -> float | None:
    """Accuracy of guessing, 1 / classes of the study's dataset (None when it is not known)."""
    classes = NUM_CLASSES.get(meta_value(meta, "dataset", "data.name"))
    return 1.0 / classes if classes else None


def steps_per_run(meta: dict, summary: pd.DataFrame | None = None) -> int | None:
    """Optimisation steps of one run's schedule: as the runs recorded them (``summary.steps``), else
    epochs × ⌊training images / batch size⌋ (the last partial batch is dropped); None if unknown."""
    if summary is not None and "steps" in summary and summary["steps"].notna().any():
        return int(summary["steps"].dropna().mode().iloc[0])
    epochs = meta_value(meta, "epochs", "train.epochs")
    subset = meta_value(meta, "train_subset", "data.train_subset")
    batch = meta_value(meta, "train.batch_size", "batch_size")
    if not all(isinstance(v, (int, float)) and v > 0 for v in (epochs, subset, batch)):
        return None
    return int(epochs) * (int(subset) // int(batch))


def seed_stats(df: pd.DataFrame, metric: str, by: Sequence[str]) -> pd.DataFrame:
    """mean, sd (ddof=1; NaN for one seed) and n of ``metric`` over the rows of each group (NaN dropped)."""
    by = list(by)
    if df.empty:
        return pd.DataFrame(columns=by + ["mean", "sd", "n"])
    clean = df[df[metric].notna()]
    if clean.empty:
        return pd.DataFrame(columns=by + ["mean", "sd", "n"])
    grouped = clean.groupby(by, dropna=False)[metric]
    return grouped.agg(mean="mean", sd=lambda s: s.std(ddof=1) if len(s) > 1 else np.nan,
                       n="count").reset_index()


def accuracy_table(summary: pd.DataFrame, metric: str = "test_acc") -> pd.DataFrame:
    """method x repr (SP, IP[, IP_eq]) table of mean, sd and n of ``metric`` over seeds (every run, connected
    or not); a missing cell has n = 0 and NaN."""
    methods = ordered_methods(summary["method"].dropna().unique())
    stats = seed_stats(summary, metric, ["method", "repr"])
    reprs = reprs_present(summary)
    rows = []
    for method in methods:
        row = {"method": method}
        for rep in reprs:
            hit = stats[(stats["method"] == method) & (stats["repr"] == rep)]
            if hit.empty:
                row.update({f"{rep}_mean": np.nan, f"{rep}_sd": np.nan, f"{rep}_n": 0})
            else:
                row.update({f"{rep}_mean": float(hit["mean"].iloc[0]), f"{rep}_sd": float(hit["sd"].iloc[0]),
                            f"{rep}_n": int(hit["n"].iloc[0])})
        rows.append(row)
    return pd.DataFrame(rows, columns=["method"] + [f"{r}_{s}" for r in reprs for s in ("mean", "sd", "n")])


def percent_scale(*series: pd.Series) -> float:
    """100 when accuracies are stored as fractions in [0, 1] (the contract), 1 when already in percent."""
    values = pd.concat([pd.Series(s, dtype=float) for s in series]) if series else pd.Series(dtype=float)
    values = values.dropna()
    if values.empty:
        return 100.0
    return 100.0 if values.abs().max() <= 1.0 else 1.0


def filter_density_per_run(filter_density: pd.DataFrame) -> pd.DataFrame:
    """Per run (method, repr, seed): the mean over layers of the non-zero fraction (``filter_density``)
    and the mean participation ratio over every kept filter (``participation_ratio``: the per-layer
    means weighted by their filter counts).

    The fallback for runs whose summary columns are blank (docs/results.md).
    """
    keys = ["method", "repr", "seed"]
    per_run = filter_density.groupby(keys)["density"].mean().reset_index().rename(columns={"density": "filter_density"})
    if {"participation_ratio", "pr_filters"} <= set(filter_density.columns):
        rows = filter_density.dropna(subset=["participation_ratio", "pr_filters"])
        weighted = (rows["participation_ratio"] * rows["pr_filters"]).groupby([rows[k] for k in keys]).sum()
        counts = rows.groupby(keys)["pr_filters"].sum()
        pr = (weighted / counts.where(counts > 0)).rename("participation_ratio").reset_index()
        per_run = per_run.merge(pr, on=keys, how="left")
    else:
        per_run["participation_ratio"] = np.nan
    return per_run


def check_counts(checks: pd.DataFrame) -> pd.DataFrame:
    """Per check name (sorted): number of rows, and how many passed, failed or recorded no pass/fail.

    ``passed`` is an object column of True / False / None, so it is compared with ``==``.
    """
    cols = ["check", "n", "passed", "failed", "unknown"]
    rows = checks.dropna(subset=["check"]) if len(checks) else checks
    if rows.empty:
        return pd.DataFrame(columns=cols)
    counts = []
    for name, g in rows.groupby("check", sort=True):
        n_true = int((g["passed"] == True).sum())  # noqa: E712
        n_false = int((g["passed"] == False).sum())  # noqa: E712
        counts.append({"check": name, "n": len(g), "passed": n_true, "failed": n_false,
                       "unknown": len(g) - n_true - n_false})
    return pd.DataFrame(counts, columns=cols)


def history_means(history: pd.DataFrame, metric: str = "gf") -> pd.DataFrame:
    """Per run (method, repr, seed) mean of ``metric`` over the training epochs.

    Epoch 0, when logged, is the initialisation and is left out ("over training").  The
    history's ``sparsity`` is the sparsity measured at that epoch (it ramps up under GMP),
    so it does not identify a run and is not used here.
    """
    keys = ["method", "repr", "seed"]
    if history.empty:
        return pd.DataFrame(columns=keys + [metric])
    trained = history[history["epoch"] > 0]
    if trained.empty:
        trained = history
    return trained.groupby(keys, dropna=False)[metric].mean().reset_index()
