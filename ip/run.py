"""One way to load a run from its files: the model built from the seed's initial weights,
the validated masks and start weights of its start file, and the trained weights and final
masks of its training, both sparse model files (:mod:`ip.sparse_files`).  Every file is
checked as it is read: a missing, truncated or mismatched file raises :class:`RunFileError`
naming the file and what is wrong with it.

    run = Run.from_files(spec, data, init_file="results/init/s0.pt",
                         mask_file="results/models/snip/ip-s0/start.safetensors",
                         trained_dir="results/models/snip/ip-s0")
    model, masks = run.start()          # the network sparse training starts from
    model, masks = run.trained()        # the trained network and the masks it ended with
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .data import RunData
from .experiment import RunSpec, build_model, run_data
from .files import RunFileError, load_file, load_sparse_file
from .masks import MaskEnforcer, Masks, check_masks, prunable_parameters
from .sparse_files import save_sparse

#: a run's trained model and final masks, in its trained directory
FINAL_FILE = "final.safetensors"


@dataclass
class Run:
    spec: RunSpec
    data: RunData
    init_state: dict
    init_file: Path | None = None
    mask_file: Path | None = None
    trained_dir: Path | None = None

    @classmethod
    def from_files(cls, spec: RunSpec, data: RunData, init_file: str | Path, mask_file: str | Path | None = None,
                   trained_dir: str | Path | None = None) -> "Run":
        init_file = Path(init_file)
        return cls(spec, run_data(spec, data), load_file(init_file, "initial weights"), init_file,
                   Path(mask_file) if mask_file is not None else None,
                   Path(trained_dir) if trained_dir is not None else None)

    def new_model(self) -> nn.Module:
        """The run's network at initialisation (SP, or its interspace twin for IP)."""
        try:
            return build_model(self.spec, self.init_state, self.data.num_classes, self.data.input_shape[0])
        except RuntimeError as exc:
            raise RunFileError(self.init_file or Path("initial state"),
                               f"initial weights do not match the run's model ({str(exc).splitlines()[0]})") from None

    def start(self) -> tuple[nn.Module, Masks]:
        """The network sparse training starts from and its masks (the start file, whose
        pruned entries hold the initial weights again where the run starts from them, so that
        masks moved afterwards, e.g. shuffled, find the weights they would have had)."""
        if self.mask_file is None:
            raise ValueError("this run was loaded without its start file")
        model = self.new_model()
        init = {name: p.detach().clone() for name, p in prunable_parameters(model).items()}
        model, masks, header = load_sparse_file(self.mask_file, "start file", model)
        masks = self._checked(masks, model, self.mask_file)
        if (header.get("meta") or {}).get("start") == "init":
            with torch.no_grad():
                for name, p in prunable_parameters(model).items():
                    if name in masks:
                        p.copy_(torch.where(masks[name], p, init[name]))
        return model, masks

    def trained(self) -> tuple[nn.Module, Masks]:
        """The trained network and the masks it ended training with."""
        model, masks, path = self._trained_file()
        return model, self._checked(masks, model, path)

    def check(self) -> None:
        """Load every file of the run once (start, and the trained files if given), so that a
        stage finds a missing, truncated or mismatched one before any work."""
        self.start()
        if self.trained_dir is not None:
            self.trained()

    def final_masks(self, model: nn.Module) -> Masks:
        """The masks the run ended training with (methods with a training hook change them),
        checked against ``model``."""
        _, masks, path = self._trained_file()
        return self._checked(masks, model, path)

    def _trained_file(self) -> tuple[nn.Module, Masks, Path]:
        if self.trained_dir is None:
            raise ValueError("this run was loaded without its trained files")
        path = self.trained_dir / FINAL_FILE
        model, masks, _ = load_sparse_file(path, "trained model", self.new_model())
        return model, masks, path

    @staticmethod
    def _checked(masks: Masks, model: nn.Module, path: Path) -> Masks:
        try:
            return check_masks(masks, model, "masks")
        except ValueError as exc:
            raise RunFileError(path, str(exc)) from None


def _write(path: Path, model: nn.Module, masks: Masks, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_sparse(model, masks, tmp, meta=meta)
    tmp.replace(path)


def write_start(path: str | Path, model: nn.Module, masks: Masks, start_state: dict | None) -> None:
    """The start file of a run: ``model`` (with ``start_state`` loaded, if the method gives
    one; else the model as it is, its initial weights) pruned by ``masks``, as a sparse file.
    A run that starts from its initial weights gets them back unpruned (:meth:`Run.start`)."""
    model = copy.deepcopy(model)
    if start_state is not None:
        model.load_state_dict(start_state)
    MaskEnforcer(model, masks).remove()           # zeroes the pruned entries, keeps the parametrisation
    _write(Path(path), model, masks, {"kind": "start", "start": "init" if start_state is None else "state"})


def write_final(path: str | Path, model: nn.Module, masks: Masks) -> None:
    """The trained model of a run and its final masks, as a sparse file."""
    _write(Path(path), model, masks, {"kind": "trained"})
