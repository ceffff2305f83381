"""Every file a stage reads is checked when it is loaded: a missing, truncated or mismatched
file ends the stage with one line naming the file and the stage that makes it (exit code 2),
never a traceback, and no output is written."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from test_scaling import needs_data, needs_dvc, project, python, tiny_params

RUN = ["--method", "snip", "--repr", "ip", "--seed", "0"]
NAME = "snip-ip-s0"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A project whose prepare, init, masks and train stages of one run have run."""
    repo = project(tmp_path_factory.mktemp("files") / "proj", tiny_params(**{"reprs": ["ip"]}), commit=False)
    for stage in (["pipeline.prepare"], ["pipeline.init"], ["pipeline.masks", *RUN], ["pipeline.train", *RUN]):
        python(stage, repo)
    return repo


def _broken(repo: Path, rel: str, how: str, tmp_path: Path):
    """Break ``rel`` (truncate, remove, or replace with another model's file); return a restorer."""
    path = repo / rel
    backup = tmp_path / "backup"
    shutil.copyfile(path, backup)
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif how == "missing":
        path.unlink()
    elif how == "mismatched":   # a file of the same kind made for a network of another width
        from ip.models import get_model
        torch.save(get_model("resnet20", 10, 1, 6).state_dict(), path)
    return lambda: shutil.copyfile(backup, path)


CASES = [
    ("data/prepared.pt", "truncated", ["pipeline.masks", *RUN], "dvc repro -f prepare"),
    ("data/prepared.pt", "missing", ["pipeline.init"], "dvc repro -f prepare"),
    ("results/init/s0.pt", "truncated", ["pipeline.masks", *RUN], "dvc repro -f init"),
    ("results/init/s0.pt", "mismatched", ["pipeline.masks", *RUN], "dvc repro -f init"),
    (f"results/masks/{NAME}.pt", "truncated", ["pipeline.train", *RUN], "dvc repro -f masks@snip-ip-0"),
    (f"results/masks/{NAME}.pt", "missing", ["pipeline.theorem1"], "dvc repro -f masks@snip-sp-0"),
    (f"results/runs/{NAME}/model.pt", "mismatched", ["pipeline.trainability"], "dvc repro -f train@snip-ip-0"),
    (f"results/runs/{NAME}/final_masks.pt", "truncated", ["pipeline.trainability"], "dvc repro -f train@snip-ip-0"),
]


@pytest.mark.slow
@needs_data
@needs_dvc
@pytest.mark.parametrize("rel,how,stage,remedy", CASES, ids=[f"{c[0].split('/')[-1]}-{c[1]}-{c[2][0]}"
                                                             for c in CASES])
def test_bad_input_file_is_one_line_exit_2(trained, tmp_path, rel, how, stage, remedy):
    if stage[0] == "pipeline.theorem1":   # theorem1 checks the SP mask of each method
        rel = rel.replace("-ip-", "-sp-")
        if not (trained / rel).exists():
            python(["pipeline.masks", "--method", "snip", "--repr", "sp", "--seed", "0"], trained)
    before = {p: p.stat().st_mtime_ns for p in (trained / "results").rglob("*")
              if p.is_file() and not p.as_posix().endswith(rel)}
    restore = _broken(trained, rel, how, tmp_path)
    try:
        proc = python(stage, trained, check=False)
    finally:
        restore()
    err = proc.stderr.strip()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert rel.split("/")[-1] in err and remedy in err, err
    # nothing written or removed: every other file is as it was
    assert {p: p.stat().st_mtime_ns for p in before if p.exists()} == before
