"""make quick (study/quick.py): bad input is one line and exit 2 before any work; a folder
that is not a quick study's is never replaced.  The quick study itself runs the whole
pipeline, like tests/test_pipeline_e2e.py, and is timed in the README, not here."""
import yaml

from study import quick
from study.params import validate


def test_the_quick_preset_keeps_every_stage_small():
    p = validate(yaml.safe_load(quick.PRESET.read_text()))
    assert p.data.train_subset <= 1000 and p.model.width <= 8 and len(p.seeds) == 1 and len(p.methods) == 2
    assert p.sweep.sparsities and p.ablation_variants() and p.controls.shuffle.methods and p.controls.lr.methods
    assert p.trainability.hessian_methods and p.theorem1.etas


def test_bad_input_is_one_line_and_touches_nothing(tmp_path, capsys):
    assert quick.main(["--out", str(quick.ROOT)]) == 2
    assert "would replace the project itself" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**yaml.safe_load(quick.PRESET.read_text()), "sparsity": 1.5}))
    assert quick.main(["--preset", str(bad), "--out", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: sparsity") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "q").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert quick.main(["--out", str(mine)]) == 2
    assert "is not a quick study's folder" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "keep"
