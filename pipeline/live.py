"""Per-epoch metrics written through DVCLive while a run trains: ``dvclive_logger(directory)``
yields a callback for :class:`ip.train.Trainer`'s ``log``; each epoch's record is one DVCLive
step (``<directory>/plots/metrics/<name>.tsv``, one row per epoch; ``metrics.json``: the
latest).  DVCLive only writes files here: no experiment is saved and no dvc.yaml written."""
from __future__ import annotations

import math
import numbers
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

GLOBAL_CONFIG_DIR_VARIABLE = "DVC_GLOBAL_CONFIG_DIR"   # documented DVC environment variable


def loggable_metrics(record: dict) -> dict[str, float]:
    """The entries of an epoch's record that are metrics: finite numbers, the epoch aside
    (it is the step)."""
    return {key: value for key, value in record.items()
            if key != "epoch" and isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value)}


def git_repository_without_commits() -> bool:
    """Whether the working directory is inside a git repository that has no commit yet."""
    from scmrepo.exceptions import SCMError
    from scmrepo.git import Git
    try:
        git = Git()   # searches the parent directories, as DVC does
    except SCMError:
        return False  # no git repository: DVCLive handles that case by itself
    try:
        return git.no_commits
    finally:
        git.close()


@contextmanager
def _git_hidden_from_dvc() -> Iterator[None]:
    """DVC sees this repository as one without git (``core.no_scm``) while the block runs.

    DVCLive asks git for the current commit when it starts, which fails in a repository
    without commits even when no experiment is to be saved.  ``core.no_scm`` set in a
    throw-away global configuration makes DVC skip git; the project's own configuration
    files are left untouched."""
    previous = os.environ.get(GLOBAL_CONFIG_DIR_VARIABLE)
    with tempfile.TemporaryDirectory(prefix="dvc-config-") as config_dir:
        Path(config_dir, "config").write_text("[core]\n    no_scm = true\n")
        os.environ[GLOBAL_CONFIG_DIR_VARIABLE] = config_dir
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(GLOBAL_CONFIG_DIR_VARIABLE, None)
            else:
                os.environ[GLOBAL_CONFIG_DIR_VARIABLE] = previous


def open_live(directory: str | os.PathLike):
    """A DVCLive ``Live`` writing only its files under ``directory`` (which it empties first)."""
    from dvclive import Live

    def live() -> Live:
        return Live(dir=str(directory), dvcyaml=None, save_dvc_exp=False, report=None)

    if git_repository_without_commits():
        with _git_hidden_from_dvc():
            return live()
    return live()


@contextmanager
def dvclive_logger(directory: str | os.PathLike) -> Iterator[Callable[[dict], None]]:
    """``with dvclive_logger(dir) as log:`` -- ``log(record)`` writes one epoch's metrics.

    A record's ``epoch`` (1-based) sets the DVCLive step (``epoch - 1``), so each row of a
    .tsv file is at its epoch even when a resumed run logs the epochs it restored first.
    """
    with open_live(directory) as live:
        def log(record: dict) -> None:
            if "epoch" in record:
                live.step = int(record["epoch"]) - 1
            for name, value in loggable_metrics(record).items():
                live.log_metric(name, value)
            live.next_step()

        yield log
