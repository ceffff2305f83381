"""Per-epoch metrics through DVCLive while training (pipeline/live.py): the files dvc.yaml
declares, in a git repository with commits and in one without (where DVCLive cannot ask
git for the current commit), and complete after a resumed run."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

from ip.data import TensorLoader
from ip.train import TrainConfig, Trainer
from pipeline.live import GLOBAL_CONFIG_DIR_VARIABLE, dvclive_logger, git_repository_without_commits, loggable_metrics

RECORDS = [
    {"epoch": 1, "lr": 0.1, "test_acc": 0.25, "gf": 2.0, "method": "snip"},
    {"epoch": 2, "lr": 0.05, "test_acc": float("nan"), "gf": float("inf")},   # not logged: not finite
    {"epoch": 3, "lr": 0.0, "test_acc": 0.5, "gf": 1.5},
]


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def _repository(path: Path, commit: bool) -> Path:
    """A git + DVC repository, with one commit or none."""
    from dvc.repo import Repo
    path.mkdir()
    _git("init", "-q", cwd=path)
    Repo.init(str(path)).close()
    if commit:
        _git("add", "-A", cwd=path)
        _git("commit", "-q", "-m", "start", cwd=path)
    return path


def _read_live(directory: Path) -> tuple[dict, dict[str, str]]:
    plots = directory / "plots" / "metrics"
    return (json.loads((directory / "metrics.json").read_text()),
            {f.stem: f.read_text() for f in sorted(plots.glob("*.tsv"))})


def test_loggable_metrics_are_the_finite_numbers_but_the_epoch():
    assert loggable_metrics({"epoch": 4, "lr": 0.1, "n": 3, "ok": True, "name": "x", "gap": float("-inf"),
                             "nan": float("nan")}) == {"lr": 0.1, "n": 3}


@pytest.mark.parametrize("commit", [True, False], ids=["with-commit", "without-commit"])
def test_dvclive_files_in_a_git_repository(tmp_path, monkeypatch, commit):
    repo = _repository(tmp_path / "repo", commit)
    monkeypatch.chdir(repo)
    monkeypatch.delenv(GLOBAL_CONFIG_DIR_VARIABLE, raising=False)
    assert git_repository_without_commits() is (not commit)
    dvc_config = (repo / ".dvc" / "config").read_text()
    head = _git("rev-parse", "HEAD", cwd=repo) if commit else None

    with dvclive_logger(Path("results") / "live") as log:
        for record in RECORDS:
            log(record)
        assert GLOBAL_CONFIG_DIR_VARIABLE not in os.environ   # hidden from DVC only while Live starts

    summary, tsv = _read_live(repo / "results" / "live")
    assert summary == {"lr": 0.0, "test_acc": 0.5, "gf": 1.5, "step": 2}
    assert tsv == {"gf": "step\tgf\n0\t2.0\n2\t1.5\n",
                   "lr": "step\tlr\n0\t0.1\n1\t0.05\n2\t0.0\n",
                   "test_acc": "step\ttest_acc\n0\t0.25\n2\t0.5\n"}
    assert sorted(p.name for p in (repo / "results" / "live").iterdir()) == ["metrics.json", "plots"]
    assert not (repo / "dvc.yaml").exists()                          # no dvc.yaml written ...
    assert (repo / ".dvc" / "config").read_text() == dvc_config       # ... nor the project's config changed
    if commit:                                                        # ... nor an experiment saved
        assert _git("rev-parse", "HEAD", cwd=repo) == head
        assert _git("for-each-ref", "refs/exps", cwd=repo) == ""


def test_outside_any_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if subprocess.run(["git", "rev-parse"], cwd=tmp_path, capture_output=True).returncode == 0:
        pytest.skip("the temporary directory is inside a git repository")
    assert not git_repository_without_commits()
    with dvclive_logger(tmp_path / "live") as log:
        log(RECORDS[0])
    assert _read_live(tmp_path / "live")[1]["test_acc"] == "step\ttest_acc\n0\t0.25\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live"]   # no repository made on the way


class _Evaluation:
    """epoch_end: a metric that depends on the weights, so every epoch's row differs."""

    def __call__(self, epoch, model, enforcer):
        return {"weight_norm": float(model.weight.detach().norm())}


def _train(directory: Path, checkpoint: Path, end_epoch: int | None = None) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    model = nn.Linear(8, 3)
    loader = TensorLoader(torch.randn(24, 8, generator=g), torch.randint(0, 3, (24,), generator=g), 8, seed=0,
                          augment=False)
    trainer = Trainer(model, {}, loader, TrainConfig(epochs=3, batch_size=8, lr=0.1, schedule="constant"),
                      checkpoint=checkpoint, epoch_end=_Evaluation())
    with dvclive_logger(directory) as log:
        trainer.log = log
        trainer.fit(end_epoch=end_epoch)


def test_a_resumed_run_logs_every_epoch(tmp_path, monkeypatch):
    repo = _repository(tmp_path / "repo", commit=False)
    monkeypatch.chdir(repo)
    _train(Path("uninterrupted"), tmp_path / "a.pt")
    _train(Path("resumed"), tmp_path / "b.pt", end_epoch=1)   # stopped after epoch 1 ...
    _train(Path("resumed"), tmp_path / "b.pt")                # ... and resumed by a new process
    uninterrupted, resumed = _read_live(repo / "uninterrupted"), _read_live(repo / "resumed")
    assert resumed == uninterrupted
    assert len(uninterrupted[1]["weight_norm"].splitlines()) == 1 + 3
