"""One way to load a run from its files: the model built from the seed's initial weights,
the validated masks and start weights of its mask file, and the trained weights and final
masks of its training.  Every file is checked as it is read: a missing, truncated or
mismatched file raises :class:`RunFileError` naming the file and what is wrong with it.

    run = Run.from_files(spec, data, init_file="results/init/s0.pt",
                         mask_file="results/masks/snip-ip-s0.pt", trained_dir="results/runs/snip-ip-s0")
    model, masks = run.start()          # the network sparse training starts from
    model, masks = run.trained()        # the trained network and the masks it ended with
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .data import RunData
from .experiment import RunSpec, build_model, run_data
from .files import RunFileError, load_file
from .masks import Masks, check_masks


def load_state(model: nn.Module, state: Any, path: Path, what: str) -> None:
    """``model.load_state_dict(state)``, a mismatch reported against the file it came from."""
    try:
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - size/key mismatch: the file belongs to another run
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else (first[0] if first else type(exc).__name__)
        raise RunFileError(path, f"{what} does not match the run's model ({detail})") from None


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

    def masks_and_start(self, model: nn.Module) -> tuple[Masks, dict]:
        """The mask file's masks (checked against ``model``) and start weights."""
        if self.mask_file is None:
            raise ValueError("this run was loaded without a mask file")
        blob = load_file(self.mask_file, "mask file")
        if "masks" not in blob or "start_state" not in blob:
            raise RunFileError(self.mask_file, "mask file lacks 'masks' or 'start_state'")
        try:
            masks = check_masks(blob["masks"], model, "mask file")
        except ValueError as exc:
            raise RunFileError(self.mask_file, str(exc)) from None
        return masks, blob["start_state"]

    def start(self) -> tuple[nn.Module, Masks]:
        """The network sparse training starts from (start weights loaded) and its masks."""
        model = self.new_model()
        masks, start_state = self.masks_and_start(model)
        load_state(model, start_state, self.mask_file, "start weights of the mask file")
        return model, masks

    def trained(self) -> tuple[nn.Module, Masks]:
        """The trained network and the masks it ended training with."""
        if self.trained_dir is None:
            raise ValueError("this run was loaded without its trained files")
        model = self.new_model()
        path = self.trained_dir / "model.pt"
        load_state(model, load_file(path, "trained weights"), path, "trained weights")
        return model, self.final_masks(model)

    def check(self) -> None:
        """Load every file of the run once (start, and the trained files if given), so that a
        stage finds a missing, truncated or mismatched one before any work."""
        self.start()
        if self.trained_dir is not None:
            self.trained()

    def final_masks(self, model: nn.Module) -> Masks:
        """The masks the run ended training with (methods with a training hook change them)."""
        if self.trained_dir is None:
            raise ValueError("this run was loaded without its trained files")
        path = self.trained_dir / "final_masks.pt"
        try:
            return check_masks(load_file(path, "final masks"), model, "final masks")
        except ValueError as exc:
            raise RunFileError(path, str(exc)) from None
