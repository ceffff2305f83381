"""A copy of the project without its results, as its own git + DVC repository: the quick study
runs in one (``python -m study.quick``), and so do the tests that run the pipeline."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: the checkout's pipeline outputs and lock: a copy makes its own
NOT_COPIED = ("results/", "data/", "paper_figures/", "dvc.lock", ".dvc/tmp/", ".dvc/cache/")
#: ... except the placeholders of folders a stage depends on that a switched-off list leaves empty
KEPT = ".gitkeep"


def tool(name: str) -> str:
    """A command of this interpreter's environment (dvc), else the one on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def environment() -> dict:
    """The environment a copy's stages run in: this interpreter's bin first (dvc.yaml calls
    `python`), no PYTHONPATH into the checkout, and a git identity for its commits."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({"PYTHONHASHSEED": "0", "DVC_NO_ANALYTICS": "1"})
    for key, value in (("GIT_AUTHOR_NAME", "ip study"), ("GIT_AUTHOR_EMAIL", "study@example.invalid")):
        env.setdefault(key, value)
        env.setdefault(key.replace("AUTHOR", "COMMITTER"), value)
    env.pop("PYTHONPATH", None)
    return env


def copy_project(dest: Path, params: dict, *, src: Path = ROOT, env: dict | None = None, commit: bool = True) -> Path:
    """A git + DVC repository at ``dest`` holding ``src``'s working tree (tracked files and
    untracked, not ignored ones; no pipeline outputs, no dvc.lock) with ``params`` as its
    params.yaml."""
    env = environment() if env is None else env
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=src,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    dest.mkdir(parents=True, exist_ok=True)
    for rel in filter(None, listed):
        path = src / rel
        if (rel.startswith(NOT_COPIED) and Path(rel).name != KEPT) or not path.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest / rel)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def call(*cmd: str) -> None:
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True, text=True)

    call("git", "init", "-q")
    if not (dest / ".dvc").is_dir():
        call(tool("dvc"), "init", "-q")
    call(tool("dvc"), "config", "core.analytics", "false")
    if commit:
        call("git", "add", "-A")
        call("git", "commit", "-q", "-m", "a copy of the project")
    return dest
