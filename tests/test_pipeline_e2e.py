"""End to end: the real dvc.yaml on a temporary copy of the project with tiny params.

`dvc repro` runs every stage, `dvc exp run -S sparsity=0.99` re-runs what depends on the
headline sparsity (and only that), and a second `dvc repro` runs nothing."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FMNIST = Path("/usr/share/datasets/fashion-mnist")
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not FMNIST.exists(), reason="Debian's dataset-fashion-mnist is not installed"),
              pytest.mark.skipif(not (BIN / "dvc").exists(), reason="dvc is not installed in this environment")]


def tiny_params() -> dict:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p.update(sparsity=0.9, seeds=[0, 1], methods=["snip", "rigl"], reprs=["sp", "ip"])
    p["data"].update(train_subset=256, test_subset=256, metric_samples=32, eval_samples=64)
    p["model"].update(width=4)
    p["train"].update(epochs=1, batch_size=64, threads=1)
    p["prune"].update(batch_size=64)
    p["prune"]["lt"].update(rewind_epoch=0)
    p["prune"]["dst"].update(interval=2)
    p["trainability"].update(seeds=[0], samples=16, hessian_top_k=1, hutchinson_probes=2, slq_probes=1, slq_steps=4)
    p["theorem1"].update(etas=[0.001, 0.01])
    p["sweep"].update(sparsities=[0.5], methods=["snip"])
    p["ablation"].update(method="snip", fb_inits=["spatial", "dct"], shares=["layer"], fair_budget=False)
    return p


def run(cmd, cwd, env):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    dest = tmp_path_factory.mktemp("study")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        if rel.startswith(("results/", "data/", "paper_figures/")) or rel == "dvc.lock":
            continue
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "PYTHONPATH": str(dest),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "DVC_NO_ANALYTICS": "1"}
    run(["git", "init", "-q"], dest, env)
    if not (dest / ".dvc").exists():
        run(["dvc", "init", "-q"], dest, env)
    run(["git", "add", "-A"], dest, env)
    run(["git", "commit", "-qm", "tiny study"], dest, env)
    run(["dvc", "repro"], dest, env)
    return dest, env


def test_repro_writes_every_result(project):
    dest, _ = project
    summary = pd.read_csv(dest / "results" / "summary.csv")
    assert len(summary) == 2 * 2 * 2  # methods x reprs x seeds
    assert set(summary["repr"]) == {"sp", "ip"}
    assert summary["sparsity_actual"].between(0.899, 0.901).all()
    assert summary["test_acc"].between(0.0, 1.0).all()
    for rel in ("history.csv", "sweep.csv", "ablation.csv", "filters.csv", "costs_reference.csv",
                "trainability/hessian.csv", "theorem1/checks.csv", "theorem1/one_step.csv"):
        assert (dest / "results" / rel).stat().st_size > 0, rel
    sweep = pd.read_csv(dest / "results" / "sweep.csv")
    assert set(sweep["sparsity"]) == {0.5, 0.9}
    report = (dest / "paper_figures" / "REPORT.md").read_text()
    for claim in [f"C{i}" for i in range(1, 10)]:
        assert claim in report
    assert (dest / "paper_figures" / "figures" / "fig1_accuracy.png").stat().st_size > 10_000
    metrics = json.loads((dest / "results" / "metrics.json").read_text())
    assert set(metrics) == {"snip", "rigl"} and "test_acc_ip" in metrics["snip"]


# The tiny study's results, pinned: a refactor must reproduce them exactly (timing fields aside).
# A change that is meant to change results regenerates them: IP_UPDATE_PINNED=1 pytest tests/test_pipeline_e2e.py
PINNED = ROOT / "tests" / "data" / "tiny_study"
TIMING_FIELDS = ("seconds", "step_seconds")


def _without_timing(csv_text: str) -> list[list[str]]:
    import csv
    rows = list(csv.reader(csv_text.splitlines()))
    keep = [i for i, name in enumerate(rows[0]) if name not in TIMING_FIELDS]
    return [[row[i] for i in keep] for row in rows]


def test_tiny_study_reproduces_its_pinned_results(project):
    """Runs before the tests that change the study (dvc exp run), on the first repro's results."""
    dest, _ = project
    runs = sorted((dest / "results" / "runs").glob("*/metrics.json"))
    if os.environ.get("IP_UPDATE_PINNED") == "1":
        (PINNED / "runs").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dest / "results" / "summary.csv", PINNED / "summary.csv")
        for path in runs:
            shutil.copyfile(path, PINNED / "runs" / f"{path.parent.name}.json")
    summary = (dest / "results" / "summary.csv").read_text()
    assert _without_timing(summary) == _without_timing((PINNED / "summary.csv").read_text())
    assert [p.parent.name for p in runs] == sorted(p.stem for p in (PINNED / "runs").glob("*.json"))
    for path in runs:
        got = {k: v for k, v in json.loads(path.read_text()).items() if k not in TIMING_FIELDS}
        pinned = json.loads((PINNED / "runs" / f"{path.parent.name}.json").read_text())
        assert got == {k: v for k, v in pinned.items() if k not in TIMING_FIELDS}, path.parent.name


def test_second_repro_runs_nothing(project):
    dest, env = project
    out = run(["dvc", "repro"], dest, env)
    assert "Running stage" not in out


def test_exp_run_changes_the_headline_sparsity(project):
    dest, env = project
    out = run(["dvc", "exp", "run", "-S", "sparsity=0.99"], dest, env)
    # the sweep does not depend on the headline sparsity and is not re-run
    assert "Running stage 'sweep@" not in out and "Running stage 'prepare'" not in out
    assert "Running stage 'train@snip-ip-0'" in out
    summary = pd.read_csv(dest / "results" / "summary.csv")
    assert summary["sparsity_actual"].between(0.9899, 0.9901).all()
    shown = run(["dvc", "exp", "show", "--no-pager", "--csv"], dest, env)
    assert "test_acc_ip" in shown or "snip.test_acc_ip" in shown

