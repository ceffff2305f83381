"""Faults: a run killed mid-epoch, corrupt checkpoints and mask files, a dataset that fails its
checksum, a diverging run, two `dvc repro` at once, and run-to-run determinism.

Most tests drive the real stage entry points (``python -m pipeline.<stage>``) in a temporary
copy of the project with tiny params (see ``project`` in tests/test_scaling.py); the
stage-level checks run ``dvc repro`` there.
"""
from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

import pins
from ip.data import FASHION_MNIST_FILES, DatasetError, TensorLoader, fashion_mnist
from ip.experiment import is_timing
from ip.masks import load_masks
from ip.models import get_model
from ip.train import CheckpointError, DivergenceError, TrainConfig, Trainer
from test_scaling import (DVC, FASHION_MNIST, VENV_BIN, needs_data, needs_dvc, project, project_env, python,
                          read_json, run, tiny_params, write_params)

RUN = ["--method", "rigl"]   # one run, rigl-ip-s0 (RigL: the checkpoint must carry hook state too)
NAME = "rigl-ip-s0"
RECORDS = Path("results") / "runs" / "rigl" / "ip-s0"
TENSORS = Path("results") / "models" / "rigl" / "ip-s0"
KILL_AFTER_STEPS = 6      # 4 steps per epoch: killed in the middle of epoch 2, after epoch 1's checkpoint
# a killed run: the Trainer's optimiser exits the process (no clean-up, like SIGKILL) after N steps
KILLED_RUN = f"""
import os, sys
import ip.train
_init = ip.train.Trainer.__init__
def _init_then_arm(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    steps = [0]
    def count(*_):
        steps[0] += 1
        if steps[0] == {KILL_AFTER_STEPS}:
            os._exit(17)
    self.optimizer.register_step_post_hook(count)
ip.train.Trainer.__init__ = _init_then_arm
import pipeline.train
pipeline.train.main(sys.argv[1:])
"""


