"""The axis stages refuse, with one line naming the key to fix and before any work, a length or
seed that params.yaml does not list, and dense lengths while the axis is switched off."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline import axis

ROOT = Path(__file__).resolve().parents[1]


def run_stage(tmp_path, monkeypatch, capsys, argv, **axis_keys) -> str:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["axis"].update(axis_keys)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)      # no data, no initial weights: a refusal must come before both are read
    with pytest.raises(SystemExit) as exc:
        axis.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert not (tmp_path / "results").exists()
    return err


def test_dense_lengths_while_the_axis_is_off_are_refused(tmp_path, monkeypatch, capsys):
    err = run_stage(tmp_path, monkeypatch, capsys, ["dense", "--epochs", "12", "--seed", "0"],
                    epochs=[], dense_epochs=[12])
    assert "axis.dense_epochs" in err and "axis.epochs is []" in err and "set axis.dense_epochs: []" in err


@pytest.mark.parametrize("argv, key", [(["--epochs", "3", "--seed", "0"], "axis.epochs"),
                                       (["dense", "--epochs", "4", "--seed", "0"], "axis.dense_epochs"),
                                       (["--epochs", "4", "--seed", "7"], "axis.seeds")])
def test_a_length_or_seed_params_do_not_list_is_refused(tmp_path, monkeypatch, capsys, argv, key):
    err = run_stage(tmp_path, monkeypatch, capsys, argv, epochs=[4, 12], dense_epochs=[12], seeds=[0, 1, 2])
    assert f"params.yaml's {key}" in err
