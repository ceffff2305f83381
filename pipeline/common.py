"""Shared plumbing of the stage entry points: paths, params -> library objects, JSON I/O."""
from __future__ import annotations

import functools
import json
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ip.experiment import PreparedData, RunSpec, StreamedData
from ip.train import TrainConfig

from .config import Params, load_or_exit

DATA = Path("data")
RESULTS = Path("results")
PREPARED = DATA / "prepared.pt"
INIT_DIR = RESULTS / "init"
MASK_DIR = RESULTS / "masks"
RUN_DIR = RESULTS / "runs"


def setup(params_path: str = "params.yaml") -> Params:
    """Validate params first (exit 2 on a bad value), then fix threads for reproducible timing."""
    params = load_or_exit(params_path)
    torch.set_num_threads(params.train.threads)
    return params


def run_id(method: str, repr_: str, seed: int) -> str:
    return f"{method}-{repr_}-s{seed}"


def train_config(p: Params, epochs: int | None = None) -> TrainConfig:
    t = p.train
    return TrainConfig(epochs=epochs or t.epochs, batch_size=t.batch_size, lr=t.lr, momentum=t.momentum,
                       nesterov=t.nesterov, weight_decay=t.weight_decay, schedule=t.schedule,
                       warmup_epochs=t.warmup_epochs, milestones=list(t.milestones), gamma=t.gamma,
                       label_smoothing=t.label_smoothing, fb_lr_scale=p.interspace.fb_lr_scale,
                       fb_weight_decay=p.interspace.fb_weight_decay, device=p.train.device)


def prune_options(p: Params) -> dict:
    pr = p.prune
    return {"synflow_rounds": pr.synflow_rounds, "grasp_temperature": pr.grasp_temperature,
            "lt_rounds": pr.lt.rounds, "lt_rewind_epoch": pr.lt.rewind_epoch,
            "dst_interval": pr.dst.interval, "dst_alpha": pr.dst.alpha, "dst_stop_fraction": pr.dst.stop_fraction,
            "gmp_start_fraction": pr.gmp.start_fraction, "gmp_end_fraction": pr.gmp.end_fraction,
            "gmp_interval": pr.gmp.interval}


def run_spec(p: Params, method: str, repr_: str, seed: int, sparsity: float | None = None,
             epochs: int | None = None, **interspace_overrides) -> RunSpec:
    ip = {"fb_init": p.interspace.fb_init, "share": p.interspace.share, "fb_in_budget": p.interspace.fb_in_budget}
    ip.update(interspace_overrides)
    return RunSpec(method=method, repr=repr_, seed=seed, sparsity=p.sparsity if sparsity is None else sparsity,
                   model=p.model.name, width=p.model.width, scope=p.prune.scope,
                   distribution=p.prune.distribution, prune_batches=p.prune.batches,
                   prune_batch_size=p.prune.batch_size, prune_options=prune_options(p),
                   train=train_config(p, epochs), finetune_epochs=p.prune.oneshot_finetune_epochs, augment=p.data.augment, gf_every_epoch=p.train.gf_every_epoch, **ip)


def load_prepared(path: Path = PREPARED) -> PreparedData | StreamedData:
    if not path.exists():
        raise SystemExit(f"error: {path} missing: run `dvc repro prepare` first")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.pop("kind", None) == "image_folder":
        return StreamedData(**blob)
    return PreparedData(**{k: (v if not isinstance(v, torch.Tensor) or v.dim() else v.item()) for k, v in blob.items()})


@functools.lru_cache(maxsize=1)
def prepared() -> PreparedData:
    """The prepared data, loaded once per process (the worker processes of ``run_jobs`` too)."""
    return load_prepared()


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def run_jobs(fn: Callable[..., Any], jobs: Sequence[tuple], workers: int = 1, threads: int = 1) -> list:
    """``[fn(*job) for job in jobs]``, over up to ``workers`` processes when ``workers`` > 1.

    For the stages that make many independent runs (sweep, ablation, trainability, Thm 1):
    each job seeds everything it draws from its own arguments, so for a given number of
    threads per process the results do not depend on how jobs are spread over processes
    (tests/test_pipeline_parallel.py).
    ``threads`` is the stage's thread budget: inline it is the caller's setting, spread
    over processes each of them uses ``threads // processes`` (at least 1) torch threads.
    ``fn`` must be a module-level function; each worker loads the prepared data once.
    Results come back in the order of ``jobs``; the first failing job's exception is raised.
    """
    jobs = list(jobs)
    if workers <= 1 or len(jobs) <= 1:
        return [fn(*job) for job in jobs]
    processes = min(workers, len(jobs))
    ctx = multiprocessing.get_context("spawn")   # no fork after torch has started its thread pools
    with ProcessPoolExecutor(max_workers=processes, mp_context=ctx, initializer=_init_worker,
                             initargs=(max(1, threads // processes),)) as pool:
        futures = [pool.submit(fn, *job) for job in jobs]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def load_init(seed: int) -> dict:
    path = INIT_DIR / f"s{seed}.pt"
    if not path.exists():
        raise SystemExit(f"error: {path} missing: run `dvc repro init` first")
    return torch.load(path, map_location="cpu", weights_only=True)


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _clean(value.tolist())
    return value


def write_json(path: Path, obj) -> None:
    """Write atomically, so an interrupted stage never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_clean(obj), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def spec_dict(spec: RunSpec) -> dict:
    d = asdict(spec)
    d["train"] = asdict(spec.train)
    return d
