"""Bad params.yaml values are caught before any work: one line naming the key and the
allowed values, exit code 2, existing results untouched."""
import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from study.params import ParamsError, validate

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "params.yaml").read_text())


def test_default_params_are_valid():
    p = validate(copy.deepcopy(DEFAULT))
    assert 0.0 <= p.sparsity < 1.0 and len(p.seeds) >= 3
    assert {"random", "snip", "grasp", "synflow", "lt", "rigl", "gmp"} <= set(p.methods)
    assert p.run_methods[0] == "dense"
    assert p.reprs == ["sp", "ip", "ip_eq"]


BAD = [
    ("unknown top-level key", lambda r: r.update(sparsityy=0.9), "unknown key sparsityy"),
    ("unknown nested key", lambda r: r["train"].update(epoch=3), "unknown key train.epoch"),
    ("sparsity 1", lambda r: r.update(sparsity=1.0), "sparsity"),
    ("negative sparsity", lambda r: r.update(sparsity=-0.1), "sparsity"),
    ("sparsity as text", lambda r: r.update(sparsity="high"), "sparsity: expected a number"),
    ("epochs 0", lambda r: r["train"].update(epochs=0), "train.epochs"),
    ("epochs float", lambda r: r["train"].update(epochs=2.5), "train.epochs: expected an integer"),
    ("bool as int", lambda r: r["train"].update(epochs=True), "train.epochs: expected an integer"),
    ("unknown method", lambda r: r.update(methods=["snip", "magic"]), "methods: 'magic' is not allowed"),
    ("unknown repr", lambda r: r.update(reprs=["sp", "xp"]), "reprs: 'xp'"),
    ("unknown model", lambda r: r["model"].update(name="resnet21"), "model.name: 'resnet21' is not allowed"),
    ("unknown dataset", lambda r: r["data"].update(name="mnist"), "data.name: 'mnist' is not allowed"),
    ("unknown fb_init", lambda r: r["interspace"].update(fb_init="haar"), "interspace.fb_init"),
    ("unknown schedule", lambda r: r["train"].update(schedule="linear"), "train.schedule"),
    ("duplicate seeds", lambda r: r.update(seeds=[0, 0]), "seeds"),
    ("empty methods", lambda r: r.update(methods=[]), "methods: must not be empty"),
    ("sweep sparsity", lambda r: r["sweep"].update(sparsities=[0.9, 1.5]), "sweep.sparsities[1]"),
    ("lt rewind beyond training", lambda r: r["prune"]["lt"].update(rewind_step=10**6), "prune.lt.rewind_step"),
    ("dense among the pruning methods", lambda r: r.update(methods=["dense", "snip"]), "methods: leave out dense"),
    ("section not a mapping", lambda r: r.update(train=3), "train: expected a mapping"),
    ("imagenet without root", lambda r: r["data"].update(name="imagenet"), "data.root"),
    ("unknown device", lambda r: r["train"].update(device="tpu"), "train.device: 'tpu' is not allowed"),
    ("workers 0", lambda r: r["train"].update(workers=0), "train.workers"),
    ("negative loader workers", lambda r: r["data"].update(loader_workers=-1), "data.loader_workers"),
    ("fd samples 0", lambda r: r["theorem1"].update(fd_samples=0), "theorem1.fd_samples"),
    ("hessian method without main runs", lambda r: r["trainability"].update(hessian_methods=["set"]),
     "trainability.hessian_methods: ['set'] not among"),
    ("hessian repr without main runs", lambda r: (r.update(reprs=["sp", "ip"]),
                                                  r["trainability"].update(hessian_reprs=["ip_eq"])),
     "trainability.hessian_reprs: ['ip_eq'] not among"),
    ("shuffling a mask that moves", lambda r: r["controls"]["shuffle"].update(methods=["rigl"]),
     "controls.shuffle.methods: rigl changes its masks during training"),
    ("shuffle seed without main runs", lambda r: r["controls"]["shuffle"].update(seeds=[9]),
     "controls.shuffle.seeds: [9] not among"),
    ("lr control seed without main runs", lambda r: r["controls"]["lr"].update(seeds=[0, 7]),
     "controls.lr.seeds: [7] not among"),
    ("validation slice takes every image", lambda r: r["controls"]["lr"].update(validation_samples=60_000),
     "controls.lr.validation_samples: 60000 leaves no training images"),
    ("empty sweep seeds", lambda r: r["sweep"].update(seeds=[]),
     "sweep.seeds: empty; null takes the top-level seeds, and sweep.sparsities: [] switches it off"),
    ("empty ablation seeds", lambda r: r["ablation"].update(seeds=[]), "ablation.fb_inits: [] and ablation.shares: []"),
    ("empty lr control seeds", lambda r: r["controls"]["lr"].update(seeds=[]), "controls.lr.methods: []"),
    ("empty lr control reprs", lambda r: r["controls"]["lr"].update(reprs=[]), "controls.lr.reprs"),
    ("empty reprs", lambda r: r.update(reprs=[]), "reprs: must not be empty"),
    ("one learning rate", lambda r: r["controls"]["lr"].update(lr_scales=[1.0]), "controls.lr.lr_scales"),
    ("negative learning-rate scale", lambda r: r["controls"]["lr"].update(lr_scales=[-1.0, 1.0]),
     "controls.lr.lr_scales[0]"),
]


