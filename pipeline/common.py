"""Shared plumbing of the stages: paths, params -> a run's spec, a run's files, one-line errors, JSON."""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import psutil
import torch

from ip.data import RunData, read_prepared_cache
from ip.experiment import PhaseTimes, RunSpec
from ip.files import RunFileError, load_file
from ip.run import Run
from study.params import Params, load_or_exit

DATA = Path("data")
RESULTS = Path("results")
PREPARED = DATA / "prepared.pt"
INIT_DIR = RESULTS / "init"
MASK_DIR = RESULTS / "masks"
RUN_DIR = RESULTS / "runs"
SWEEP_DIR = RESULTS / "sweep"
ABLATION_FILE = RESULTS / "ablation" / "runs.json"
TRAINABILITY_DIR = RESULTS / "trainability"
THEOREM1_DIR = RESULTS / "theorem1"
PROFILE_DIR = RESULTS / "profile"   # not a DVC output: timings of the last run of each stage


def setup(params_path: str = "params.yaml") -> Params:
    """Validate params first (exit 2 on a bad value), then fix threads for reproducible timing."""
    params = load_or_exit(params_path)
    torch.set_num_threads(params.train.threads)
    return params


#: wall seconds of the running stage by phase (``with PHASES("loading"): ...``), written to
#: results/profile/ when the stage ends (benchmarks/pipeline_profile.py reads them)
PHASES = PhaseTimes()


def stage(main: Callable[..., None]) -> Callable[..., None]:
    """A stage's ``main``: a file it reads that is missing, truncated or made for another run
    ends it with one line naming the file and the stage that makes it (exit code 2).

    When it succeeds as a process of its own (``python -m pipeline.<stage>``), its profile
    goes to results/profile/<stage>[-<args>].json: start-up (process start to ``main``),
    the phases in :data:`PHASES` and the total wall time."""
    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        entered = time.time()
        PHASES.clear()
        try:
            result = main(*args, **kwargs)
        except RunFileError as exc:
            print(f"error: {exc}; re-run the stage that makes it: dvc repro -f {maker(exc.path)}", file=sys.stderr)
            raise SystemExit(2) from None
        if main.__module__ == "__main__":   # a stage process (not a call from a test or a script)
            _write_profile(main, entered)
        return result
    return wrapped


def _write_profile(main: Callable, entered: float) -> None:
    kind = sys.modules[main.__module__].__spec__.name.rsplit(".", 1)[-1]
    argv = sys.argv[1:]
    name = "-".join([kind, *(a for a in argv if not a.startswith("--"))])
    startup = entered - psutil.Process().create_time()
    write_json(PROFILE_DIR / f"{name}.json", {"stage": kind, "args": argv, "startup_seconds": startup,
                                             "total_seconds": time.time() - entered + startup,
                                             "phases": dict(PHASES)})


def maker(path: Path) -> str:
    """The stage that writes ``path`` (a run's files: ``masks@<method>-<repr>-<seed>`` or ``train@...``)."""
    parts = Path(path).parts
    for kind, stage_name in (("masks", "masks"), ("runs", "train")):
        if kind in parts:
            method, repr_, seed = parts[parts.index(kind) + 1].removesuffix(".pt").rsplit("-", 2)
            return f"{stage_name}@{method}-{repr_}-{seed.removeprefix('s')}"
    return "init" if "init" in parts else "prepare"


def parse_run_args(argv=None) -> argparse.Namespace:
    """``--method --repr --seed`` of the per-run stages."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", required=True)
    ap.add_argument("--repr", required=True, dest="repr_")
    ap.add_argument("--seed", required=True, type=int)
    return ap.parse_args(argv)


def run_id(method: str, repr_: str, seed: int) -> str:
    return f"{method}-{repr_}-s{seed}"


def run_spec(p: Params, method: str, repr_: str, seed: int, sparsity: float | None = None,
             epochs: int | None = None, **interspace_overrides) -> RunSpec:
    """The spec of one run: the validated params sections, as they are, plus the run's identity."""
    return RunSpec(method=method, repr=repr_, seed=seed, sparsity=p.sparsity if sparsity is None else sparsity,
                   model=p.model.name, width=p.model.width,
                   interspace=p.interspace.model_copy(update=interspace_overrides),
                   scope=p.prune.scope, distribution=p.prune.distribution, prune_batches=p.prune.batches,
                   prune_batch_size=p.prune.batch_size, options=p.prune.options_for(method),
                   train=p.train if epochs is None else p.train.model_copy(update={"epochs": epochs}),
                   augment=p.data.augment, gf_every_epoch=p.train.gf_every_epoch,
                   metric_bn_mode=p.trainability.bn_mode)


@functools.lru_cache(maxsize=1)
def prepared() -> RunData:
    """The prepared data, loaded once per process (the worker processes of ``run_jobs`` too)."""
    return read_prepared_cache(PREPARED)


def load_run(p: Params, method: str, repr_: str, seed: int, sparsity: float | None = None,
             **interspace_overrides) -> Run:
    """A main run of the study from its files (init state, mask file, trained outputs)."""
    name = run_id(method, repr_, seed)
    return Run.from_files(run_spec(p, method, repr_, seed, sparsity, **interspace_overrides), prepared(),
                          INIT_DIR / f"s{seed}.pt", MASK_DIR / f"{name}.pt", RUN_DIR / name)


def load_init(seed: int) -> dict:
    return load_file(INIT_DIR / f"s{seed}.pt", "initial weights")


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
    """A run's spec as plain JSON-able data (its identity, e.g. for checkpoint names)."""
    d = asdict(spec)
    for key in ("interspace", "options", "train"):
        d[key] = getattr(spec, key).model_dump()
    return d
