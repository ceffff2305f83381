"""Many runs and shared artefacts, with DVC's own machinery, on a temporary copy of the project
with tiny params: a queue of two experiments (``dvc exp run --queue`` + ``dvc queue start -j 2``),
a local-directory DVC remote (push from one clone, pull into a fresh one: nothing to
reproduce), and the train stage with ``train.world_size: 2`` (it re-launches itself under
torchrun).  See docs/scaling.md.

``project`` (below) is the temporary-project helper that tests/test_faults.py also uses.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

import pins
from ip.pruning import method_info, registered_methods
from study.sandbox import copy_project, environment

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
DVC = str(VENV_BIN / "dvc")
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

needs_data = pytest.mark.skipif(not FASHION_MNIST.is_dir(),
                                reason=f"Fashion-MNIST not installed at {FASHION_MNIST} (Debian package "
                                       "dataset-fashion-mnist); the temporary-project tests run the real prepare stage")
needs_dvc = pytest.mark.skipif(not Path(DVC).exists(), reason=f"{DVC} missing: run `make setup`")


def tiny_params(**overrides) -> dict:
    """The project's params.yaml with everything made tiny (1 epoch on 128 images, width 4);
    ``overrides`` are dotted keys, e.g. ``**{"train.lr": 1e6}``."""
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    tiny = {"seeds": [0], "methods": ["snip"], "reprs": ["sp", "ip"],
            "data.train_subset": 128, "data.test_subset": 128, "data.metric_samples": 32, "data.eval_samples": 32,
            "model.width": 4, "train.epochs": 1, "train.batch_size": 64, "train.threads": 1, "train.workers": 1,
            "prune.batch_size": 64, "prune.lt.rewind_step": 0, "prune.dst.interval": 1, "prune.gmp.interval": 1,
            "trainability.seeds": [0], "trainability.samples": 8, "trainability.hessian_tol": 0.01,
            "trainability.hutchinson_probes": 2, "trainability.slq_probes": 1, "trainability.slq_steps": 4,
            "theorem1.etas": [0.01, 0.1], "theorem1.fd_samples": 8, "theorem1.fd_entries_per_fb": 2,
            "sweep.sparsities": [0.9], "sweep.methods": ["snip"], "sweep.seeds": None, "ablation.fb_inits": ["spatial"],
            "ablation.shares": ["layer"], "ablation.seeds": None,
            "controls.shuffle.seeds": None, "controls.lr.methods": ["snip"], "controls.lr.seeds": None, "controls.lr.lr_scales": [0.5, 1.0], "controls.lr.validation_samples": 32,
            "controls.lr.max_growth": 0, "axis.epochs": [], "axis.dense_epochs": []}
    tiny.update(overrides)
    # the controls and Hessian selections must name main runs: follow the methods and reprs asked for
    methods, reprs = tiny["methods"], tiny["reprs"]
    # masks fixed before training can be shuffled (a method the main checkout does not know, e.g. a test's own, counts)
    fixed = [m for m in methods if m not in registered_methods() or not method_info(m).has_train_hook]
    if not fixed:
        tiny["methods"] = methods = [*methods, "random"]      # a cheap one, so that the controls validate
        fixed = ["random"]
    derived = {"trainability.hessian_methods": None, "trainability.hessian_reprs": None,
               "controls.shuffle.methods": fixed[:1], "controls.shuffle.reprs": reprs,
               "controls.lr.validation_samples": max(1, min(32, (tiny["data.train_subset"] or 128) // 4))}
    tiny.update({k: v for k, v in derived.items() if k not in overrides})
    for dotted, value in tiny.items():
        *parents, leaf = dotted.split(".")
        node = p
        for key in parents:
            node = node[key]
        node[leaf] = value
    return p


def project_env() -> dict:
    """study.sandbox's environment with the venv's bin first (dvc.yaml's `python`), one thread
    per process and a test identity for git."""
    env = environment()
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    env.update({"OMP_NUM_THREADS": "1", "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
                "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid"})
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=project_env(), capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def dvc(*args: str, cwd: Path, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return run([DVC, *args], cwd, check=check, timeout=timeout)


def write_params(repo: Path, params: dict) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def project(dest: Path, params: dict | None = None, commit: bool = True) -> Path:
    """A git + DVC repository at ``dest`` holding the project's working tree (tracked files and
    untracked, not ignored ones; no pipeline outputs) with ``params`` (default: tiny)."""
    return copy_project(dest, params or tiny_params(), env=project_env(), commit=commit)


def python(module_args: list[str], cwd: Path, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return run([str(VENV_BIN / "python"), "-m", *module_args], cwd, check=check, timeout=timeout)


def read_json(path: Path):
    return json.loads(Path(path).read_text())


# -- many runs: the experiment queue ------------------------------------------------------------
@pytest.mark.slow
@needs_dvc
@needs_data
def test_queue_runs_a_grid_of_two_sparsities(tmp_path):
    repo = project(tmp_path / "proj", tiny_params(reprs=["ip"]))   # one run per experiment is enough here
    # the DVC remote is part of the commit the experiments derive from: `dvc exp push` reads it from there
    dvc("remote", "add", "-d", "shared", str(tmp_path / "storage"), cwd=repo)
    run(["git", "commit", "-q", "-am", "DVC remote"], repo)
    for sparsity in (0.9, 0.95):
        # `train` (the matrix group) as target: prepare, init, dense and train of the tiny grid
        dvc("exp", "run", "--queue", "-S", f"sparsity={sparsity}", "-n", f"sp{int(sparsity * 100)}", "train", cwd=repo)
    queued = dvc("queue", "status", cwd=repo).stdout
    assert queued.count("Queued") == 2, queued
    dvc("queue", "start", "-j", "2", cwd=repo)
    deadline = time.monotonic() + 600   # a guard against a hung queue, not a speed requirement
    try:
        while time.monotonic() < deadline:
            status = dvc("queue", "status", cwd=repo).stdout
            if "Queued" not in status and "Running" not in status:
                break
            time.sleep(3)
        else:
            pytest.fail(f"queue not done in time:\n{status}")
    finally:
        dvc("queue", "stop", cwd=repo, check=False)
    assert status.count("Success") == 2, status + dvc("queue", "logs", "sp90", cwd=repo, check=False).stdout
    shown = json.loads(dvc("exp", "show", "--json", cwd=repo).stdout)
    exps = {e["name"]: e for baseline in shown for e in (baseline.get("experiments") or [])}
    assert {"sp90", "sp95"} <= set(exps), list(exps)
    sparsity_of = {}
    for name in ("sp90", "sp95"):
        revs = exps[name]["revs"][0]["data"]
        sparsity_of[name] = revs["params"]["params.yaml"]["data"]["sparsity"]
        # the experiment's commit holds its run's metrics (non-cached outputs are committed)
        ref = revs["rev"]
        metrics = json.loads(run(["git", "show", f"{ref}:results/runs/snip/ip-s0/metrics.json"], repo).stdout)
        assert metrics["sparsity"] == sparsity_of[name]
        assert abs(metrics["sparsity_actual"] - sparsity_of[name]) < 0.01
    assert sparsity_of == {"sp90": 0.9, "sp95": 0.95}
    rows = dvc("exp", "show", "--csv", cwd=repo).stdout.splitlines()
    assert {"sp90", "sp95"} <= {row.split(",")[0] for row in rows}, rows

    # share them: git refs to a Git remote, cached outputs to the DVC remote
    run(["git", "init", "-q", "--bare", str(tmp_path / "origin.git")], tmp_path)
    run(["git", "remote", "add", "origin", str(tmp_path / "origin.git")], repo)
    dvc("exp", "push", "origin", "sp90", "sp95", cwd=repo)
    listed = dvc("exp", "list", "origin", cwd=repo).stdout
    assert "sp90" in listed and "sp95" in listed, listed
    assert any((tmp_path / "storage").rglob("*")), "no cached output reached the DVC remote"


# -- shared artefacts: a DVC remote -------------------------------------------------------------
@pytest.mark.slow
@needs_dvc
@needs_data
def test_remote_push_then_pull_into_a_fresh_clone_has_nothing_to_reproduce(tmp_path):
    first = project(tmp_path / "first")
    storage = tmp_path / "storage"
    dvc("remote", "add", "-d", "shared", str(storage), cwd=first)
    dvc("repro", "init", cwd=first)  # prepare + init
    run(["git", "add", "-A"], first)
    run(["git", "commit", "-q", "-m", "prepare and init"], first)
    dvc("push", cwd=first)
    assert any(storage.rglob("*")), "nothing was pushed"

    second = tmp_path / "second"
    run(["git", "clone", "-q", str(first), str(second)], tmp_path)
    assert not (second / "data" / "prepared.pt").exists()
    dvc("pull", "--with-deps", "init", cwd=second)  # outputs of `init` and the stages upstream of it
    for rel in ("data/prepared.pt", "results/init/s0.pt"):
        assert (second / rel).read_bytes() == (first / rel).read_bytes()
    status = dvc("status", "init", cwd=second).stdout
    assert "up to date" in status, status
    before = (second / "data" / "prepared.pt").stat().st_mtime_ns
    repro = dvc("repro", "init", cwd=second).stdout
    assert "Running stage" not in repro and "didn't change, skipping" in repro, repro
    assert (second / "data" / "prepared.pt").stat().st_mtime_ns == before


# -- one run on several processes: the train stage under torchrun --------------------------------
@pytest.mark.slow
@needs_dvc
@needs_data
def test_train_stage_with_world_size_2_runs_under_torchrun(tmp_path):
    repo = project(tmp_path / "proj", tiny_params(**{"train.world_size": 2, "train.epochs": 2,
                                                     "train.batch_size": 32}))
    python(["pipeline.prepare"], repo)
    python(["pipeline.init"], repo)
    proc = python(["pipeline.train", "--method", "snip", "--repr", "ip"], repo, timeout=240)
    assert proc.stdout.count("snip-ip-s0: test acc") == 1  # rank 0 alone reports and writes
    out = repo / "results" / "runs" / "snip" / "ip-s0"
    metrics = read_json(out / "metrics.json")
    history = read_json(out / "history.json")
    assert [r["epoch"] for r in history] == [1, 2] and all("test_acc" in r for r in history)
    assert abs(metrics["sparsity_actual"] - 0.98) < 0.005
    state, _ = pins.run_file(repo / "results" / "models" / "snip" / "ip-s0" / "final.safetensors")
    assert not any(k.startswith("module.") for k in state)  # the plain model, not the DDP wrapper
    assert not list((repo / "results" / "checkpoints").glob("*.pt"))

    write_params(repo, tiny_params(**{"train.world_size": 2, "train.batch_size": 33}))
    bad = python(["pipeline.train", "--method", "snip", "--repr", "ip", "--seed", "0"], repo, check=False)
    assert bad.returncode == 2
    assert "train.batch_size: 33 must be a multiple of train.world_size (2)" in bad.stderr