def _params(**overrides):
    return tiny_params(**{"methods": ["rigl"], "reprs": ["ip"], "train.epochs": 3, "train.batch_size": 32,
                          **overrides})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A project whose prepare and init stages have run."""
    if not FASHION_MNIST.is_dir():
        pytest.skip(f"Fashion-MNIST not installed at {FASHION_MNIST} (Debian package dataset-fashion-mnist)")
    if not Path(DVC).exists():
        pytest.skip(f"{DVC} missing: run `make setup`")
    repo = project(tmp_path_factory.mktemp("faults") / "proj", _params())
    python(["pipeline.prepare"], repo)
    python(["pipeline.init"], repo)
    return repo


def _outputs(repo: Path) -> dict:
    out, tensors = repo / RECORDS, repo / TENSORS
    metrics = read_json(out / "metrics.json")
    state, masks = pins.run_file(tensors / "final.safetensors")
    return {"model": state, "masks": masks,
            "metrics": {k: v for k, v in metrics.items() if not is_timing(k)},
            "history": read_json(out / "history.json")}


def _assert_same_run(a: dict, b: dict) -> None:
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])   # bitwise
    assert all(torch.equal(a["masks"][k], b["masks"][k]) for k in a["masks"])
    assert a["metrics"] == b["metrics"]
    assert a["history"] == b["history"]


def _checkpoints(repo: Path) -> list[Path]:
    return sorted((repo / "results" / "checkpoints").glob(f"{NAME}*.pt"))


def _clear_run(repo: Path) -> None:
    shutil.rmtree(repo / RECORDS, ignore_errors=True)
    shutil.rmtree(repo / TENSORS, ignore_errors=True)


@pytest.fixture(scope="module")
def uninterrupted(prepared):
    _clear_run(prepared)
    python(["pipeline.train", *RUN], prepared)
    return _outputs(prepared)


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_and_ends_identical(prepared, uninterrupted):
    _clear_run(prepared)
    killed = run([str(VENV_BIN / "python"), "-c", KILLED_RUN, *RUN], prepared, check=False)
    assert killed.returncode == 17, killed.stderr[-2000:]
    assert not (prepared / RECORDS / "metrics.json").exists()
    ckpt, = _checkpoints(prepared)
    assert torch.load(ckpt, weights_only=False)["epoch"] == 1

    python(["pipeline.train", *RUN], prepared)
    _assert_same_run(_outputs(prepared), uninterrupted)
    assert not _checkpoints(prepared)   # removed once every run of the stage has written its outputs


@pytest.mark.slow
def test_two_identical_runs_give_identical_results_and_ignore_foreign_checkpoints(prepared, uninterrupted):
    _clear_run(prepared)
    # a checkpoint left by a run with other inputs (e.g. before a params change): never resumed
    foreign = prepared / "results" / "checkpoints" / f"{NAME}-0123456789abcdef.pt"
    foreign.parent.mkdir(parents=True, exist_ok=True)
    foreign.write_bytes(b"a checkpoint of another run")
    proc = python(["pipeline.train", *RUN], prepared)
    assert "written for other inputs" in proc.stdout and not foreign.exists()
    _assert_same_run(_outputs(prepared), uninterrupted)


@pytest.mark.slow
def test_corrupt_checkpoint_stops_the_run_with_a_clear_error(prepared, uninterrupted, monkeypatch):
    from pipeline.train import run_checkpoint
    from study.params import load_params
    monkeypatch.chdir(prepared)
    # the run's checkpoint name is a digest of its inputs, its mask file (left by the uninterrupted run) included
    ckpt = run_checkpoint(load_params(), "rigl", "ip", 0)
    (prepared / RECORDS / "metrics.json").unlink()
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(b"\x80\x02 truncated pickle")
    try:
        proc = python(["pipeline.train", *RUN], prepared, check=False)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"error: {NAME}: checkpoint" in proc.stderr and "unreadable or corrupt" in proc.stderr
        assert "delete it to start over" in proc.stderr
        assert not (prepared / RECORDS / "metrics.json").exists()
        assert ckpt.read_bytes() == b"\x80\x02 truncated pickle"   # left for inspection, not overwritten
    finally:
        ckpt.unlink(missing_ok=True)


def _tiny_trainer(checkpoint=None, lr=0.05, epochs=2):
    torch.manual_seed(0)
    model = get_model("resnet20", num_classes=10, in_channels=1, width=4)
    g = torch.Generator().manual_seed(0)
    loader = TensorLoader(torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g), 16, 0)
    cfg = TrainConfig(epochs=epochs, batch_size=16, lr=lr, schedule="constant", weight_decay=0.0)
    return model, Trainer(model, {}, loader, cfg, checkpoint=checkpoint)


def test_truncated_checkpoint_is_not_used(tmp_path):
    ckpt = tmp_path / "run.pt"
    _, trainer = _tiny_trainer(ckpt)
    trainer.fit(end_epoch=1)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    model, trainer = _tiny_trainer(ckpt)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="unreadable or corrupt"):
        trainer.fit()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())   # nothing was loaded


def test_corrupt_or_mismatched_mask_file_is_rejected(tmp_path):
    model = get_model("resnet20", num_classes=10, in_channels=1, width=4)
    path = tmp_path / "masks.pt"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="unreadable or corrupt"):
        load_masks(path, model)
    torch.save({"conv1.weight": torch.ones(3, 3, dtype=torch.bool)}, path)
    with pytest.raises(ValueError, match="does not match the model"):
        load_masks(path, model)


def _fashion_mnist_copy(dest: Path) -> Path:
    if not FASHION_MNIST.is_dir():
        pytest.skip(f"Fashion-MNIST not installed at {FASHION_MNIST} (Debian package dataset-fashion-mnist)")
    dest.mkdir()
    for name in FASHION_MNIST_FILES:
        shutil.copy(FASHION_MNIST / name, dest / name)
    return dest


def test_dataset_file_with_wrong_checksum_is_rejected(tmp_path):
    root = _fashion_mnist_copy(tmp_path / "fmnist")
    labels = root / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[100] = (raw[100] + 1) % 10          # one test label changed: still a well-formed idx file
    labels.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz fails its checksum"):
        fashion_mnist(root)
    labels.write_bytes(labels.read_bytes()[:40])   # truncated archive
    with pytest.raises(DatasetError, match="not a readable gzip file"):
        fashion_mnist(root)


@pytest.mark.slow
def test_prepare_stage_rejects_a_corrupt_dataset_without_touching_outputs(prepared, tmp_path):
    root = _fashion_mnist_copy(tmp_path / "fmnist")
    images = root / "train-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(images.read_bytes()))
    raw[5000] ^= 0xFF
    images.write_bytes(gzip.compress(bytes(raw), compresslevel=1))
    prepared_file = prepared / "data" / "prepared.pt"
    before = prepared_file.read_bytes()
    write_params(prepared, _params(**{"data.root": str(root)}))
    try:
        proc = python(["pipeline.prepare"], prepared, check=False)
    finally:
        write_params(prepared, _params())
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "fails its checksum" in proc.stderr   # one line, no traceback
    assert prepared_file.read_bytes() == before


def test_diverging_run_names_epoch_and_step_and_keeps_no_checkpoint_of_it(tmp_path):
    ckpt = tmp_path / "run.pt"
    _, trainer = _tiny_trainer(ckpt, lr=1e12, epochs=3)
    with pytest.raises(DivergenceError, match=r"non-finite loss \(nan\) at epoch \d+, step \d+; lower train.lr"):
        trainer.fit()
    assert all(r["train_loss_running"] == r["train_loss_running"] for r in trainer.history)   # no NaN epoch saved
    if ckpt.exists():
        assert torch.load(ckpt, weights_only=False)["epoch"] == len(trainer.history)


def test_update_that_makes_weights_non_finite_is_caught_before_evaluation_and_checkpoint(tmp_path):
    # one step per epoch and an lr that overflows float32: the loss of the step is finite, its update is not
    ckpt = tmp_path / "run.pt"
    torch.manual_seed(0)
    model = get_model("resnet20", num_classes=10, in_channels=1, width=4)
    g = torch.Generator().manual_seed(0)
    loader = TensorLoader(torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g), 16, 0)
    evaluated = []
    trainer = Trainer(model, {}, loader, TrainConfig(epochs=2, batch_size=16, lr=1e38, schedule="constant"),
                      checkpoint=ckpt, epoch_end=lambda *args: evaluated.append(args) or {})
    with pytest.raises(DivergenceError, match=r"non-finite weights \(.+\) after the update at epoch 1, step 1"):
        trainer.fit()
    assert not evaluated and not ckpt.exists() and not trainer.history


def _stage_names(repo: Path) -> list[str]:
    out = subprocess.run([DVC, "stage", "list", "--name-only"], cwd=repo, env=project_env(), capture_output=True,
                         text=True, check=True).stdout
    return out.split()


@pytest.mark.slow
@needs_dvc
@needs_data
def test_diverging_train_stage_fails_and_is_not_recorded(tmp_path):
    repo = project(tmp_path / "proj", tiny_params(**{"methods": ["snip"], "reprs": ["ip"], "train.lr": 1e6,
                                                     "train.epochs": 3, "train.schedule": "constant"}))
    assert "dense" in _stage_names(repo)
    proc = run([DVC, "repro", "dense"], repo, check=False)
    assert proc.returncode != 0
    # the loss, or (when the last update of an epoch blew up) the weights: either way epoch and step are named
    assert re.search(r"error: dense-ip-s0: non-finite (loss|weights).* at epoch \d+, step \d+; lower train.lr",
                     proc.stderr), proc.stderr[-2000:]
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert "init" in lock and "dense" not in lock        # upstream stages recorded, the failed one not
    assert not (repo / "results" / "runs" / "dense" / "ip-s0" / "metrics.json").exists()


@pytest.mark.slow
@needs_dvc
@needs_data
def test_concurrent_repro_fails_on_dvcs_lock_and_leaves_the_first_intact(tmp_path):
    """The first repro is held inside its prepare stage, deterministically: its training images
    are a named pipe that this test writes only after the second repro has been refused."""
    images = "train-images-idx3-ubyte.gz"
    root = tmp_path / "fashion-mnist"
    root.mkdir()
    for name in FASHION_MNIST_FILES:
        if name != images:
            (root / name).symlink_to(FASHION_MNIST / name)
    os.mkfifo(root / images)
    repo = project(tmp_path / "proj", tiny_params(**{"methods": ["snip"], "reprs": ["ip"], "train.epochs": 2,
                                                            "data.root": str(root)}))
    train_stages = [s for s in _stage_names(repo) if s.startswith("train@")]
    first = subprocess.Popen([DVC, "repro", *train_stages], cwd=repo, env=project_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:   # the write end opens once the first repro's prepare stage reads the pipe
            try:
                pipe = os.open(root / images, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                assert first.poll() is None and time.monotonic() < deadline, "first dvc repro never read the data"
                time.sleep(0.1)
        try:
            second = run([DVC, "repro", *train_stages], repo, check=False)
            assert first.poll() is None   # still waiting for its data: it cannot have finished
            # DVC's repository lock ("Unable to acquire lock") or, while the first runs a stage's command,
            # its read/write lock on that stage's deps and outs ("... is busy, it is being blocked by")
            assert second.returncode != 0
            assert "Unable to acquire lock" in second.stderr or "is busy" in second.stderr, second.stderr
            os.set_blocking(pipe, True)
            with os.fdopen(pipe, "wb", closefd=False) as out:
                out.write((FASHION_MNIST / images).read_bytes())
        finally:
            os.close(pipe)
        out, err = first.communicate(timeout=240)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err[-2000:]
    assert read_json(repo / "results" / "runs" / "snip" / "ip-s0" / "metrics.json")["epochs"] == 2
    status = run([DVC, "status", *train_stages], repo).stdout
    assert "up to date" in status, status
