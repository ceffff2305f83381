"""Reading the files a run needs, with one clear error for a missing, truncated or foreign file."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


class RunFileError(RuntimeError):
    """A file a run needs is missing, unreadable or made for another run."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):   # raised in a worker process, it must cross back to the caller intact
        return type(self), (self.path, self.problem)


def load_file(path: str | Path, what: str, expect: type = dict) -> Any:
    """``torch.load`` of a file the caller needs, as an object of type ``expect``."""
    path = Path(path)
    if not path.exists():
        raise RunFileError(path, f"{what} missing")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise RunFileError(path, f"{what} is unreadable or truncated ({type(exc).__name__})") from None
    if not isinstance(blob, expect):
        raise RunFileError(path, f"{what} holds a {type(blob).__name__}, expected a {expect.__name__}")
    return blob


def load_sparse_file(path: str | Path, what: str, model):
    """:func:`ip.load_sparse` of a file the caller needs into ``model``: ``(model, masks)``
    and the file's header; a missing, corrupted or foreign file is a :class:`RunFileError`."""
    from .sparse_files import SparseFileError, load_sparse, read_header
    path = Path(path)
    if not path.exists():
        raise RunFileError(path, f"{what} missing")
    try:
        header = read_header(path)
        model, masks = load_sparse(path, model)
    except SparseFileError as exc:
        problem = str(exc).removeprefix(str(path)).lstrip(": ")
        raise RunFileError(path, f"{what}: {problem}") from None
    return model, masks, header