@pytest.mark.parametrize("label,mutate,expected", BAD, ids=[b[0] for b in BAD])
def test_bad_value_names_the_key(label, mutate, expected):
    raw = copy.deepcopy(DEFAULT)
    mutate(raw)
    with pytest.raises(ParamsError) as info:
        validate(raw)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_compile_without_a_cpp_compiler_is_a_params_error(monkeypatch):
    raw = copy.deepcopy(DEFAULT)
    raw["train"].update(compile=True, device="cpu")
    validate(copy.deepcopy(raw))                      # this machine has g++ (make setup builds with it)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(ParamsError) as info:
        validate(raw)
    assert str(info.value).startswith("train.compile: torch.compile on the CPU needs a C++ compiler")
    assert "train.compile: false" in str(info.value) and "\n" not in str(info.value)
    raw["train"]["compile"] = False
    validate(raw)                                     # eager training needs no compiler


def test_stage_exits_2_with_one_line_and_leaves_results_alone(tmp_path):
    raw = copy.deepcopy(DEFAULT)
    raw["train"]["lr"] = "fast"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    results = tmp_path / "results" / "runs" / "snip-sp-s0"
    results.mkdir(parents=True)
    (results / "metrics.json").write_text('{"test_acc": 0.5}')
    proc = subprocess.run([sys.executable, "-m", "pipeline.train", "--method", "snip", "--repr", "sp", "--seed", "0"],
                          cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["error: params.yaml: train.lr: expected a number, got 'fast'"]
    assert (results / "metrics.json").read_text() == '{"test_acc": 0.5}'
    assert not (tmp_path / "data").exists()


def test_missing_params_file_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipeline.prepare"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert proc.returncode == 2
    assert "params.yaml not found" in proc.stderr


@pytest.mark.parametrize("preset", sorted((ROOT / "presets").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_preset_is_valid(preset):
    raw = yaml.safe_load(preset.read_text())
    if raw["data"].get("root") is None and raw["data"]["name"] in ("imagenet", "tiny_imagenet"):
        raw["data"]["root"] = "/path/to/images"   # the user sets it; everything else must validate as shipped
    p = validate(raw)
    assert p.model.name == raw["model"]["name"] and p.train.epochs == raw["train"]["epochs"]


def test_empty_lists_switch_off_the_sweep_ablation_and_controls():
    raw = copy.deepcopy(DEFAULT)
    raw["sweep"].update(sparsities=[])
    raw["ablation"].update(fb_inits=[], shares=[])
    raw["controls"]["shuffle"].update(methods=[])
    raw["controls"]["lr"].update(methods=[])
    p = validate(raw)
    assert p.sweep.sparsities == [] and p.ablation_variants() == []
    assert p.controls.shuffle.methods == [] and p.controls.lr.methods == []
    # the fair-budget variant alone is not an ablation left on by accident
    raw["reprs"] = ["sp", "ip"]
    assert validate(raw).ablation_variants() == []
    # one list of the ablation keeps the other's variants
    raw["ablation"].update(shares=["network"])
    assert [name for name, _ in validate(raw).ablation_variants()] == ["share=network", "share=network,fair_budget",
                                                                      "fair_budget"]


@pytest.mark.parametrize("preset", sorted((ROOT / "presets").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_preset_defines_the_pipelines_stages(preset, tmp_path):
    """`cp presets/<x>.yaml params.yaml && dvc repro` needs every key dvc.yaml interpolates."""
    dvc = Path(sys.executable).parent / "dvc"
    if not dvc.exists():
        pytest.skip("dvc missing: run `make setup`")
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    (tmp_path / "params.yaml").write_text(preset.read_text())
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core]\n    no_scm = true\n")
    out = subprocess.run([str(dvc), "stage", "list", "--name-only"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    stages = out.stdout.split()
    assert {"prepare", "init", "dense", "aggregate", "figures", "report"} <= set(stages)
    raw = yaml.safe_load(preset.read_text())
    assert {f"train@{m}" for m in raw["methods"]} <= set(stages)
    assert {f"axis@{e}-{s}" for e in raw["axis"]["epochs"] for s in raw["axis"]["seeds"]} <= set(stages)
