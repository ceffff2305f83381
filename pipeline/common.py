"""Shared plumbing of the stages: paths, params -> a run's spec, a run's files, one-line errors, JSON."""
from __future__ import annotations

import functools
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import psutil
import torch

from ip.data import RunData, read_prepared_cache
from ip.experiment import PhaseTimes, RunSpec, build_model
from ip.files import RunFileError, load_file
from ip.masks import kept_budget
from ip.pruning import method_info
from ip.run import Run
from study.params import Params, load_or_exit

DATA = Path("data")
RESULTS = Path("results")
PREPARED = DATA / "prepared.pt"
INIT_DIR = RESULTS / "init"
RUN_DIR = RESULTS / "runs"       # a run's records (git): results/runs/<method>/<repr>-s<seed>/
MODEL_DIR = RESULTS / "models"   # a run's tensors (DVC cache): results/models/<method>/<repr>-s<seed>/
SWEEP_DIR = RESULTS / "sweep"
AXIS_DIR = RESULTS / "axis"
ABLATION_FILE = RESULTS / "ablation" / "runs.json"
TRAINABILITY_DIR = RESULTS / "trainability"
THEOREM1_DIR = RESULTS / "theorem1"
PROFILE_DIR = RESULTS / "profile"   # not a DVC output (git keeps it): timings of the last run of each stage


def setup(params_path: str = "params.yaml") -> Params:
    """Validate params first (exit 2 on a bad value), then fix threads for reproducible timing."""
    params = load_or_exit(params_path)
    torch.set_num_threads(params.train.threads)
    return params


#: wall seconds of the running stage by phase (``with PHASES("loading"): ...``), written to
#: results/profile/ when the stage ends (benchmarks/pipeline_profile.py reads them)
PHASES = PhaseTimes()
#: more about the running stage for its profile (``processes``: the runs' worker processes)
STAGE_INFO: dict = {}


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
        STAGE_INFO.clear()
        try:
            result = main(*args, **kwargs)
        except RunFileError as exc:
            print(f"error: {exc}; re-run the stage that makes it: dvc repro -f {maker(exc.path)}", file=sys.stderr)
            raise SystemExit(2) from None
        if main.__module__ == "__main__":   # a stage process (not a call from a test or a script)
            _write_profile(main, entered)
        return result
    return wrapped


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (Linux: the first ``model name`` of ``cpuinfo``), else what
    :mod:`platform` knows (the processor, or the architecture)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _write_profile(main: Callable, entered: float) -> None:
    kind = sys.modules[main.__module__].__spec__.name.rsplit(".", 1)[-1]
    argv = sys.argv[1:]
    name = "-".join([kind, *(a for a in argv if not a.startswith("--"))])
    startup = entered - psutil.Process().create_time()
    total = time.time() - entered + startup
    from .plan import probe_seconds   # after the stage: the machine's speed now, for pipeline.plan's scaling
    write_json(PROFILE_DIR / f"{name}.json", {"stage": kind, "args": argv, "startup_seconds": startup,
                                             "total_seconds": total, "phases": dict(PHASES),
                                             "processes": STAGE_INFO.get("processes", 1), "cpu": cpu_model(),
                                             "probe_seconds": probe_seconds(load_or_exit("params.yaml"))})


def maker(path: Path) -> str:
    """The stage that writes ``path`` (a run's files: ``dense`` or ``train@<method>``)."""
    parts = Path(path).parts
    for kind in ("models", "runs"):
        if kind in parts and len(parts) > parts.index(kind) + 1:
            method = parts[parts.index(kind) + 1]
            return "dense" if method == "dense" else f"train@{method}"
    return "init" if "init" in parts else "prepare"


#: a run's masks and start weights, in its model directory
START_FILE = "start.safetensors"


def run_id(method: str, repr_: str, seed: int) -> str:
    return f"{method}-{repr_}-s{seed}"


def run_dir(method: str, repr_: str, seed: int) -> Path:
    """A main run's records: masks.json, metrics.json, history.json, live/ (kept in git)."""
    return RUN_DIR / method / f"{repr_}-s{seed}"


def model_dir(method: str, repr_: str, seed: int) -> Path:
    """A main run's tensors, in sparse model files (:mod:`ip.sparse_files`): start.safetensors
    (the masks and the weights training starts from) and final.safetensors (the trained model
    and its final masks); for the dense runs also rewind.pt (the weights at the lottery
    ticket's rewind step, dense)."""
    return MODEL_DIR / method / f"{repr_}-s{seed}"


def mask_file(method: str, repr_: str, seed: int) -> Path:
    """A main run's start file: its masks and start weights."""
    return model_dir(method, repr_, seed) / START_FILE


def run_spec(p: Params, method: str, repr_: str, seed: int, sparsity: float | None = None,
             epochs: int | None = None, **interspace_overrides) -> RunSpec:
    """The spec of one run: the validated params sections, as they are, plus the run's identity
    (a method that keeps every entry, dense, has sparsity 0 whatever the headline sparsity, so
    that changing it re-runs no dense run)."""
    if not method_info(method).uses_sparsity:
        sparsity = 0.0
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
    return Run.from_files(run_spec(p, method, repr_, seed, sparsity, **interspace_overrides), prepared(),
                          INIT_DIR / f"s{seed}.pt", mask_file(method, repr_, seed), model_dir(method, repr_, seed))


def load_init(seed: int) -> dict:
    return load_file(INIT_DIR / f"s{seed}.pt", "initial weights")


def budget_problem(spec: RunSpec, init_state: dict, data: RunData) -> str | None:
    """Why the run's budget cannot be kept (charged to it, the FB entries alone exceed it, as
    for ``ip_eq`` at a very high sparsity), or None.  Such a point is a result, reported."""
    if not spec.fb_in_budget or not method_info(spec.method).uses_sparsity:
        return None
    try:
        kept_budget(build_model(spec, init_state, data.num_classes, data.input_shape[0]), spec.sparsity, True)
    except ValueError as exc:
        return str(exc)
    return None


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
