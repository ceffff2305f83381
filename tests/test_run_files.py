"""Every file a stage reads is checked when it is loaded: a missing, truncated or mismatched
file ends the stage with one line naming the file and the stage that makes it (exit code 2),
never a traceback, and no output is written."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from test_scaling import needs_data, needs_dvc, project, python, tiny_params

TRAIN = ["pipeline.train", "--method", "snip"]
RUN = "results/models/snip/ip-s0"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A project whose prepare, init, dense and train@snip stages have run (seed 0, SP and IP)."""
    repo = project(tmp_path_factory.mktemp("files") / "proj", tiny_params(methods=["snip", "lt", "oneshot"]),
                   commit=False)
    for stage in (["pipeline.prepare"], ["pipeline.init"], ["pipeline.train", "--method", "dense"], TRAIN):
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
        import ip
        ip.save_sparse(ip.get_model("resnet20", 10, 1, 6), {}, path)
    return lambda: shutil.copyfile(backup, path)


CASES = [
    ("data/prepared.pt", "truncated", TRAIN, "dvc repro -f prepare"),
    ("data/prepared.pt", "missing", ["pipeline.init"], "dvc repro -f prepare"),
    ("results/init/s0.pt", "truncated", TRAIN, "dvc repro -f init"),
    ("results/init/s0.pt", "mismatched", TRAIN, "dvc repro -f init"),
    (f"{RUN}/start.safetensors", "truncated", ["pipeline.trainability"], "dvc repro -f train@snip"),
    ("results/models/snip/sp-s0/start.safetensors", "missing", ["pipeline.theorem1"], "dvc repro -f train@snip"),
    (f"{RUN}/final.safetensors", "mismatched", ["pipeline.trainability"], "dvc repro -f train@snip"),
    (f"{RUN}/final.safetensors", "truncated", ["pipeline.trainability"], "dvc repro -f train@snip"),
    ("results/models/dense/ip-s0/rewind.pt", "missing", ["pipeline.train", "--method", "lt"], "dvc repro -f dense"),
    ("results/models/dense/ip-s0/final.safetensors", "truncated", ["pipeline.train", "--method", "oneshot"],
     "dvc repro -f dense"),
]


@pytest.mark.slow
@needs_data
@needs_dvc
@pytest.mark.parametrize("rel,how,stage,remedy", CASES, ids=[f"{c[0].split('/')[-1]}-{c[1]}-{c[2][0]}"
                                                             for c in CASES])
def test_bad_input_file_is_one_line_exit_2(trained, tmp_path, rel, how, stage, remedy):
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
